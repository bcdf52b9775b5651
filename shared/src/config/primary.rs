//! The primary cluster as the DR region names and reaches it: read by the functions that
//! run in the DR region (health-probe, which watches it, and dr-failover, which takes
//! over from it).

use super::{invalid, ConfigError, Env};
use crate::ids::{ClusterName, NodeAddr};

/// `PRIMARY_CLUSTER` and `PRIMARY_API_ADDR`, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryCluster {
    /// `PRIMARY_CLUSTER`: the primary's cluster name, never the cluster this region runs.
    pub name: ClusterName,
    /// `PRIMARY_API_ADDR`: the primary's API (`https://host:port`) as the DR region
    /// reaches it (its load balancer; not the failover record, which points here after a
    /// failover).
    pub api: NodeAddr,
}

impl PrimaryCluster {
    /// Reads both variables: `None` when neither is set. One without the other, a name
    /// equal to `standby` (this region's own `CLUSTER_NAME`), or an address that is not
    /// `scheme://host:port` is refused with an error naming the variable.
    pub fn from_env(env: &Env, standby: &ClusterName) -> Result<Option<Self>, ConfigError> {
        let (name_text, api_text) = match (
            env.optional("PRIMARY_CLUSTER"),
            env.optional("PRIMARY_API_ADDR"),
        ) {
            (None, None) => return Ok(None),
            (Some(name), Some(api)) => (name, api),
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "PRIMARY_CLUSTER",
                    hint: "PRIMARY_API_ADDR is set: name the primary cluster, or unset both",
                })
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "PRIMARY_API_ADDR",
                    hint: "PRIMARY_CLUSTER is set: give the primary's API (https://host:port) as this region reaches it, or unset both",
                })
            }
        };
        let name: ClusterName = name_text
            .parse()
            .map_err(|e| invalid("PRIMARY_CLUSTER", name_text, e))?;
        if &name == standby {
            return Err(invalid(
                "PRIMARY_CLUSTER",
                name_text,
                "another cluster than CLUSTER_NAME (this region's standby)",
            ));
        }
        let api = api_text
            .parse()
            .map_err(|_| invalid("PRIMARY_API_ADDR", api_text, "https://host:port"))?;
        Ok(Some(Self { name, api }))
    }
}
