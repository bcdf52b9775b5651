//! credential-rotation's configuration, read once at cold start.

use std::time::Duration;

use crate::{
    config::{
        dr_keys, function_names, invalid, ssm_cluster_path, AuthSettings, ClusterSettings,
        ConfigError, Env, VaultSettings,
    },
    events::RotationTarget,
    vault::KeyringPolicy,
};

/// What the `keyring` action aims for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringSettings {
    /// `KEYRING_MAX_AGE_DAYS` (default 30): the keyring is rotated when its current key is
    /// older.
    pub max_age: Duration,
    /// The server's own automatic rotation, made to match at every run:
    /// `KEYRING_AUTO_ROTATE_MAX_OPERATIONS` (default 3,865,470,566, the servers' default;
    /// 1,000,000 to 3,865,470,566) and `KEYRING_AUTO_ROTATE_INTERVAL_HOURS` (default 0:
    /// not by time; else at least 24).
    pub policy: KeyringPolicy,
}

/// A database connection whose root credentials `database-root` rotates, and the
/// dynamic role that proves the engine works after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConnection {
    /// The database secrets engine's mount.
    pub mount: String,
    /// The connection's name.
    pub connection: String,
    /// A dynamic role of that connection.
    pub role: String,
}

/// `DATABASE_CONNECTIONS`: `<mount>/<connection>:<role>`, comma separated.
fn database_connections(env: &Env) -> Result<Vec<DatabaseConnection>, ConfigError> {
    let Some(text) = env.optional("DATABASE_CONNECTIONS") else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item.split_once(':').and_then(|(path, role)| {
            let (mount, connection) = path.rsplit_once('/')?;
            let ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                    && !s.contains("..")
            };
            (ok(mount) && ok(connection) && ok(role) && !role.contains('/')).then(|| {
                DatabaseConnection {
                    mount: mount.trim_matches('/').to_owned(),
                    connection: connection.to_owned(),
                    role: role.to_owned(),
                }
            })
        });
        match parsed {
            Some(db) => found.push(db),
            None => {
                return Err(invalid(
                    "DATABASE_CONNECTIONS",
                    text,
                    "a comma-separated list of <mount>/<connection>:<role>, e.g. database/orders:orders-app",
                ))
            }
        }
    }
    Ok(found)
}

/// What the `approle-secret-ids` action aims for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretIdSettings {
    /// `ROTATE_APPROLES` (default the functions the SAM template deploys, this one
    /// included): the AppRoles whose secret IDs are rotated, one per function.
    pub roles: Vec<&'static str>,
    /// The AppRole mount: this function's own (`VAULT_AUTH_MOUNT`) when it logs in with
    /// AppRole, else `approle`.
    pub mount: String,
    /// `SECRET_ID_MAX_AGE_DAYS` (default 7): a stored secret ID older than this, or
    /// expiring sooner than this, is replaced.
    pub max_age: Duration,
    /// `SECRET_ID_GRACE_MINUTES` (default 60): how long a replaced secret ID keeps
    /// working before it is destroyed.
    pub grace: Duration,
}

/// Everything credential-rotation needs.
#[derive(Debug, Clone)]
pub struct RotationConfig {
    /// The cluster and how its nodes are found.
    pub cluster: ClusterSettings,
    /// TLS, timeouts, retries.
    pub vault: VaultSettings,
    /// How the function logs in (its own AppRole, `credential-rotation`).
    pub auth: AuthSettings,
    /// `STATE_TABLE`: the locks (one rotation of a kind at a time).
    pub table: String,
    /// `ROTATE_ON_SCHEDULE` (default `keyring`): what a schedule tick rotates, comma
    /// separated.
    pub on_schedule: Vec<RotationTarget>,
    /// The `keyring` action.
    pub keyring: KeyringSettings,
    /// The `approle-secret-ids` action.
    pub secret_ids: SecretIdSettings,
    /// `BACKUP_FUNCTION`: snapshot-backup's name or ARN, invoked (without waiting) after
    /// a rotation an older snapshot cannot follow; unset: none.
    pub backup_function: Option<String>,
    /// `DATABASE_CONNECTIONS`: the connections `database-root` rotates.
    pub databases: Vec<DatabaseConnection>,
    /// `ROOT_KEY_MAX_AGE_DAYS` (default 90): `root-key` rotates when this function last
    /// rotated the root key longer ago, or never did.
    pub root_key_max_age: Duration,
    /// `SHARES_MAX_AGE_DAYS` (default 90): the `unseal-shares` and `recovery-shares`
    /// actions make a new generation when the one in force is older (generation 1, made
    /// at init, counts as old).
    pub shares_max_age: Duration,
    /// `<SSM_PREFIX>/<CLUSTER_NAME>`: where the shares' generations are kept.
    pub ssm_path: String,
    /// `KMS_KEY_ID`: the key a new generation of shares is written under.
    pub kms_key: String,
    /// `DR_REGION` and `DR_KMS_KEY_ID`: where each new generation is copied before it
    /// is verified.
    pub dr_keys: Option<(String, String)>,
    /// `DR_STATE_TABLE` (with `DR_REGION`): the DR region's table, where dr-failover
    /// records a failover of this cluster; a cluster it fenced rotates nothing.
    pub dr_state_table: Option<String>,
    /// `PRIMARY_CLUSTER`: set in a DR standby, the cluster it stands by for; its
    /// failover record is read from `STATE_TABLE`.
    pub primary_cluster: Option<crate::ids::ClusterName>,
}

const MAX_OPERATIONS: std::ops::RangeInclusive<u64> = 1_000_000..=3_865_470_566;

/// The default `ROTATE_APPROLES`: the functions the SAM template deploys.
const ROTATED_APPROLES: [&str; 5] = [
    "node-lifecycle",
    "health-probe",
    "snapshot-backup",
    "snapshot-restore",
    "credential-rotation",
];

impl RotationConfig {
    /// Reads the process environment; the error names the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the given variables.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let cluster = ClusterSettings::from_env(env)?;
        let days: u64 = env.parsed_or("KEYRING_MAX_AGE_DAYS", 30, "a whole number of days")?;
        if days == 0 {
            return Err(invalid("KEYRING_MAX_AGE_DAYS", "0", "at least 1 day"));
        }
        let shares_days: u64 =
            env.parsed_or("SHARES_MAX_AGE_DAYS", 90, "a whole number of days")?;
        if shares_days == 0 {
            return Err(invalid("SHARES_MAX_AGE_DAYS", "0", "at least 1 day"));
        }
        let max_operations: u64 = env.parsed_or(
            "KEYRING_AUTO_ROTATE_MAX_OPERATIONS",
            *MAX_OPERATIONS.end(),
            "a whole number",
        )?;
        if !MAX_OPERATIONS.contains(&max_operations) {
            return Err(invalid(
                "KEYRING_AUTO_ROTATE_MAX_OPERATIONS",
                &max_operations.to_string(),
                "between 1000000 and 3865470566",
            ));
        }
        let hours: u64 = env.parsed_or(
            "KEYRING_AUTO_ROTATE_INTERVAL_HOURS",
            0,
            "a whole number of hours",
        )?;
        if hours != 0 && hours < 24 {
            return Err(invalid(
                "KEYRING_AUTO_ROTATE_INTERVAL_HOURS",
                &hours.to_string(),
                "0 (not by time) or at least 24",
            ));
        }
        let secret_id_days: u64 =
            env.parsed_or("SECRET_ID_MAX_AGE_DAYS", 7, "a whole number of days")?;
        if secret_id_days == 0 {
            return Err(invalid("SECRET_ID_MAX_AGE_DAYS", "0", "at least 1 day"));
        }
        let root_key_days: u64 =
            env.parsed_or("ROOT_KEY_MAX_AGE_DAYS", 90, "a whole number of days")?;
        if root_key_days == 0 {
            return Err(invalid("ROOT_KEY_MAX_AGE_DAYS", "0", "at least 1 day"));
        }
        let grace_minutes: u64 =
            env.parsed_or("SECRET_ID_GRACE_MINUTES", 60, "a whole number of minutes")?;
        let auth = AuthSettings::from_env(env, &cluster.cluster, "credential-rotation")?;
        let secret_ids = SecretIdSettings {
            roles: function_names(env, "ROTATE_APPROLES", &ROTATED_APPROLES)?,
            mount: match &auth {
                AuthSettings::AppRole { mount, .. } => mount.clone(),
                AuthSettings::Aws { .. } => "approle".to_owned(),
            },
            max_age: Duration::from_secs(secret_id_days * 86_400),
            grace: Duration::from_secs(grace_minutes * 60),
        };
        let databases = database_connections(env)?;
        let on_schedule = match env.optional("ROTATE_ON_SCHEDULE") {
            None => vec![RotationTarget::Keyring],
            Some(list) => parse_targets(list)?,
        };
        if on_schedule.contains(&RotationTarget::DatabaseRoot) && databases.is_empty() {
            return Err(ConfigError::Missing {
                name: "DATABASE_CONNECTIONS",
                hint: "ROTATE_ON_SCHEDULE names database-root: list the connections, <mount>/<connection>:<role>",
            });
        }
        Ok(Self {
            auth,
            secret_ids,
            root_key_max_age: Duration::from_secs(root_key_days * 86_400),
            backup_function: env.optional("BACKUP_FUNCTION").map(str::to_owned),
            databases,
            vault: VaultSettings::from_env(env)?,
            table: env
                .required("STATE_TABLE", "the DynamoDB table of locks and records")?
                .to_owned(),
            on_schedule,
            shares_max_age: Duration::from_secs(shares_days * 86_400),
            ssm_path: ssm_cluster_path(env, &cluster.cluster)?,
            kms_key: env
                .required(
                    "KMS_KEY_ID",
                    "the KMS key (id, ARN or alias) new shares are written under",
                )?
                .to_owned(),
            dr_keys: dr_keys(env)?,
            dr_state_table: crate::config::dr_state_table(env)?,
            primary_cluster: env
                .optional("PRIMARY_CLUSTER")
                .map(|name| {
                    name.parse()
                        .map_err(|e| crate::config::invalid("PRIMARY_CLUSTER", name, e))
                })
                .transpose()?,
            keyring: KeyringSettings {
                max_age: Duration::from_secs(days * 86_400),
                policy: KeyringPolicy {
                    enabled: true,
                    max_operations,
                    interval: Duration::from_secs(hours * 3600),
                },
            },
            cluster,
        })
    }
}

fn parse_targets(list: &str) -> Result<Vec<RotationTarget>, ConfigError> {
    let mut targets = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let target = serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .ok()
            .ok_or_else(|| {
                invalid(
                    "ROTATE_ON_SCHEDULE",
                    list,
                    "a comma-separated list of what this version rotates: keyring, root-key, unseal-shares, recovery-shares, approle-secret-ids, database-root",
                )
            })?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        return Err(invalid("ROTATE_ON_SCHEDULE", list, "at least one target"));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![
            ("CLUSTER_NAME", "prod"),
            ("ASG_NAME", "vault"),
            ("STATE_TABLE", "state"),
            ("KMS_KEY_ID", "alias/vault"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn the_defaults_rotate_the_keyring_monthly_and_keep_the_servers_own_policy() {
        let config = RotationConfig::from(&env(&[])).expect("config");
        assert_eq!(config.on_schedule, vec![RotationTarget::Keyring]);
        assert_eq!(config.keyring.max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(config.keyring.policy.max_operations, 3_865_470_566);
        assert_eq!(config.keyring.policy.interval, Duration::ZERO);
    }

    #[test]
    fn a_bad_value_is_named() {
        for (name, value) in [
            ("KEYRING_MAX_AGE_DAYS", "0"),
            ("KEYRING_MAX_AGE_DAYS", "soon"),
            ("SHARES_MAX_AGE_DAYS", "0"),
            ("SECRET_ID_MAX_AGE_DAYS", "0"),
            ("ROOT_KEY_MAX_AGE_DAYS", "0"),
            ("SECRET_ID_GRACE_MINUTES", "soon"),
            ("ROTATE_APPROLES", "health-probe,vault-agent"),
            ("KEYRING_AUTO_ROTATE_MAX_OPERATIONS", "10"),
            ("KEYRING_AUTO_ROTATE_INTERVAL_HOURS", "12"),
            ("ROTATE_ON_SCHEDULE", "keyring,everything"),
            ("ROTATE_ON_SCHEDULE", " , "),
            ("DATABASE_CONNECTIONS", "database/orders"),
            ("DATABASE_CONNECTIONS", "database/../sys:x"),
            ("DATABASE_CONNECTIONS", "orders:app"),
            ("KMS_KEY_ID", ""),
            ("DR_REGION", "us-west-2"),
        ] {
            let error = RotationConfig::from(&env(&[(name, value)]))
                .expect_err(value)
                .to_string();
            assert!(error.contains(name), "{error}");
        }
        let config =
            RotationConfig::from(&env(&[("ROTATE_ON_SCHEDULE", "keyring, unseal-shares")]))
                .expect("a list");
        assert_eq!(
            config.on_schedule,
            vec![RotationTarget::Keyring, RotationTarget::UnsealShares]
        );
    }
}
