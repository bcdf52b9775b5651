//! health-probe's configuration, read once at cold start.

use crate::config::{AuthSettings, ClusterSettings, ConfigError, Env, VaultSettings};

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
            cluster,
        })
    }
}
