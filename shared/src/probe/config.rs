//! health-probe's configuration, read once at cold start.

use crate::config::{
    AuthSettings, ClusterSettings, ConfigError, Env, PrimaryCluster, VaultSettings,
};

/// Everything health-probe needs.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The cluster and how its nodes are found.
    pub cluster: ClusterSettings,
    /// TLS, timeouts, retries.
    pub vault: VaultSettings,
    /// How the probe logs in to read autopilot state.
    pub auth: AuthSettings,
    /// `METRICS_NAMESPACE` (default `VaultLifecycle`).
    pub metrics_namespace: String,
    /// `STATE_TABLE` (optional): the snapshot catalog, for the age of the last backup.
    pub state_table: Option<String>,
    /// `PRIMARY_CLUSTER` and `PRIMARY_API_ADDR` (both or neither): set in the DR region,
    /// whose own cluster is the standby, to watch the primary.
    pub primary: Option<PrimaryCluster>,
}

impl ProbeConfig {
    /// Reads the process environment; the error names the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the given variables.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let cluster = ClusterSettings::from_env(env)?;
        Ok(Self {
            auth: AuthSettings::from_env(env, &cluster.cluster, "health-probe")?,
            vault: VaultSettings::from_env(env)?,
            metrics_namespace: env
                .optional("METRICS_NAMESPACE")
                .unwrap_or("VaultLifecycle")
                .to_owned(),
            state_table: env.optional("STATE_TABLE").map(str::to_owned),
            primary: PrimaryCluster::from_env(env, &cluster.cluster)?,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY_API: &str = "https://vault.prod.internal:8200";

    /// health-probe of the standby `prod-dr`, with `extra`.
    fn read(extra: &[(&str, &str)]) -> Result<ProbeConfig, ConfigError> {
        let standby = [("CLUSTER_NAME", "prod-dr"), ("ASG_NAME", "vault-prod-dr")];
        ProbeConfig::from(&Env::from_pairs(
            standby.into_iter().chain(extra.iter().copied()),
        ))
    }

    #[test]
    fn the_primary_is_watched_only_when_named() {
        assert_eq!(read(&[]).expect("no primary").primary, None);
        let unset = read(&[("PRIMARY_CLUSTER", ""), ("PRIMARY_API_ADDR", "")]);
        assert_eq!(unset.expect("empty is unset").primary, None);
        let config = read(&[
            ("PRIMARY_CLUSTER", "prod"),
            ("PRIMARY_API_ADDR", "https://vault.prod.internal:8200/"),
        ])
        .expect("a primary");
        assert_eq!(
            config.primary,
            Some(PrimaryCluster {
                name: "prod".parse().expect("name"),
                api: PRIMARY_API.parse().expect("addr"),
            })
        );
    }

    #[test]
    fn a_half_named_or_wrong_primary_is_refused_naming_the_variable() {
        // The variables set, the one the error names, and what it says.
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: [Case; 5] = [
            (
                &[("PRIMARY_API_ADDR", PRIMARY_API)],
                "PRIMARY_CLUSTER",
                "is not set",
            ),
            (
                &[("PRIMARY_CLUSTER", "prod")],
                "PRIMARY_API_ADDR",
                "is not set",
            ),
            (
                &[
                    ("PRIMARY_CLUSTER", "prod-dr"),
                    ("PRIMARY_API_ADDR", PRIMARY_API),
                ],
                "PRIMARY_CLUSTER",
                "another cluster than CLUSTER_NAME",
            ),
            (
                &[
                    ("PRIMARY_CLUSTER", "Prod EU"),
                    ("PRIMARY_API_ADDR", PRIMARY_API),
                ],
                "PRIMARY_CLUSTER",
                "is invalid",
            ),
            (
                &[
                    ("PRIMARY_CLUSTER", "prod"),
                    ("PRIMARY_API_ADDR", "vault.prod.internal:8200"),
                ],
                "PRIMARY_API_ADDR",
                "https://host:port",
            ),
        ];
        for (pairs, variable, says) in cases {
            let err = read(pairs).expect_err(variable).to_string();
            assert!(
                err.contains(&format!("variable {variable}")) && err.contains(says),
                "{pairs:?}: {err}"
            );
        }
    }
}
