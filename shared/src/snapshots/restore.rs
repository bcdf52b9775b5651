//! snapshot-restore's logic: find the snapshot asked for, check it end to end before
//! anything reaches the cluster, take a safety snapshot, stream the snapshot into the
//! active node, and wait until the cluster is healthy again.
//!
//! Every refusal (no such version, nothing as of that time, a checksum that does not
//! match, a snapshot of another cluster without `force`, the source's shares missing)
//! comes before the safety snapshot and the restore: the cluster and the bucket are left
//! as they were.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    archive::{ArchiveError, SnapshotCheck, SnapshotFacts},
    backup::{read_and_check, stored, BackupError, SnapshotBackup, VerifyError, BACKUP_LOCK},
    catalog::{BackupKind, CatalogEntry},
    store::{Location, ObjectBody, StoredObject},
};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        find_active,
        locks::Claim,
        polling::{poll_until, Look, WaitExpired},
        ports::{FleetNode, ParameterError, ParameterStore},
    },
    config::{ssm_cluster_path, ConfigError, Env},
    error_chain,
    events::{EventError, RestoreRequest, SnapshotSelector},
    ids::ClusterName,
    lambda::FunctionError,
    secret::Secret,
    vault::{Health, VaultError},
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

/// snapshot-restore with its ports: snapshot-backup's (the safety snapshot goes through
/// it) and the parameters the source cluster's shares are read from.
pub struct SnapshotRestore<N, P> {
    /// The backup path, its bucket, catalog, lock and login.
    pub backup: SnapshotBackup<N, P>,
    /// Where shares are kept.
    pub parameters: P,
    /// What the operator configured.
    pub settings: RestoreSettings,
}

/// What a restore run did, returned as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RestoreOutcome {
    /// `dry_run`: the snapshot was found and checked; nothing was changed.
    WouldRestore(RestorePlan),
    /// The snapshot is in force and an active node is healthy.
    Restored(RestoreReport),
}

/// What would be restored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RestorePlan {
    /// The exact object version.
    pub snapshot: Location,
    /// Its catalog entry (`None` for an uncatalogued object, allowed with `force`).
    pub entry: Option<CatalogEntry>,
    /// The cluster it was taken from.
    pub source_cluster: String,
    /// Whether it is another cluster's (then `force` is needed, and the source's shares).
    pub other_cluster: bool,
    /// What the check of the whole object found.
    pub checked: Checked,
}

/// The check of the whole object, before anything is sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Checked {
    /// Its SHA-256, equal to the catalog's.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The Raft index and term in it.
    pub index: u64,
    /// See `index`.
    pub term: u64,
}

impl From<SnapshotFacts> for Checked {
    fn from(f: SnapshotFacts) -> Self {
        Self {
            sha256: f.sha256,
            bytes: f.bytes,
            index: f.index,
            term: f.term,
        }
    }
}

/// What was restored, and the cluster after.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RestoreReport {
    /// What was restored.
    pub plan: RestorePlan,
    /// The safety snapshot taken just before (restore it to undo this restore).
    pub safety_snapshot: Location,
    /// The node that took the snapshot and is active after.
    pub active_node: String,
    /// Nodes unsealed after the restore (a snapshot of another cluster brings its keys).
    pub unsealed: Vec<String>,
    /// The Raft index the active node has applied after the restore.
    pub applied_index: u64,
    /// Autopilot judged every server healthy again before the function returned (the
    /// followers install the restored state and are unhealthy for a moment).
    pub autopilot_healthy: bool,
    /// The failure tolerance autopilot reported last.
    pub failure_tolerance: Option<u32>,
}

/// Why a restore was refused or failed. Nothing here holds a share or token.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The request is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The backup path failed (lock, catalog, fleet, login, the safety snapshot).
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The catalog of the cluster is empty.
    #[error("the catalog of cluster {cluster} holds no snapshot; nothing was changed")]
    NoSnapshot {
        /// The cluster.
        cluster: String,
    },
    /// No snapshot was taken at or before the time.
    #[error("no snapshot of cluster {cluster} was taken at or before {as_of} (the first was taken at {}); nothing was changed", first.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()))]
    NoneAsOf {
        /// The cluster.
        cluster: String,
        /// The time asked for.
        as_of: DateTime<Utc>,
        /// The first snapshot's time.
        first: Option<DateTime<Utc>>,
    },
    /// The key is not under this product's prefix.
    #[error(
        "key {key} is not under {prefix}<cluster>/, where snapshots are kept; nothing was changed"
    )]
    OutsidePrefix {
        /// The key.
        key: String,
        /// The prefix.
        prefix: String,
    },
    /// The bucket has no such key or version.
    #[error("{object} does not exist; nothing was changed")]
    NoSuchVersion {
        /// What was asked for.
        object: Location,
    },
    /// The version exists, and no backup recorded it.
    #[error("{object} is not in the catalog of cluster {cluster} (catalogued versions of this key: {}), so its checksum cannot be checked against a backup's record; nothing was changed. Give force to restore it on the archive check alone", if catalogued.is_empty() { "none".to_owned() } else { catalogued.join(", ") })]
    NotCatalogued {
        /// The object.
        object: Location,
        /// The cluster its key names.
        cluster: String,
        /// The versions of the same key the catalog knows.
        catalogued: Vec<String>,
    },
    /// The object is not the snapshot recorded, or not a good snapshot.
    #[error("{0}; nothing was changed")]
    Verify(#[from] VerifyError),
    /// A snapshot of another cluster, without `force`.
    #[error("{object} is a snapshot of cluster {source_cluster} (cluster id {source_id}), and this is cluster {cluster} (cluster id {cluster_id}); nothing was changed. Restoring it replaces this cluster's data, keyring and credentials with the other cluster's: give force to do it, with the other cluster's shares in SSM")]
    OtherCluster {
        /// The object.
        object: Location,
        /// Its cluster.
        source_cluster: String,
        /// Its cluster id.
        source_id: String,
        /// This cluster.
        cluster: String,
        /// This cluster's id.
        cluster_id: String,
    },
    /// The source cluster's shares, needed after a forced restore, are not in SSM.
    #[error("a snapshot of cluster {source_cluster} brings its keys: this cluster will need {needed} of its shares, and {path} holds {found}; nothing was changed. Store them there, then retry")]
    SourceSharesMissing {
        /// The source cluster.
        source_cluster: String,
        /// Where they were looked for.
        path: String,
        /// How many are needed.
        needed: usize,
        /// How many were found.
        found: usize,
    },
    /// Shares could not be read.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// Another backup or restore holds the lock.
    #[error("a backup or restore ({owner}) holds the backup lock until {until} at the latest; nothing was changed. Retry when it is done")]
    Busy {
        /// Who.
        owner: String,
        /// Until when.
        until: DateTime<Utc>,
    },
    /// No node answered as active.
    #[error("no node of the cluster is active (asked {asked} nodes); nothing was changed")]
    NoActiveNode {
        /// How many were asked.
        asked: usize,
    },
    /// The node refused the snapshot or the transfer failed.
    #[error("sending {object} to {node} failed (the safety snapshot is {safety})")]
    Send {
        /// The object.
        object: Location,
        /// The node.
        node: String,
        /// The safety snapshot.
        safety: Location,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The cluster did not come back healthy in time.
    #[error("the snapshot was sent, and the cluster has no healthy active node yet (the safety snapshot is {safety})")]
    NotHealthy {
        /// The safety snapshot.
        safety: Location,
        /// The wait.
        #[source]
        source: WaitExpired,
    },
    /// A sealed node refused the shares.
    #[error("unsealing {node} after the restore failed")]
    Unseal {
        /// The node.
        node: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
}

impl From<RestoreError> for FunctionError {
    fn from(e: RestoreError) -> Self {
        use RestoreError as E;
        let (retry_helps, variant) = match &e {
            E::Event(EventError::Unrecognised { .. }) => (false, "UnrecognisedEvent"),
            E::Event(EventError::Invalid { .. }) => (false, "InvalidEvent"),
            E::Backup(b) => match b {
                BackupError::Lock(_) => (true, "LockUnavailable"),
                BackupError::Catalog(_) => (true, "CatalogUnavailable"),
                BackupError::Login(l) if l.is_configuration() => (false, "LoginRefused"),
                BackupError::Login(_) => (true, "LoginUnavailable"),
                BackupError::Fleet(_) => (true, "FleetUnavailable"),
                BackupError::Store(_) => (true, "BucketUnavailable"),
                _ => (true, "SafetySnapshotFailed"),
            },
            E::NoSnapshot { .. } => (false, "NoSnapshot"),
            E::NoneAsOf { .. } => (false, "NoSnapshotAsOf"),
            E::OutsidePrefix { .. } => (false, "OutsidePrefix"),
            E::NoSuchVersion { .. } => (false, "NoSuchVersion"),
            E::NotCatalogued { .. } => (false, "NotCatalogued"),
            E::Verify(VerifyError::Read { .. }) => (true, "BucketUnavailable"),
            E::Verify(_) => (false, "ChecksumMismatch"),
            E::OtherCluster { .. } => (false, "OtherCluster"),
            E::SourceSharesMissing { .. } => (false, "SourceSharesMissing"),
            E::Parameter(ParameterError::Missing { .. }) => (false, "MissingParameter"),
            E::Parameter(_) => (true, "ParameterStoreUnavailable"),
            E::Busy { .. } => (true, "Busy"),
            E::NoActiveNode { .. } => (true, "NoActiveNode"),
            E::Send { .. } => (false, "RestoreFailed"),
            E::NotHealthy { .. } => (false, "NotHealthy"),
            E::Unseal { .. } => (false, "UnsealFailed"),
        };
        Self::new(retry_helps, variant, &e)
    }
}

/// The snapshot chosen, before it is checked.
struct Chosen {
    object: StoredObject,
    location: Location,
    entry: Option<CatalogEntry>,
    source_cluster: String,
}

const POLL_INTERVAL: Duration = Duration::from_millis(500);

impl<N: NodeApi, P: ParameterStore> SnapshotRestore<N, P> {
    /// Parses `request` and carries it out.
    pub async fn handle(
        &self,
        request: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<RestoreOutcome, FunctionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        info!(time_left_ms = left.as_millis() as u64, "invocation started");
        Ok(self.run(request, request_id, deadline).await?)
    }

    async fn run(
        &self,
        request: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<RestoreOutcome, RestoreError> {
        let request = RestoreRequest::parse(request)?;
        let backup = &self.backup;
        let cluster = backup.settings.cluster.as_str();
        let chosen = self.choose(&request.snapshot).await?;
        let members = backup.fleet.members().await.map_err(BackupError::from)?;
        let asked = members.len();
        let Some((active, health)) = find_active(&backup.vault, members).await else {
            return Err(RestoreError::NoActiveNode { asked });
        };
        let this_id = health.cluster_id.clone().unwrap_or_default();
        let other_cluster = match &chosen.entry {
            Some(entry) => {
                entry.cluster != cluster
                    || (!entry.cluster_id.is_empty()
                        && !this_id.is_empty()
                        && entry.cluster_id != this_id)
            }
            None => true,
        };
        if other_cluster && !request.force {
            if chosen.entry.is_none() {
                return Err(self.not_catalogued(&chosen).await?);
            }
            return Err(RestoreError::OtherCluster {
                object: chosen.location.clone(),
                source_cluster: chosen.source_cluster.clone(),
                source_id: chosen
                    .entry
                    .as_ref()
                    .map(|e| e.cluster_id.clone())
                    .unwrap_or_default(),
                cluster: cluster.to_owned(),
                cluster_id: this_id,
            });
        }
        let shares = if other_cluster {
            Some(self.source_shares(&active, &chosen.source_cluster).await?)
        } else {
            None
        };
        let expected = chosen.entry.as_ref().map(|e| (e.sha256.as_str(), e.bytes));
        let facts = read_and_check(backup.store.as_ref(), &chosen.object, expected).await?;
        info!(object = %chosen.location, index = facts.index, term = facts.term, sha256 = %facts.sha256, "snapshot read back whole and checked");
        let plan = RestorePlan {
            snapshot: chosen.location.clone(),
            entry: chosen.entry.clone(),
            source_cluster: chosen.source_cluster.clone(),
            other_cluster,
            checked: facts.clone().into(),
        };
        if request.dry_run {
            info!(object = %plan.snapshot, "dry run: nothing was changed");
            return Ok(RestoreOutcome::WouldRestore(plan));
        }
        let owner = format!("restore {request_id}");
        if let Claim::HeldBy { owner, expires_at } = backup
            .locks
            .claim(BACKUP_LOCK, &owner, backup.settings.lock_ttl)
            .await
            .map_err(BackupError::from)?
        {
            return Err(RestoreError::Busy {
                owner,
                until: expires_at.into(),
            });
        }
        let result = self
            .locked_restore(plan, &facts, &active, &health, shares, &request, deadline)
            .await;
        if let Err(e) = backup.locks.release(BACKUP_LOCK, &owner).await {
            warn!(error = %error_chain(&e), "releasing the backup lock failed; it lapses by itself");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn locked_restore(
        &self,
        plan: RestorePlan,
        facts: &SnapshotFacts,
        active: &FleetNode,
        health: &Health,
        shares: Option<Vec<Secret>>,
        request: &RestoreRequest,
        deadline: Instant,
    ) -> Result<RestoreOutcome, RestoreError> {
        let backup = &self.backup;
        let token = backup
            .login
            .token(&backup.vault, &active.addr)
            .await
            .map_err(BackupError::from)?;
        let safety = backup
            .take_from(
                active,
                health,
                &token,
                BackupKind::PreRestore,
                Some(format!("before restoring {}", plan.snapshot)),
            )
            .await?;
        info!(safety = %safety.object, "safety snapshot taken");
        let object = stored(&plan.snapshot);
        let body = backup
            .store
            .open(&object)
            .await
            .map_err(|source| VerifyError::Read {
                object: plan.snapshot.clone(),
                source,
            })?;
        let stream = checked_stream(body, facts.sha256.clone());
        info!(node = %active.addr, object = %plan.snapshot, force = plan.other_cluster, "sending the snapshot to the active node");
        backup
            .vault
            .restore_snapshot(
                &active.addr,
                &token,
                Box::pin(stream),
                plan.other_cluster,
                self.settings.send_timeout,
            )
            .await
            .map_err(|source| RestoreError::Send {
                object: plan.snapshot.clone(),
                node: active.addr.to_string(),
                safety: safety.object.clone(),
                source,
            })?;
        // The token may not exist in the restored data.
        backup.login.forget();
        let (node, unsealed) = self
            .wait_healthy(shares.as_deref(), &safety.object, deadline)
            .await?;
        let (autopilot_healthy, failure_tolerance) = self.wait_autopilot(&node, deadline).await;
        let applied_index = backup
            .vault
            .leader(&node.addr)
            .await
            .map(|l| l.raft_applied_index)
            .unwrap_or_default();
        let record = super::catalog::RestoreRecord {
            restored_at: Utc::now(),
            source: plan.snapshot.clone(),
            source_cluster: plan.source_cluster.clone(),
            index: facts.index,
            term: facts.term,
            safety_snapshot: safety.object.clone(),
            forced: request.force,
            reason: request.reason.clone(),
        };
        backup
            .catalog
            .put_restore(&backup.settings.cluster, &record)
            .await
            .map_err(BackupError::from)?;
        info!(object = %plan.snapshot, index = facts.index, term = facts.term, active = %node.addr, applied_index, "restore done: the snapshot is in force");
        Ok(RestoreOutcome::Restored(RestoreReport {
            plan,
            safety_snapshot: safety.object,
            active_node: node.addr.to_string(),
            unsealed,
            applied_index,
            autopilot_healthy,
            failure_tolerance,
        }))
    }

    /// The snapshot the selector names, from the catalog (or, for an exact key and
    /// version, from the bucket when the catalog does not know it).
    async fn choose(&self, selector: &SnapshotSelector) -> Result<Chosen, RestoreError> {
        let backup = &self.backup;
        let cluster = &backup.settings.cluster;
        let from_entry = |entry: CatalogEntry| Chosen {
            object: stored(&entry.object),
            location: entry.object.clone(),
            source_cluster: entry.cluster.clone(),
            entry: Some(entry),
        };
        let entries = |c: ClusterName| async move {
            backup
                .catalog
                .entries(&c)
                .await
                .map_err(|e| RestoreError::Backup(e.into()))
        };
        let chosen = match selector {
            SnapshotSelector::Latest(_) => {
                let newest = backup
                    .catalog
                    .newest(cluster)
                    .await
                    .map_err(BackupError::from)?;
                from_entry(newest.ok_or_else(|| RestoreError::NoSnapshot {
                    cluster: cluster.to_string(),
                })?)
            }
            SnapshotSelector::AsOf { as_of } => {
                let all = entries(cluster.clone()).await?;
                let first = all.first().map(|e| e.taken_at);
                let entry = all
                    .into_iter()
                    .rfind(|e| e.taken_at <= *as_of)
                    .ok_or_else(|| RestoreError::NoneAsOf {
                        cluster: cluster.to_string(),
                        as_of: *as_of,
                        first,
                    })?;
                from_entry(entry)
            }
            SnapshotSelector::Exact { key, version_id } => {
                let prefix = format!("{}/", backup.settings.prefix);
                let source = key
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split_once('/'))
                    .map(|(c, _)| c.to_owned())
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| RestoreError::OutsidePrefix {
                        key: key.clone(),
                        prefix: prefix.clone(),
                    })?;
                let object = StoredObject {
                    key: key.clone(),
                    version_id: Some(version_id.clone()),
                };
                let location = backup.store.location_of(&object);
                let catalogued = match source.parse::<ClusterName>() {
                    Ok(c) => entries(c).await?.into_iter().find(|e| {
                        e.object.key == *key && e.object.version_id.as_deref() == Some(version_id)
                    }),
                    Err(_) => None,
                };
                match catalogued {
                    Some(entry) => from_entry(entry),
                    None => Chosen {
                        object,
                        location,
                        entry: None,
                        source_cluster: source,
                    },
                }
            }
        };
        if backup
            .store
            .head(&chosen.object)
            .await
            .map_err(BackupError::from)?
            .is_none()
        {
            return Err(RestoreError::NoSuchVersion {
                object: chosen.location,
            });
        }
        Ok(chosen)
    }

    async fn not_catalogued(&self, chosen: &Chosen) -> Result<RestoreError, RestoreError> {
        let catalogued = match chosen.source_cluster.parse::<ClusterName>() {
            Ok(c) => self
                .backup
                .catalog
                .entries(&c)
                .await
                .map_err(BackupError::from)?
                .into_iter()
                .filter(|e| e.object.key == chosen.object.key)
                .filter_map(|e| e.object.version_id)
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(RestoreError::NotCatalogued {
            object: chosen.location.clone(),
            cluster: chosen.source_cluster.clone(),
            catalogued,
        })
    }

    /// The source cluster's shares, as many as this cluster's threshold (a standby
    /// cluster is initialised with its primary's share count and threshold).
    async fn source_shares(
        &self,
        active: &FleetNode,
        source_cluster: &str,
    ) -> Result<Vec<Secret>, RestoreError> {
        let status = self
            .backup
            .vault
            .seal_status(&active.addr)
            .await
            .map_err(|source| RestoreError::Unseal {
                node: active.addr.to_string(),
                source,
            })?;
        let kind = if status.recovery_seal || status.seal_type != "shamir" {
            "recovery"
        } else {
            "unseal"
        };
        let needed = status.threshold.max(1) as usize;
        let path = format!("{}/{source_cluster}/{kind}", self.settings.ssm_prefix);
        let mut shares = Vec::new();
        for n in 1..=needed {
            match self.parameters.secret(&format!("{path}/share-{n}")).await {
                Ok(share) => shares.push(share),
                Err(ParameterError::Missing { .. }) => {
                    return Err(RestoreError::SourceSharesMissing {
                        source_cluster: source_cluster.to_owned(),
                        path,
                        needed,
                        found: shares.len(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(shares)
    }

    /// Waits for an active, unsealed node; unseals sealed Shamir nodes with `shares`
    /// (the source cluster's, after a forced restore) on the way.
    async fn wait_healthy(
        &self,
        shares: Option<&[Secret]>,
        safety: &Location,
        deadline: Instant,
    ) -> Result<(FleetNode, Vec<String>), RestoreError> {
        let backup = &self.backup;
        let unsealed = std::sync::Mutex::new(Vec::new());
        let waited = poll_until(
            "a healthy active node after the restore",
            self.settings.healthy_timeout,
            deadline,
            POLL_INTERVAL,
            || {
                let unsealed = &unsealed;
                async move {
                    let members = backup.fleet.members().await.map_err(BackupError::from)?;
                    let mut seen = Vec::new();
                    for node in &members {
                        let Ok(status) = backup.vault.seal_status(&node.addr).await else {
                            seen.push(format!("{}: no answer", node.addr));
                            continue;
                        };
                        if status.sealed && status.seal_type == "shamir" {
                            if let Some(shares) = shares {
                                self.unseal(node, shares).await?;
                                if let Ok(mut list) = unsealed.lock() {
                                    list.push(node.addr.to_string());
                                }
                                continue;
                            }
                        }
                        seen.push(format!("{}: sealed {}", node.addr, status.sealed));
                    }
                    match find_active(&backup.vault, members).await {
                        Some((node, h)) if !h.sealed => Ok::<_, RestoreError>(Look::Ready(node)),
                        _ => Ok(Look::NotYet(seen.join(", "))),
                    }
                }
            },
        )
        .await?;
        let node = waited.map_err(|source| RestoreError::NotHealthy {
            safety: safety.clone(),
            source,
        })?;
        Ok((node, unsealed.into_inner().unwrap_or_default()))
    }

    /// Waits (within the healthy timeout) until autopilot judges every server healthy
    /// again; returns what it saw last. The snapshot is in force whatever this finds, so
    /// a follower still catching up is reported, not an error.
    async fn wait_autopilot(&self, node: &FleetNode, deadline: Instant) -> (bool, Option<u32>) {
        let backup = &self.backup;
        let last = std::sync::Mutex::new(None);
        let waited = poll_until(
            "autopilot to judge every server healthy after the restore",
            self.settings.healthy_timeout,
            deadline,
            POLL_INTERVAL,
            || {
                let last = &last;
                async move {
                    // The token from before the restore may not exist in the restored data.
                    let token = backup.login.token(&backup.vault, &node.addr).await?;
                    let state = match backup.vault.autopilot_state(&node.addr, &token).await {
                        Ok(state) => state,
                        Err(e) => {
                            backup.login.forget();
                            return Ok::<_, crate::cluster::auth::LoginError>(Look::NotYet(
                                error_chain(&e),
                            ));
                        }
                    };
                    if let Ok(mut seen) = last.lock() {
                        *seen = Some(state.failure_tolerance);
                    }
                    Ok(if state.healthy {
                        Look::Ready(())
                    } else {
                        Look::NotYet(format!("failure tolerance {}", state.failure_tolerance))
                    })
                }
            },
        )
        .await;
        let tolerance = last.into_inner().unwrap_or_default();
        match waited {
            Ok(Ok(())) => (true, tolerance),
            Ok(Err(expired)) => {
                warn!(error = %expired, "the snapshot is in force; autopilot does not judge every server healthy yet");
                (false, tolerance)
            }
            Err(e) => {
                warn!(error = %error_chain(&e), "the snapshot is in force; autopilot could not be read");
                (false, tolerance)
            }
        }
    }

    async fn unseal(&self, node: &FleetNode, shares: &[Secret]) -> Result<(), RestoreError> {
        let vault = &self.backup.vault;
        let failed = |source| RestoreError::Unseal {
            node: node.addr.to_string(),
            source,
        };
        vault.unseal_reset(&node.addr).await.map_err(failed)?;
        for share in shares {
            if !vault
                .unseal(&node.addr, share)
                .await
                .map_err(failed)?
                .sealed
            {
                break;
            }
        }
        info!(node = %node.addr, "unsealed with the source cluster's shares");
        Ok(())
    }
}

/// The object's body as a stream for the request, checked as it passes: if the archive
/// fails its check or its SHA-256 is not `sha256`, the stream ends in an error before
/// its last chunk, so the node never receives a whole (and wrong) snapshot.
fn checked_stream(
    body: Box<ObjectBody>,
    sha256: String,
) -> impl futures::Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
    type Failure = Box<dyn std::error::Error + Send + Sync>;
    let state = Some((body, SnapshotCheck::new()));
    futures::stream::unfold(state, move |state| {
        let sha256 = sha256.clone();
        async move {
            let (mut body, mut check) = state?;
            match body.next_chunk().await {
                Ok(Some(chunk)) => match check.update(&chunk) {
                    Ok(()) => Some((Ok(chunk), Some((body, check)))),
                    Err(e) => Some((Err(Box::new(e) as Failure), None)),
                },
                Ok(None) => match check.finish() {
                    Ok(facts) if facts.sha256 == sha256 => None,
                    Ok(facts) => Some((
                        Err(Box::new(ArchiveError::Mismatch {
                            file: format!(
                                "the whole object (SHA-256 {} read, {sha256} checked before)",
                                facts.sha256
                            ),
                        }) as Failure),
                        None,
                    )),
                    Err(e) => Some((Err(Box::new(e) as Failure), None)),
                },
                Err(e) => Some((Err(Box::new(e) as Failure), None)),
            }
        }
    })
}

/// Everything snapshot-restore reads at cold start.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The backup path's settings (read for `snapshot-restore`'s AppRole).
    pub backup: super::backup::BackupConfig,
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
        let backup = super::backup::BackupConfig::from(env, "snapshot-restore")?;
        let restore = RestoreSettings::from(env, &backup.cluster.cluster)?;
        Ok(Self { backup, restore })
    }
}
