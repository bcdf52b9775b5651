//! snapshot-restore's configuration: snapshot-backup's variables (bucket, catalog,
//! naming) read for its own AppRole, and its own timeouts.

use std::time::Duration;

use crate::{
    backup::BackupConfig,
    config::{ssm_cluster_path, ConfigError, Env},
    ids::ClusterName,
};

/// What snapshot-restore needs beyond snapshot-backup's settings.
#[derive(Debug, Clone)]
pub struct RestoreSettings {
    /// `SSM_PREFIX` (default `/vault-lifecycle`): the shares of cluster `c` are under
    /// `<SSM_PREFIX>/<c>/unseal/` (or `recovery/`).
    pub ssm_prefix: String,
    /// `RESTORE_TIMEOUT_SECS` (default 600): how long sending the snapshot may take.
    pub send_timeout: Duration,
    /// `RESTORE_HEALTHY_TIMEOUT_SECS` (default 300): how long the cluster may take to
    /// have a healthy active node again.
    pub healthy_timeout: Duration,
}

impl RestoreSettings {
    /// Reads the given variables.
    pub fn from(env: &Env, cluster: &ClusterName) -> Result<Self, ConfigError> {
        let path = ssm_cluster_path(env, cluster)?;
        let prefix = path
            .strip_suffix(&format!("/{cluster}"))
            .unwrap_or(&path)
            .to_owned();
        Ok(Self {
            ssm_prefix: prefix,
            send_timeout: env.seconds_or("RESTORE_TIMEOUT_SECS", Duration::from_secs(600))?,
            healthy_timeout: env
                .seconds_or("RESTORE_HEALTHY_TIMEOUT_SECS", Duration::from_secs(300))?,
        })
    }
}

/// Everything snapshot-restore reads at cold start.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The backup path's settings (read for `snapshot-restore`'s AppRole).
    pub backup: BackupConfig,
    /// The rest.
    pub restore: RestoreSettings,
}

impl RestoreConfig {
    /// Reads the process environment; the error names the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the given variables.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        Self::for_function(env, "snapshot-restore")
    }

    /// Reads the given variables for `function`, whose AppRole the restore logs in
    /// with (`snapshot-restore`, or `dr-failover`, which runs the same steps).
    pub fn for_function(env: &Env, function: &str) -> Result<Self, ConfigError> {
        let backup = BackupConfig::from(env, function)?;
        let restore = RestoreSettings::from(env, &backup.cluster.cluster)?;
        Ok(Self { backup, restore })
    }
}
