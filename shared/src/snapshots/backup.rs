//! snapshot-backup's logic: one snapshot from the active node streamed into S3 and
//! checked as it passes, recorded in the catalog, copied to the DR region's bucket and
//! checked again there, then retention over the catalog.
//!
//! One backup runs at a time per cluster (the `backup` lock, which snapshot-restore
//! holds too), and each delivery of a request is remembered by its id, so a redelivered
//! schedule tick or a retried invocation stores no second snapshot. A copy to the DR
//! region that is missing (a run cut off, a region that failed) is made by the next run.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    archive::{ArchiveError, SnapshotCheck, SnapshotFacts},
    catalog::{BackupKind, Catalog, CatalogEntry, CatalogError},
    retention::{plan, RetentionPolicy},
    store::{Location, SnapshotObjects, StoreError, StoredObject},
    stream::{stream_into_store, StreamError},
};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        auth::{LoginError, VaultLogin},
        find_active,
        locks::{Claim, LockError, Locks},
        ports::{Fleet, FleetError, FleetNode, ParameterStore},
    },
    config::{invalid, AuthSettings, ClusterSettings, ConfigError, Env, VaultSettings},
    error_chain,
    events::{BackupRequest, EventError},
    ids::ClusterName,
    lambda::FunctionError,
    secret::Secret,
    telemetry::{Metric, MetricsSink, Unit},
    vault::{Health, VaultError},
};

/// The lock backups and restores share.
pub const BACKUP_LOCK: &str = "backup";

/// What snapshot-backup does, beyond where things are.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// `CLUSTER_NAME`.
    pub cluster: ClusterName,
    /// `SNAPSHOT_PREFIX` (default `vault-lifecycle`): keys are
    /// `<prefix>/<cluster>/<UTC time>-<raft index>.snap`.
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
}

impl BackupSettings {
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
            },
            cluster,
        })
    }
}

/// snapshot-backup with its ports. Build it once per cold start.
pub struct SnapshotBackup<N, P> {
    /// What the operator configured.
    pub settings: BackupSettings,
    /// The cluster's Auto Scaling group.
    pub fleet: Box<dyn Fleet>,
    /// The Vault client for every node.
    pub vault: N,
    /// This function's Vault login.
    pub login: VaultLogin<P>,
    /// The backup lock.
    pub locks: Box<dyn Locks>,
    /// The catalog.
    pub catalog: Box<dyn Catalog>,
    /// The snapshot bucket.
    pub store: Box<dyn SnapshotObjects>,
    /// The DR region's bucket, if configured.
    pub dr: Option<Box<dyn SnapshotObjects>>,
    /// Where duration, size, result and age go.
    pub metrics: Box<dyn MetricsSink>,
}

/// What a backup run did, returned as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BackupOutcome {
    /// A snapshot was stored, checked and recorded (or an earlier delivery of the same
    /// request had stored it: `redelivered`).
    BackedUp(Box<BackupReport>),
    /// Another backup or a restore holds the lock: nothing was done.
    Busy {
        /// Who holds it.
        owner: String,
        /// Until when, at the latest.
        until: DateTime<Utc>,
    },
}

/// A backup run's report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupReport {
    /// The snapshot this request stored.
    pub snapshot: CatalogEntry,
    /// True when an earlier delivery of this request stored it and this one stored none.
    pub redelivered: bool,
    /// Copies made in the DR region by this run (the new snapshot's, and any an earlier
    /// run missed).
    pub dr_copies: Vec<Location>,
    /// Snapshots kept and deleted by retention.
    pub retention: RetentionReport,
}

/// What retention did.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RetentionReport {
    /// How many snapshots the catalog holds now.
    pub kept: usize,
    /// The versions deleted (primary and DR copies), with their catalog entries.
    pub deleted: Vec<Location>,
}

/// Why a backup failed. Nothing here holds a token or secret ID.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The request is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The group could not be listed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The lock could not be claimed or released.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The catalog could not be read or written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// This function could not log in to Vault.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// No node answered as active.
    #[error("no node of the cluster is active (asked {asked} nodes); no snapshot was taken")]
    NoActiveNode {
        /// How many nodes were asked.
        asked: usize,
    },
    /// Vault refused the snapshot.
    #[error("taking a snapshot from {node} failed; nothing was stored")]
    Snapshot {
        /// The node.
        node: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The snapshot did not reach the bucket whole and checked.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The bucket refused an operation after the snapshot was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object read back is not what the catalog says.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Copies to the DR region failed; the snapshot itself is stored and catalogued, and
    /// the next run copies it again.
    #[error("the snapshot {snapshot} is stored and catalogued, but its copy to the DR region failed: {}", failures.join("; "))]
    DrCopy {
        /// The snapshot this run stored.
        snapshot: Location,
        /// Each failure.
        failures: Vec<String>,
    },
}

impl From<BackupError> for FunctionError {
    fn from(e: BackupError) -> Self {
        use BackupError as E;
        let (retry_helps, variant) = match &e {
            E::Event(EventError::Unrecognised { .. }) => (false, "UnrecognisedEvent"),
            E::Event(EventError::Invalid { .. }) => (false, "InvalidEvent"),
            E::Fleet(FleetError::Unavailable { .. }) => (true, "FleetUnavailable"),
            E::Fleet(_) => (false, "NoNodeAddress"),
            E::Lock(_) => (true, "LockUnavailable"),
            E::Catalog(_) => (true, "CatalogUnavailable"),
            E::Login(l) if l.is_configuration() => (false, "LoginRefused"),
            E::Login(_) => (true, "LoginUnavailable"),
            E::NoActiveNode { .. } => (true, "NoActiveNode"),
            E::Snapshot { source, .. } if source.status() == Some(403) => (false, "PolicyDenied"),
            E::Snapshot { .. } => (true, "SnapshotFailed"),
            E::Stream(StreamError::Archive(_) | StreamError::NoMetaFirst { .. }) => {
                (true, "SnapshotInvalid")
            }
            E::Stream(_) => (true, "SnapshotNotStored"),
            E::Store(_) => (true, "BucketUnavailable"),
            E::Verify(_) => (false, "ChecksumMismatch"),
            E::DrCopy { .. } => (true, "DrCopyFailed"),
        };
        Self::new(retry_helps, variant, &e)
    }
}

/// An object read back is not the snapshot the catalog recorded.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The object could not be read.
    #[error("cannot read {object} back to check it")]
    Read {
        /// The object.
        object: Location,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The archive is not whole or not consistent.
    #[error("{object} is not a good snapshot")]
    Archive {
        /// The object.
        object: Location,
        /// What is wrong.
        #[source]
        source: ArchiveError,
    },
    /// The archive is whole, and it is not the one recorded.
    #[error("{object} has SHA-256 {got} and {got_bytes} bytes, but the catalog recorded {expected} and {expected_bytes} bytes")]
    Checksum {
        /// The object.
        object: Location,
        /// The catalog's.
        expected: String,
        /// The object's.
        got: String,
        /// The catalog's size.
        expected_bytes: u64,
        /// The object's size.
        got_bytes: u64,
    },
}

/// Reads `object` from `store` chunk by chunk through the archive check and compares
/// its SHA-256 with `expected` (when the catalog has it). Memory stays at one chunk.
pub async fn read_and_check(
    store: &dyn SnapshotObjects,
    object: &StoredObject,
    expected: Option<(&str, u64)>,
) -> Result<SnapshotFacts, VerifyError> {
    let location = store.location_of(object);
    let read = |source| VerifyError::Read {
        object: location.clone(),
        source,
    };
    let mut body = store.open(object).await.map_err(read)?;
    let mut check = SnapshotCheck::new();
    let archive = |source| VerifyError::Archive {
        object: location.clone(),
        source,
    };
    while let Some(chunk) = body.next_chunk().await.map_err(read)? {
        check.update(&chunk).map_err(archive)?;
    }
    let facts = check.finish().map_err(archive)?;
    if let Some((sha256, bytes)) = expected {
        if facts.sha256 != sha256 || facts.bytes != bytes {
            return Err(VerifyError::Checksum {
                object: location,
                expected: sha256.to_owned(),
                got: facts.sha256,
                expected_bytes: bytes,
                got_bytes: facts.bytes,
            });
        }
    }
    Ok(facts)
}

/// The object's key: `<prefix>/<cluster>/<UTC time>-<raft index>.snap`.
pub fn snapshot_key(settings: &BackupSettings, taken_at: &DateTime<Utc>, index: u64) -> String {
    format!(
        "{}{}-{index}.snap",
        settings.folder(settings.cluster.as_str()),
        taken_at.format("%Y%m%dT%H%M%SZ")
    )
}

impl<N: NodeApi, P: ParameterStore> SnapshotBackup<N, P> {
    /// Parses `event` and runs one backup. `request_id` is the invocation's: a retried
    /// invocation has the same one, so it names a direct request's delivery.
    pub async fn handle(
        &self,
        event: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<BackupOutcome, FunctionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        info!(time_left_ms = left.as_millis() as u64, "invocation started");
        let started = Instant::now();
        let result = self.run(event, request_id).await;
        self.publish(&result, started.elapsed()).await;
        Ok(result?)
    }

    async fn run(
        &self,
        event: &serde_json::Value,
        request_id: &str,
    ) -> Result<BackupOutcome, BackupError> {
        let request = BackupRequest::parse(event)?;
        let delivery = request
            .event_id
            .clone()
            .unwrap_or_else(|| request_id.to_owned());
        let kind = if request.scheduled {
            BackupKind::Scheduled
        } else {
            BackupKind::Manual
        };
        // The owner is this invocation: two deliveries of one event running at once must
        // not both hold the lock.
        let owner = format!("backup {delivery} {request_id}");
        if let Claim::HeldBy { owner, expires_at } = self
            .locks
            .claim(BACKUP_LOCK, &owner, self.settings.lock_ttl)
            .await?
        {
            info!(owner = %owner, "another backup or a restore holds the backup lock; nothing to do");
            return Ok(BackupOutcome::Busy {
                owner,
                until: expires_at.into(),
            });
        }
        let result = self.locked_run(&delivery, kind, request.reason).await;
        if let Err(e) = self.locks.release(BACKUP_LOCK, &owner).await {
            warn!(error = %error_chain(&e), "releasing the backup lock failed; it lapses by itself");
        }
        result
    }

    async fn locked_run(
        &self,
        delivery: &str,
        kind: BackupKind,
        reason: Option<String>,
    ) -> Result<BackupOutcome, BackupError> {
        let cluster = &self.settings.cluster;
        let (snapshot, redelivered) = match self.catalog.delivery(cluster, delivery).await? {
            Some(object) => {
                info!(object = %object, "an earlier delivery of this request stored its snapshot; storing no other");
                let entry = self
                    .catalog
                    .entries(cluster)
                    .await?
                    .into_iter()
                    .find(|e| e.object == object);
                match entry {
                    Some(entry) => (entry, true),
                    // Retention deleted it since (a very old redelivery): take a new one.
                    None => (self.take(kind, reason).await?, false),
                }
            }
            None => {
                let entry = self.take(kind, reason).await?;
                self.catalog
                    .put_delivery(cluster, delivery, &entry.object)
                    .await?;
                (entry, false)
            }
        };
        let retention = self.apply_retention().await?;
        let (copied, failures) = self.copy_missing_to_dr().await?;
        let mut snapshot = snapshot;
        if let Some(updated) = copied.iter().find(|e| e.object == snapshot.object) {
            snapshot = updated.clone();
        }
        let dr_copies = copied.into_iter().filter_map(|e| e.dr_copy).collect();
        if !failures.is_empty() {
            return Err(BackupError::DrCopy {
                snapshot: snapshot.object,
                failures,
            });
        }
        Ok(BackupOutcome::BackedUp(Box::new(BackupReport {
            snapshot,
            redelivered,
            dr_copies,
            retention,
        })))
    }

    /// Takes one snapshot from the active node into the bucket, checks it, tags it with
    /// its checksum and records it in the catalog. The caller holds the backup lock.
    pub async fn take(
        &self,
        kind: BackupKind,
        reason: Option<String>,
    ) -> Result<CatalogEntry, BackupError> {
        let members = self.fleet.members().await?;
        let asked = members.len();
        let Some((active, health)) = find_active(&self.vault, members).await else {
            return Err(BackupError::NoActiveNode { asked });
        };
        let token = self.login.token(&self.vault, &active.addr).await?;
        self.take_from(&active, &health, &token, kind, reason).await
    }

    /// [`SnapshotBackup::take`] from a node already found, with a token already held.
    pub async fn take_from(
        &self,
        active: &FleetNode,
        health: &Health,
        token: &Secret,
        kind: BackupKind,
        reason: Option<String>,
    ) -> Result<CatalogEntry, BackupError> {
        let cluster_id = health.cluster_id.clone().unwrap_or_default();
        let taken_at = Utc::now();
        info!(node = %active.addr, kind = kind.as_str(), "taking a snapshot from the active node");
        let mut body = self
            .vault
            .snapshot(&active.addr, token, self.settings.snapshot_timeout)
            .await
            .map_err(|source| BackupError::Snapshot {
                node: active.addr.to_string(),
                source,
            })?;
        let settings = &self.settings;
        let metadata = |index: u64, term: u64| {
            let key = snapshot_key(settings, &taken_at, index);
            let metadata = BTreeMap::from([
                ("cluster".to_owned(), settings.cluster.to_string()),
                ("cluster-id".to_owned(), cluster_id.clone()),
                ("server-version".to_owned(), health.version.clone()),
                ("raft-index".to_owned(), index.to_string()),
                ("raft-term".to_owned(), term.to_string()),
                ("kind".to_owned(), kind.as_str().to_owned()),
                ("taken-at".to_owned(), taken_at.to_rfc3339()),
            ]);
            (key, metadata)
        };
        let streamed =
            stream_into_store(&mut body, self.store.as_ref(), settings.part_size, metadata).await?;
        let facts = streamed.facts;
        self.store
            .tag(
                &streamed.object,
                &BTreeMap::from([("sha256".to_owned(), facts.sha256.clone())]),
            )
            .await?;
        let entry = CatalogEntry {
            cluster: settings.cluster.to_string(),
            taken_at,
            object: self.store.location_of(&streamed.object),
            dr_copy: None,
            sha256: facts.sha256,
            bytes: facts.bytes,
            index: facts.index,
            term: facts.term,
            state_size: facts.state_size,
            cluster_id,
            server_version: health.version.clone(),
            kind,
            reason,
        };
        self.catalog.put(&entry).await?;
        info!(object = %entry.object, index = entry.index, term = entry.term, bytes = entry.bytes, sha256 = %entry.sha256, "snapshot catalogued");
        Ok(entry)
    }

    /// Deletes what the policy does not keep: the exact versions first (primary and DR),
    /// then their catalog entries, so a run cut off in between deletes them again.
    async fn apply_retention(&self) -> Result<RetentionReport, BackupError> {
        let entries = self.catalog.entries(&self.settings.cluster).await?;
        let taken: Vec<_> = entries.iter().map(|e| e.taken_at).collect();
        let decision = plan(&taken, &self.settings.retention);
        if decision.delete.is_empty() {
            return Ok(RetentionReport {
                kept: entries.len(),
                deleted: Vec::new(),
            });
        }
        let doomed: Vec<CatalogEntry> = decision
            .delete
            .iter()
            .map(|&i| entries[i].clone())
            .collect();
        let primary: Vec<StoredObject> = doomed.iter().map(|e| stored(&e.object)).collect();
        self.store.delete_versions(&primary).await?;
        let mut deleted: Vec<Location> = doomed.iter().map(|e| e.object.clone()).collect();
        let copies: Vec<&Location> = doomed.iter().filter_map(|e| e.dr_copy.as_ref()).collect();
        if !copies.is_empty() {
            match &self.dr {
                Some(dr) => {
                    let objects: Vec<StoredObject> = copies.iter().map(|l| stored(l)).collect();
                    dr.delete_versions(&objects).await?;
                    deleted.extend(copies.into_iter().cloned());
                }
                None => warn!(count = copies.len(), "retention leaves DR copies of deleted snapshots in place: DR_BUCKET is no longer set"),
            }
        }
        self.catalog.remove(&doomed).await?;
        info!(
            deleted = doomed.len(),
            kept = decision.keep.len(),
            "retention applied"
        );
        Ok(RetentionReport {
            kept: decision.keep.len(),
            deleted,
        })
    }

    /// Copies every catalogued snapshot that has no DR copy yet, newest first, checks
    /// each copy by reading it back, tags it and records it; returns the entries updated.
    /// Failures are collected:
    /// the snapshots stay good in the primary bucket and the next run tries again.
    async fn copy_missing_to_dr(&self) -> Result<(Vec<CatalogEntry>, Vec<String>), BackupError> {
        let Some(dr) = &self.dr else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut missing: Vec<CatalogEntry> = self
            .catalog
            .entries(&self.settings.cluster)
            .await?
            .into_iter()
            .filter(|e| e.dr_copy.is_none())
            .collect();
        missing.reverse();
        let mut copies = Vec::new();
        let mut failures = Vec::new();
        for mut entry in missing {
            match self.copy_one(dr.as_ref(), &entry).await {
                Ok(copy) => {
                    info!(object = %entry.object, copy = %copy, "DR copy made and checked");
                    entry.dr_copy = Some(copy);
                    self.catalog.put(&entry).await?;
                    copies.push(entry);
                }
                Err(e) => {
                    let text = error_chain(&e);
                    warn!(object = %entry.object, error = %text, "DR copy failed; the next run tries again");
                    failures.push(format!("{}: {text}", entry.object));
                }
            }
        }
        Ok((copies, failures))
    }

    async fn copy_one(
        &self,
        dr: &dyn SnapshotObjects,
        entry: &CatalogEntry,
    ) -> Result<Location, BackupError> {
        let copy = dr
            .copy_in(
                &entry.object,
                entry.bytes,
                self.settings.copy_multipart_above,
            )
            .await?;
        if let Err(e) = read_and_check(dr, &copy, Some((&entry.sha256, entry.bytes))).await {
            // A bad copy is no copy: delete it, so nothing in the DR bucket looks good.
            if let Err(d) = dr.delete_versions(std::slice::from_ref(&copy)).await {
                warn!(error = %error_chain(&d), "deleting the bad DR copy failed");
            }
            return Err(e.into());
        }
        dr.tag(
            &copy,
            &BTreeMap::from([("sha256".to_owned(), entry.sha256.clone())]),
        )
        .await?;
        Ok(dr.location_of(&copy))
    }

    /// Duration, size, result and the age of the newest good snapshot.
    async fn publish(&self, result: &Result<BackupOutcome, BackupError>, took: Duration) {
        let cluster = self.settings.cluster.as_str();
        let mut metrics = vec![Metric::cluster(
            cluster,
            "BackupDurationSeconds",
            took.as_secs_f64(),
            Unit::Seconds,
        )];
        match result {
            Ok(BackupOutcome::Busy { .. }) => return,
            Ok(BackupOutcome::BackedUp(report)) => {
                metrics.push(Metric::cluster(cluster, "BackupSucceeded", 1.0, Unit::None));
                metrics.push(Metric::cluster(
                    cluster,
                    "BackupSizeBytes",
                    report.snapshot.bytes as f64,
                    Unit::Bytes,
                ));
            }
            // The snapshot is good; only its DR copy is missing.
            Err(BackupError::DrCopy { .. }) => {
                metrics.push(Metric::cluster(cluster, "BackupSucceeded", 1.0, Unit::None));
                metrics.push(Metric::cluster(cluster, "DrCopyFailed", 1.0, Unit::Count));
            }
            Err(_) => metrics.push(Metric::cluster(cluster, "BackupSucceeded", 0.0, Unit::None)),
        }
        match self.catalog.newest(&self.settings.cluster).await {
            Ok(Some(newest)) => metrics.push(Metric::cluster(
                cluster,
                "LastGoodBackupAgeSeconds",
                (Utc::now() - newest.taken_at).num_seconds().max(0) as f64,
                Unit::Seconds,
            )),
            Ok(None) => {}
            Err(e) => warn!(error = %error_chain(&e), "age of the last good backup not published"),
        }
        if let Err(e) = self.metrics.publish(&metrics).await {
            warn!(error = %error_chain(&e), "backup metrics not published");
        }
    }
}

/// The version a location names, in the store's terms.
pub fn stored(location: &Location) -> StoredObject {
    StoredObject {
        key: location.key.clone(),
        version_id: location.version_id.clone(),
    }
}

#[cfg(test)]
mod tests;
