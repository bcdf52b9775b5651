//! node-lifecycle's configuration.

use std::time::Duration;

use crate::{
    cluster::node::AppRoleLimits,
    config::{
        invalid, ssm_cluster_path, AuthSettings, CaSource, ClusterSettings, ConfigError, Env,
        VaultSettings,
    },
    ids::ClusterName,
    keys::{KeyLayout, ShareKind},
};

/// What node-lifecycle does and how long it waits.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// `CLUSTER_NAME`.
    pub cluster: ClusterName,
    /// `ASG_NAME`: events of any other group are refused.
    pub asg: String,
    /// `<SSM_PREFIX>/<CLUSTER_NAME>`: shares, root token and AppRole credentials below it.
    pub ssm_path: String,
    /// `KMS_KEY_ID`: the key every SecureString written is encrypted under.
    pub kms_key: String,
    /// `KEY_SHARES` (default 5): unseal or recovery shares made at initialisation.
    pub key_shares: u8,
    /// `KEY_THRESHOLD` (default 3): shares needed to unseal.
    pub key_threshold: u8,
    /// `KEEP_ROOT_TOKEN` (default false): keep the root token in SSM instead of revoking it.
    pub keep_root_token: bool,
    /// The AppRole mount bootstrap enables (`VAULT_AUTH_MOUNT` with approle auth, else
    /// `approle`).
    pub approle_mount: String,
    /// The cluster's CA, sent to a joining node so it verifies the leader.
    pub leader_ca_pem: Option<String>,
    /// `NODE_API_TIMEOUT_SECS` (default 600): how long a launched node may take to answer.
    pub node_api_timeout: Duration,
    /// `VOTER_TIMEOUT_SECS` (default 300): how long a joined node may take to become a
    /// healthy voter (autopilot's stabilisation time is 10 s by default).
    pub voter_timeout: Duration,
    /// `REPLACEMENT_TIMEOUT_SECS` (default 600): how long a terminate waits for a joining
    /// replacement before it removes a peer that leaves no failure tolerance.
    pub replacement_timeout: Duration,
    /// `DEPARTED_PEER_GRACE_SECS` (default 300): how long a peer without an instance must
    /// have been unhealthy before reconcile removes it.
    pub departed_peer_grace: Duration,
    /// `HEARTBEAT_INTERVAL_SECS` (default 60): lifecycle heartbeats while waiting; keep it
    /// well under the hooks' heartbeat timeout.
    pub heartbeat_interval: Duration,
    /// `INIT_LOCK_TTL_SECS` (default 900): how long a launch waits for another run's
    /// initialisation (the lock itself holds until its owner's invocation is over).
    pub init_lock_ttl: Duration,
    /// `VAULT_INIT_TIMEOUT_SECS` (default 120): how long `sys/init` may take; it is sent
    /// only when the invocation has that long left, and time to store the shares.
    pub init_timeout: Duration,
    /// `PRIMARY_CLUSTER` (optional): set in a DR standby, the cluster it stands by for.
    /// A standby's group emptied to a pilot light has nothing to join when dr-failover
    /// raises it again: its new node is left uninitialised for dr-failover to rebuild
    /// the cluster in from the primary's snapshot.
    pub standby_of: Option<ClusterName>,
    /// `APPROLE_FUNCTIONS` (default the four functions every stack deploys): the
    /// functions bootstrap makes an AppRole and credentials for. A function that is not
    /// deployed gets none: no credential of its policy exists to leak.
    pub approle_functions: Vec<&'static str>,
    /// `APPROLE_SECRET_ID_TTL_HOURS` (default 2160, 90 days; 0: no expiry) and
    /// `APPROLE_BOUND_CIDRS` (default none: anywhere): the limits of every AppRole's
    /// credentials.
    pub approle_limits: AppRoleLimits,
}

/// The functions every stack deploys, and so the default `APPROLE_FUNCTIONS`.
pub const DEPLOYED_FUNCTIONS: [&str; 4] = [
    "node-lifecycle",
    "health-probe",
    "snapshot-backup",
    "snapshot-restore",
];

/// `APPROLE_FUNCTIONS`: known function names, node-lifecycle among them (it logs in with
/// the AppRole it makes).
fn approle_functions(env: &Env) -> Result<Vec<&'static str>, ConfigError> {
    let chosen = crate::config::function_names(env, "APPROLE_FUNCTIONS", &DEPLOYED_FUNCTIONS)?;
    if !chosen.contains(&"node-lifecycle") {
        let text = env.optional("APPROLE_FUNCTIONS").unwrap_or_default();
        return Err(invalid(
            "APPROLE_FUNCTIONS",
            text,
            "a list that includes node-lifecycle (it logs in with the AppRole bootstrap makes)",
        ));
    }
    Ok(chosen)
}

/// `APPROLE_SECRET_ID_TTL_HOURS` and `APPROLE_BOUND_CIDRS`.
fn approle_limits(env: &Env) -> Result<AppRoleLimits, ConfigError> {
    let hours: u64 = env.parsed_or(
        "APPROLE_SECRET_ID_TTL_HOURS",
        2160,
        "a whole number of hours (0: no expiry)",
    )?;
    let mut bound_cidrs = Vec::new();
    if let Some(text) = env.optional("APPROLE_BOUND_CIDRS") {
        for cidr in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let valid = cidr.split_once('/').is_some_and(|(ip, bits)| {
                ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    bits.parse::<u8>().is_ok_and(|b| b <= max)
                })
            });
            if !valid {
                return Err(invalid(
                    "APPROLE_BOUND_CIDRS",
                    text,
                    "comma-separated CIDR blocks such as 10.0.1.0/24,10.0.2.0/24",
                ));
            }
            bound_cidrs.push(cidr.to_owned());
        }
    }
    Ok(AppRoleLimits {
        secret_id_ttl: Duration::from_secs(hours.saturating_mul(3600)),
        bound_cidrs,
    })
}

/// Everything node-lifecycle reads at cold start.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// The cluster and how its nodes are found.
    pub cluster: ClusterSettings,
    /// TLS, timeouts, retries.
    pub vault: VaultSettings,
    /// How the function logs in once bootstrap made its AppRole.
    pub auth: AuthSettings,
    /// `STATE_TABLE`: locks and records.
    pub table: String,
    /// `METRICS_NAMESPACE` (default `VaultLifecycle`).
    pub metrics_namespace: String,
    /// The rest.
    pub lifecycle: LifecycleSettings,
    /// `DR_REGION` and `DR_KMS_KEY_ID` (both or neither): where the shares are copied.
    pub dr_keys: Option<(String, String)>,
    /// `DR_STATE_TABLE` (with `DR_REGION`): the DR region's table, where dr-failover
    /// records a failover of this cluster; a cluster it fenced is not unsealed by
    /// reconcile until a failback is asked for.
    pub dr_state_table: Option<String>,
}

impl LifecycleConfig {
    /// Reads the process environment; the error names the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the given variables.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let cluster = ClusterSettings::from_env(env)?;
        let vault = VaultSettings::from_env(env)?;
        let auth = AuthSettings::from_env(env, &cluster.cluster, "node-lifecycle")?;
        let leader_ca_pem = match &vault.ca {
            CaSource::System => None,
            CaSource::Pem(pem) => Some(pem.clone()),
            CaSource::File(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "VAULT_CACERT",
                    &path.display().to_string(),
                    format!("a readable PEM file ({e})"),
                )
            })?),
        };
        let (key_shares, key_threshold) = crate::config::key_counts(env)?;
        // node-lifecycle makes its own credentials at bootstrap, so it always logs in with
        // the AppRole it made; aws auth is for the other functions, whose IAM roles the
        // operator binds in Vault.
        let approle_mount = match &auth {
            AuthSettings::AppRole { mount, .. } => mount.clone(),
            AuthSettings::Aws { .. } => {
                return Err(invalid(
                    "VAULT_AUTH",
                    "aws",
                    "approle for node-lifecycle: it logs in with the AppRole bootstrap creates (aws auth is for the other functions)",
                ))
            }
        };
        let heartbeat_interval =
            env.seconds_or("HEARTBEAT_INTERVAL_SECS", Duration::from_secs(60))?;
        if heartbeat_interval.is_zero() {
            return Err(invalid("HEARTBEAT_INTERVAL_SECS", "0", "at least 1"));
        }
        let lifecycle = LifecycleSettings {
            cluster: cluster.cluster.clone(),
            asg: cluster.asg.clone(),
            ssm_path: ssm_cluster_path(env, &cluster.cluster)?,
            kms_key: env
                .required(
                    "KMS_KEY_ID",
                    "the KMS key (id, ARN or alias) for the SecureString parameters",
                )?
                .to_owned(),
            key_shares,
            key_threshold,
            keep_root_token: env.parsed_or("KEEP_ROOT_TOKEN", false, "true or false")?,
            approle_mount,
            leader_ca_pem,
            node_api_timeout: env.seconds_or("NODE_API_TIMEOUT_SECS", Duration::from_secs(600))?,
            voter_timeout: env.seconds_or("VOTER_TIMEOUT_SECS", Duration::from_secs(300))?,
            replacement_timeout: env
                .seconds_or("REPLACEMENT_TIMEOUT_SECS", Duration::from_secs(600))?,
            departed_peer_grace: env
                .seconds_or("DEPARTED_PEER_GRACE_SECS", Duration::from_secs(300))?,
            heartbeat_interval,
            init_lock_ttl: env.seconds_or("INIT_LOCK_TTL_SECS", Duration::from_secs(900))?,
            init_timeout: vault.init_timeout,
            approle_functions: approle_functions(env)?,
            approle_limits: approle_limits(env)?,
            standby_of: env
                .optional("PRIMARY_CLUSTER")
                .map(|name| {
                    name.parse()
                        .map_err(|e| crate::config::invalid("PRIMARY_CLUSTER", name, e))
                })
                .transpose()?,
        };
        let dr_keys = crate::config::dr_keys(env)?;
        Ok(Self {
            dr_keys,
            dr_state_table: crate::config::dr_state_table(env)?,
            table: env
                .required("STATE_TABLE", "the DynamoDB table for locks and records")?
                .to_owned(),
            metrics_namespace: env
                .optional("METRICS_NAMESPACE")
                .unwrap_or("VaultLifecycle")
                .to_owned(),
            cluster,
            vault,
            auth,
            lifecycle,
        })
    }
}

impl LifecycleSettings {
    /// The parameter of share `n` (from 1): `unseal/share-n`, or `recovery/share-n`
    /// under auto-unseal.
    pub fn share_parameter(&self, recovery: bool, n: usize) -> String {
        let kind = if recovery {
            ShareKind::Recovery
        } else {
            ShareKind::Unseal
        };
        self.keys().share(kind, n)
    }

    /// Where this cluster's keys are kept.
    pub fn keys(&self) -> KeyLayout {
        KeyLayout::from_root(&self.ssm_path)
    }

    /// The parameter that holds the root token during bootstrap (and after, if kept).
    pub fn root_token_parameter(&self) -> String {
        self.keys().root_token()
    }

    /// The parameter of a function's AppRole role ID or secret ID (`role-id`, `secret-id`).
    pub fn approle_parameter(&self, function: &str, which: &str) -> String {
        self.keys().approle(function, which)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: [(&str, &str); 4] = [
        ("CLUSTER_NAME", "prod"),
        ("ASG_NAME", "vault-prod"),
        ("STATE_TABLE", "state"),
        ("KMS_KEY_ID", "alias/vault"),
    ];

    #[test]
    fn defaults_fit_a_standard_cluster() {
        let config = LifecycleConfig::from(&Env::from_pairs(MINIMAL)).expect("minimal");
        let s = &config.lifecycle;
        assert_eq!((s.key_shares, s.key_threshold), (5, 3));
        assert!(!s.keep_root_token);
        assert_eq!(s.departed_peer_grace, Duration::from_secs(300));
        assert_eq!(
            s.share_parameter(false, 2),
            "/vault-lifecycle/prod/unseal/share-2"
        );
        assert_eq!(
            s.share_parameter(true, 1),
            "/vault-lifecycle/prod/recovery/share-1"
        );
        assert_eq!(
            s.approle_parameter("snapshot-backup", "secret-id"),
            "/vault-lifecycle/prod/approle/snapshot-backup/secret-id"
        );
        assert_eq!(s.approle_functions, DEPLOYED_FUNCTIONS);
        assert_eq!(
            s.approle_limits,
            AppRoleLimits {
                secret_id_ttl: Duration::from_secs(90 * 24 * 3600),
                bound_cidrs: Vec::new(),
            }
        );
        let limited = LifecycleConfig::from(&Env::from_pairs(MINIMAL.into_iter().chain([
            (
                "APPROLE_FUNCTIONS",
                "node-lifecycle, snapshot-backup,dr-failover",
            ),
            ("APPROLE_SECRET_ID_TTL_HOURS", "0"),
            ("APPROLE_BOUND_CIDRS", "10.0.1.0/24, 10.0.2.0/24"),
        ])))
        .expect("limited");
        let s = &limited.lifecycle;
        assert_eq!(
            s.approle_functions,
            ["node-lifecycle", "snapshot-backup", "dr-failover"]
        );
        assert_eq!(s.approle_limits.secret_id_ttl, Duration::ZERO);
        assert_eq!(s.approle_limits.bound_cidrs, ["10.0.1.0/24", "10.0.2.0/24"]);
    }

    #[test]
    fn every_error_names_its_variable() {
        for (name, value) in [
            ("STATE_TABLE", ""),
            ("KMS_KEY_ID", ""),
            ("KEY_SHARES", "0"),
            ("KEY_THRESHOLD", "6"),
            ("KEY_THRESHOLD", "1"),
            ("KEEP_ROOT_TOKEN", "yes"),
            ("DEPARTED_PEER_GRACE_SECS", "5m"),
            ("HEARTBEAT_INTERVAL_SECS", "0"),
            ("VAULT_AUTH", "aws"),
            ("APPROLE_FUNCTIONS", "node-lifecycle,backup"),
            ("APPROLE_FUNCTIONS", "health-probe"),
            ("APPROLE_SECRET_ID_TTL_HOURS", "90d"),
            ("APPROLE_BOUND_CIDRS", "10.0.1.0"),
            ("APPROLE_BOUND_CIDRS", "10.0.1.0/33"),
        ] {
            let pairs = MINIMAL
                .into_iter()
                .filter(|(k, _)| *k != name)
                .chain([(name, value)]);
            let err = LifecycleConfig::from(&Env::from_pairs(pairs))
                .expect_err(name)
                .to_string();
            assert!(
                err.contains(name),
                "error for {name} does not name it: {err}"
            );
        }
    }
}
