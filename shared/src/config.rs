//! Configuration from environment variables. Every error names the variable, and every
//! variable has a default that works for a standard cluster unless it identifies the
//! cluster itself (`CLUSTER_NAME`, `ASG_NAME`).

use std::{collections::BTreeMap, fmt::Display, path::PathBuf, str::FromStr, time::Duration};

use crate::ids::ClusterName;

mod key_counts;
mod primary;
pub use key_counts::key_counts;
pub use primary::PrimaryCluster;

/// A missing or invalid setting, found at cold start before any event is taken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable without a default is not set.
    #[error("environment variable {name} is not set: {hint}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What it should hold.
        hint: &'static str,
    },
    /// A variable holds a value that cannot be used.
    #[error("environment variable {name}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it holds (configuration values are never secrets).
        value: String,
        /// What it should hold.
        expected: String,
    },
}

/// Where variables come from: the process environment in a Lambda, a map in a test.
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// Only the given pairs: for tests, so no test touches the process environment.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { vars }
    }

    /// The value, or `None` when unset or empty (an empty CloudFormation parameter is unset).
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The value of a variable that has no default.
    pub fn required(&self, name: &'static str, hint: &'static str) -> Result<&str, ConfigError> {
        self.optional(name)
            .ok_or(ConfigError::Missing { name, hint })
    }

    /// The parsed value, or `default` when unset.
    pub fn parsed_or<T>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| invalid(name, value, expected)),
        }
    }

    /// A duration given in whole seconds, or `default` when unset.
    pub fn seconds_or(
        &self,
        name: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let secs = self.parsed_or(name, default.as_secs(), "a whole number of seconds")?;
        Ok(Duration::from_secs(secs))
    }
}

pub(crate) fn invalid(name: &'static str, value: &str, expected: impl Display) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        expected: expected.to_string(),
    }
}

/// Which cluster a function serves, and how its nodes are found.
///
/// A node's API address is always `{scheme}://{private IP}:{port}`, the private IP being
/// the one EC2's DescribeInstances reports for the instance. Nothing an instance carries
/// (a tag, user data) can choose where a share or a credential is sent.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `CLUSTER_NAME`: names metrics, SSM parameters and S3 prefixes.
    pub cluster: ClusterName,
    /// `ASG_NAME`: the Auto Scaling group whose in-service instances are the nodes.
    pub asg: String,
    /// `VAULT_SCHEME`: `https`, or `http` only with `ALLOW_INSECURE_HTTP=true`.
    pub scheme: String,
    /// `VAULT_PORT`: the nodes' API port.
    pub port: u16,
}

impl ClusterSettings {
    /// Reads `CLUSTER_NAME`, `ASG_NAME`, `VAULT_SCHEME`, `ALLOW_INSECURE_HTTP`, `VAULT_PORT`.
    /// `http` is refused unless `ALLOW_INSECURE_HTTP=true`, and then logged as a warning:
    /// over `http` every share and token crosses the network in clear text.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.required("CLUSTER_NAME", "the cluster's name, e.g. prod")?;
        let cluster = raw.parse().map_err(|e| invalid("CLUSTER_NAME", raw, e))?;
        let scheme = env.optional("VAULT_SCHEME").unwrap_or("https").to_owned();
        let insecure = env.parsed_or("ALLOW_INSECURE_HTTP", false, "true or false")?;
        match scheme.as_str() {
            "https" => {}
            "http" if insecure => tracing::warn!(
                cluster = %cluster,
                "VAULT_SCHEME=http with ALLOW_INSECURE_HTTP=true: unseal shares, tokens and \
                 secret IDs cross the network in clear text; for labs only, never production"
            ),
            "http" => {
                return Err(invalid(
                    "VAULT_SCHEME",
                    &scheme,
                    "https (http sends unseal shares and tokens in clear text; it is \
                     accepted only with ALLOW_INSECURE_HTTP=true, for labs)",
                ))
            }
            _ => return Err(invalid("VAULT_SCHEME", &scheme, "https")),
        }
        Ok(Self {
            cluster,
            asg: env
                .required("ASG_NAME", "the cluster's Auto Scaling group name")?
                .to_owned(),
            scheme,
            port: match env.parsed_or("VAULT_PORT", 8200u16, "a TCP port number")? {
                0 => {
                    return Err(invalid(
                        "VAULT_PORT",
                        "0",
                        "a TCP port number from 1 to 65535",
                    ))
                }
                port => port,
            },
        })
    }

    /// The API address of the node whose instance has private IP `ip`.
    pub fn node_addr(&self, ip: std::net::IpAddr) -> crate::ids::NodeAddr {
        let host = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        crate::ids::NodeAddr::from_parts(&self.scheme, &host, self.port)
    }
}

/// How the functions reach Vault: TLS trust, timeouts and retries.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `VAULT_CACERT_PEM` (inline) or `VAULT_CACERT` (a file): the only CAs trusted.
    /// Neither set: the platform's roots.
    pub ca: CaSource,
    /// `VAULT_REQUEST_TIMEOUT_SECS`: one HTTP request, connection included.
    pub request_timeout: Duration,
    /// `VAULT_MAX_RETRIES`: extra attempts after a connection error (never after an answer).
    pub max_retries: u32,
    /// `VAULT_INIT_TIMEOUT_SECS`: `sys/init` alone, whose answer holds the only copy of
    /// the new shares and root token (node-lifecycle).
    pub init_timeout: Duration,
}

/// How long `sys/init` may take by default. Its answer is the only copy of the shares: a
/// client that gives up early loses them while the node goes on to initialise. Measured
/// on loopback it takes about 6 s, more with an auto-unseal round trip; two minutes leave
/// room for a slow seal and still fit a 15-minute invocation.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the CA bundle that verifies the nodes' certificates comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CaSource {
    /// The platform's trust store.
    System,
    /// A PEM bundle given inline.
    Pem(String),
    /// A PEM file, e.g. shipped in the deployment package.
    File(PathBuf),
}

impl VaultSettings {
    /// Reads `VAULT_CACERT_PEM`, `VAULT_CACERT`, `VAULT_REQUEST_TIMEOUT_SECS`,
    /// `VAULT_MAX_RETRIES`, `VAULT_INIT_TIMEOUT_SECS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ca = match (
            env.optional("VAULT_CACERT_PEM"),
            env.optional("VAULT_CACERT"),
        ) {
            (Some(pem), _) if !pem.contains("-----BEGIN CERTIFICATE-----") => {
                return Err(invalid(
                    "VAULT_CACERT_PEM",
                    "(not shown)",
                    "PEM certificates",
                ))
            }
            (Some(pem), _) => CaSource::Pem(pem.to_owned()),
            (None, Some(path)) => CaSource::File(PathBuf::from(path)),
            (None, None) => CaSource::System,
        };
        let request_timeout =
            env.seconds_or("VAULT_REQUEST_TIMEOUT_SECS", Duration::from_secs(5))?;
        if request_timeout.is_zero() {
            return Err(invalid("VAULT_REQUEST_TIMEOUT_SECS", "0", "at least 1"));
        }
        let init_timeout = env.seconds_or("VAULT_INIT_TIMEOUT_SECS", DEFAULT_INIT_TIMEOUT)?;
        if init_timeout < request_timeout {
            return Err(invalid(
                "VAULT_INIT_TIMEOUT_SECS",
                &init_timeout.as_secs().to_string(),
                format!(
                    "at least VAULT_REQUEST_TIMEOUT_SECS ({})",
                    request_timeout.as_secs()
                ),
            ));
        }
        Ok(Self {
            ca,
            request_timeout,
            max_retries: env.parsed_or("VAULT_MAX_RETRIES", 3, "a whole number")?,
            init_timeout,
        })
    }
}

/// How a function logs in to Vault. Never the root token.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthSettings {
    /// `VAULT_AUTH=approle`: role ID and secret ID read from SSM SecureString parameters.
    AppRole {
        /// `VAULT_AUTH_MOUNT` (default `approle`).
        mount: String,
        /// `<SSM_PREFIX>/<CLUSTER_NAME>/approle/<function>/role-id`.
        role_id_parameter: String,
        /// `<SSM_PREFIX>/<CLUSTER_NAME>/approle/<function>/secret-id`.
        secret_id_parameter: String,
    },
    /// `VAULT_AUTH=aws`: Vault's aws auth method, IAM flavour, with the function's role.
    Aws {
        /// `VAULT_AUTH_MOUNT` (default `aws`).
        mount: String,
        /// `VAULT_AWS_AUTH_ROLE` (default: the function's name).
        role: String,
        /// `VAULT_AWS_AUTH_SERVER_ID`: value of `X-Vault-AWS-IAM-Server-ID`, when required.
        server_id: Option<String>,
        /// `VAULT_AWS_AUTH_STS_REGION`: the region of Vault's `sts_endpoint`; unset, the
        /// global endpoint (signed for us-east-1), as Vault's default.
        sts_region: Option<String>,
    },
}

impl AuthSettings {
    /// Reads `VAULT_AUTH`, `VAULT_AUTH_MOUNT`, `SSM_PREFIX`, `VAULT_AWS_AUTH_ROLE`,
    /// `VAULT_AWS_AUTH_SERVER_ID`, `VAULT_AWS_AUTH_STS_REGION` for the function `function`.
    pub fn from_env(env: &Env, cluster: &ClusterName, function: &str) -> Result<Self, ConfigError> {
        let method = env.optional("VAULT_AUTH").unwrap_or("approle");
        match method {
            "approle" => {
                let keys = crate::keys::KeyLayout::from_root(&ssm_cluster_path(env, cluster)?);
                Ok(Self::AppRole {
                    mount: env
                        .optional("VAULT_AUTH_MOUNT")
                        .unwrap_or("approle")
                        .to_owned(),
                    role_id_parameter: keys.approle(function, "role-id"),
                    secret_id_parameter: keys.approle(function, "secret-id"),
                })
            }
            "aws" => Ok(Self::Aws {
                mount: env.optional("VAULT_AUTH_MOUNT").unwrap_or("aws").to_owned(),
                role: env
                    .optional("VAULT_AWS_AUTH_ROLE")
                    .unwrap_or(function)
                    .to_owned(),
                server_id: env.optional("VAULT_AWS_AUTH_SERVER_ID").map(str::to_owned),
                sts_region: env.optional("VAULT_AWS_AUTH_STS_REGION").map(str::to_owned),
            }),
            other => Err(invalid("VAULT_AUTH", other, "approle or aws")),
        }
    }
}

/// `<SSM_PREFIX>/<cluster>`: the root of every parameter this product keeps for a cluster.
pub fn ssm_cluster_path(env: &Env, cluster: &ClusterName) -> Result<String, ConfigError> {
    let prefix = env.optional("SSM_PREFIX").unwrap_or("/vault-lifecycle");
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(invalid(
            "SSM_PREFIX",
            prefix,
            "a path that starts with / and does not end with /",
        ));
    }
    Ok(format!("{prefix}/{cluster}"))
}

/// A comma-separated list of the product's functions in `var` (each known, each once), or
/// `default` when it is unset.
pub fn function_names(
    env: &Env,
    var: &'static str,
    default: &[&'static str],
) -> Result<Vec<&'static str>, ConfigError> {
    let Some(text) = env.optional(var) else {
        return Ok(default.to_vec());
    };
    let known: Vec<&'static str> = crate::cluster::policies::FUNCTIONS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let mut chosen = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(found) = known.iter().find(|k| **k == name) else {
            return Err(invalid(
                var,
                text,
                format!("a comma-separated list of {}", known.join(", ")),
            ));
        };
        if !chosen.contains(found) {
            chosen.push(*found);
        }
    }
    if chosen.is_empty() {
        return Err(invalid(var, text, "at least one function"));
    }
    Ok(chosen)
}

/// `DR_REGION` and `DR_KMS_KEY_ID` (both or neither): the DR region, and the key of that
/// region its copies of the shares are written under.
pub fn dr_keys(env: &Env) -> Result<Option<(String, String)>, ConfigError> {
    match (env.optional("DR_REGION"), env.optional("DR_KMS_KEY_ID")) {
        (None, None) => Ok(None),
        (Some(region), Some(key)) => Ok(Some((region.to_owned(), key.to_owned()))),
        (Some(_), None) => Err(ConfigError::Missing {
            name: "DR_KMS_KEY_ID",
            hint: "DR_REGION is set: name a KMS key of the DR region for the shares' copies, or unset both",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            name: "DR_REGION",
            hint: "DR_KMS_KEY_ID is set: name the DR region, or unset both",
        }),
    }
}

/// `DR_STATE_TABLE`, which needs `DR_REGION`: the DR region's table, where dr-failover
/// records a failover (the fence) of this cluster.
pub fn dr_state_table(env: &Env) -> Result<Option<String>, ConfigError> {
    match (env.optional("DR_STATE_TABLE"), env.optional("DR_REGION")) {
        (Some(_), None) => Err(ConfigError::Missing {
            name: "DR_REGION",
            hint: "DR_STATE_TABLE is set: name the DR region its table is in, or unset it",
        }),
        (table, _) => Ok(table.map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests;
