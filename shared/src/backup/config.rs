//! snapshot-backup's configuration, read once at cold start (snapshot-restore reads the
//! same variables for its bucket, catalog and safety snapshots).

use std::time::Duration;

use crate::{
    config::{
        invalid, ssm_cluster_path, AuthSettings, ClusterSettings, ConfigError, Env, VaultSettings,
    },
    ids::ClusterName,
    keys::{KeyLayout, RecordedGenerations},
    snapshots::{
        catalog::Catalog, retention::RetentionPolicy, store::SnapshotObjects, take::Taker,
    },
};

/// What snapshot-backup does, beyond where things are.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// `CLUSTER_NAME`.
    pub cluster: ClusterName,
    /// `SNAPSHOT_PREFIX` (default `vault-lifecycle`): keys are
    /// `<prefix>/<cluster>/<UTC time>-<unique>-<raft index>.snap`.
    pub prefix: String,
    /// `SNAPSHOT_PART_SIZE_MIB` (default 8, at least 5): the multipart upload's part size;
    /// memory holds about two parts.
    pub part_size: usize,
    /// `SNAPSHOT_TIMEOUT_SECS` (default 600): the longest a snapshot's transfer may take.
    pub snapshot_timeout: Duration,
    /// `BACKUP_LOCK_TTL_SECS` (default 900): how long the lock holds if its owner dies.
    pub lock_ttl: Duration,
    /// `RETAIN_LAST`, `RETAIN_DAILY`, `RETAIN_WEEKLY`, `RETAIN_MONTHLY`.
    pub retention: RetentionPolicy,
    /// Objects larger than this are copied to the DR bucket part by part (S3 copies at
    /// most 5 GiB in one request).
    pub copy_multipart_above: u64,
    /// `DR_COPIES_PER_RUN` (default 3, at least 1): the most DR copies one run makes,
    /// newest first. A backlog (the DR bucket was unreachable for a while) is worked off
    /// over the next runs instead of running one into its timeout.
    pub dr_copies_per_run: usize,
    /// `<SSM_PREFIX>/<CLUSTER_NAME>`: where the marks of the share generations are read
    /// (whether they exist; never a share), to record the generation in each entry.
    pub keys: KeyLayout,
}

impl BackupSettings {
    /// What takes this cluster's snapshots with these settings, through these ports
    /// (snapshot-backup's schedule and snapshot-restore's safety snapshot alike).
    pub fn taker<'a, N: ?Sized>(
        &'a self,
        vault: &'a N,
        store: &'a dyn SnapshotObjects,
        catalog: &'a dyn Catalog,
        generations: RecordedGenerations,
    ) -> Taker<'a, N> {
        Taker {
            vault,
            store,
            catalog,
            generations,
            cluster: &self.cluster,
            prefix: &self.prefix,
            part_size: self.part_size,
            timeout: self.snapshot_timeout,
        }
    }

    /// The folder of `cluster`'s snapshots: `<prefix>/<cluster>/`.
    pub fn folder(&self, cluster: &str) -> String {
        format!("{}/{cluster}/", self.prefix)
    }
}

/// The DR region's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrSettings {
    /// `DR_REGION`.
    pub region: String,
    /// `DR_BUCKET`.
    pub bucket: String,
    /// `DR_KMS_KEY_ID` (default: the bucket's default encryption).
    pub kms_key: Option<String>,
    /// `DR_STATE_TABLE` (optional): the DR region's table, where each DR copy gets a
    /// catalog entry of its own, so snapshot-restore run in the DR region can find and
    /// check it with the primary region gone.
    pub table: Option<String>,
}

/// Everything snapshot-backup (and snapshot-restore) reads at cold start.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The cluster and how its nodes are found.
    pub cluster: ClusterSettings,
    /// TLS, timeouts, retries.
    pub vault: VaultSettings,
    /// How the function logs in.
    pub auth: AuthSettings,
    /// `STATE_TABLE`: the catalog and the lock.
    pub table: String,
    /// `METRICS_NAMESPACE` (default `VaultLifecycle`).
    pub metrics_namespace: String,
    /// `SNAPSHOT_BUCKET`: the versioned bucket.
    pub bucket: String,
    /// `SNAPSHOT_KMS_KEY_ID` (default: the bucket's default encryption).
    pub kms_key: Option<String>,
    /// `DR_REGION` and `DR_BUCKET` (both or neither).
    pub dr: Option<DrSettings>,
    /// The rest.
    pub backup: BackupSettings,
}

impl BackupConfig {
    /// Reads the process environment for `function`; the error names the first bad
    /// variable.
    pub fn from_env(function: &str) -> Result<Self, ConfigError> {
        Self::from(&Env::process(), function)
    }

    /// Reads the given variables for `function` (`snapshot-backup` or `snapshot-restore`:
    /// it names the AppRole).
    pub fn from(env: &Env, function: &str) -> Result<Self, ConfigError> {
        let cluster = ClusterSettings::from_env(env)?;
        let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            env.parsed_or(name, default, "a whole number")
        };
        let last = count("RETAIN_LAST", 24)?;
        if last == 0 {
            return Err(invalid(
                "RETAIN_LAST",
                "0",
                "at least 1: the newest snapshot is always kept",
            ));
        }
        let part_mib: usize = env.parsed_or(
            "SNAPSHOT_PART_SIZE_MIB",
            8,
            "a whole number of MiB from 5 to 512",
        )?;
        if !(5..=512).contains(&part_mib) {
            return Err(invalid(
                "SNAPSHOT_PART_SIZE_MIB",
                &part_mib.to_string(),
                "a whole number of MiB from 5 to 512 (S3's smallest part is 5 MiB)",
            ));
        }
        let dr = match (env.optional("DR_REGION"), env.optional("DR_BUCKET")) {
            (None, None) => None,
            (Some(region), Some(bucket)) => Some(DrSettings {
                region: region.to_owned(),
                bucket: bucket.to_owned(),
                kms_key: env.optional("DR_KMS_KEY_ID").map(str::to_owned),
                table: env.optional("DR_STATE_TABLE").map(str::to_owned),
            }),
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "DR_BUCKET",
                    hint: "DR_REGION is set: name the DR region's snapshot bucket, or unset both",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "DR_REGION",
                    hint: "DR_BUCKET is set: name the DR bucket's region, or unset both",
                })
            }
        };
        let prefix = env
            .optional("SNAPSHOT_PREFIX")
            .unwrap_or("vault-lifecycle")
            .trim_matches('/')
            .to_owned();
        Ok(Self {
            auth: AuthSettings::from_env(env, &cluster.cluster, function)?,
            vault: VaultSettings::from_env(env)?,
            table: env
                .required(
                    "STATE_TABLE",
                    "the DynamoDB table of locks, records and the snapshot catalog",
                )?
                .to_owned(),
            metrics_namespace: env
                .optional("METRICS_NAMESPACE")
                .unwrap_or("VaultLifecycle")
                .to_owned(),
            bucket: env
                .required(
                    "SNAPSHOT_BUCKET",
                    "the versioned S3 bucket snapshots are stored in",
                )?
                .to_owned(),
            kms_key: env.optional("SNAPSHOT_KMS_KEY_ID").map(str::to_owned),
            dr,
            backup: BackupSettings {
                keys: KeyLayout::from_root(&ssm_cluster_path(env, &cluster.cluster)?),
                cluster: cluster.cluster.clone(),
                prefix,
                part_size: part_mib << 20,
                snapshot_timeout: env
                    .seconds_or("SNAPSHOT_TIMEOUT_SECS", Duration::from_secs(600))?,
                lock_ttl: env.seconds_or("BACKUP_LOCK_TTL_SECS", Duration::from_secs(900))?,
                retention: RetentionPolicy {
                    last,
                    daily: count("RETAIN_DAILY", 7)?,
                    weekly: count("RETAIN_WEEKLY", 4)?,
                    monthly: count("RETAIN_MONTHLY", 12)?,
                },
                copy_multipart_above: 5 << 30,
                dr_copies_per_run: match count("DR_COPIES_PER_RUN", 3)? {
                    0 => return Err(invalid("DR_COPIES_PER_RUN", "0", "at least 1")),
                    n => n,
                },
            },
            cluster,
        })
    }
}
