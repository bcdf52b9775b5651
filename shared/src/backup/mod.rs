//! snapshot-backup's logic: one snapshot from the active node streamed into S3 and
//! checked as it passes, recorded in the catalog, copied to the DR region's bucket and
//! checked again there, then retention over the catalog.
//!
//! One backup runs at a time per cluster (the `backup` lock, which snapshot-restore
//! holds too), and each delivery of a request is remembered by its id, so a redelivered
//! schedule tick or a retried invocation stores no second snapshot. A copy to the DR
//! region that is missing (a run cut off, a region that failed) is made by the next run.

mod assembly;
mod config;
mod dr_copy;
mod error;
mod metrics;
mod retention;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

pub use self::{
    assembly::{assemble, from_sdk, DeployedBackup},
    config::{BackupConfig, BackupSettings, DrSettings},
    error::BackupError,
};
use crate::{
    cluster::{
        auth::VaultLogin,
        find_active,
        locks::{Claim, Locks},
        node::NodeApi,
        ports::{Fleet, ParameterStore},
    },
    error_chain,
    events::BackupRequest,
    keys::RecordedGenerations,
    lambda::{FunctionError, Handler, Invocation},
    snapshots::{
        catalog::{BackupKind, Catalog, CatalogEntry},
        store::{Location, SnapshotObjects},
    },
    telemetry::MetricsSink,
};

/// The lock backups and restores share.
pub const BACKUP_LOCK: &str = "backup";

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
    /// The DR region's catalog (`DR_STATE_TABLE`), where each DR copy is recorded as a
    /// snapshot of its own.
    pub dr_catalog: Option<Box<dyn Catalog>>,
    /// This cluster's failover record in the DR region's table (`None`: no DR table):
    /// a cluster that dr-failover fenced takes no snapshot.
    pub fence: Option<Box<dyn crate::failover::record::FailoverRecords>>,
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
    /// The DR region's dr-failover fenced this cluster (it failed over): no snapshot is
    /// taken, and none copied to the DR region, until a failback ends the failover.
    Fenced(crate::failover::record::Fence),
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
    /// Snapshots still without a DR copy, left to the next runs (`DR_COPIES_PER_RUN`).
    pub dr_copies_waiting: usize,
}

/// What retention did.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RetentionReport {
    /// How many snapshots the catalog holds now.
    pub kept: usize,
    /// The versions deleted (primary and DR copies), with their catalog entries.
    pub deleted: Vec<Location>,
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
        let stored = std::sync::atomic::AtomicBool::new(false);
        let result = self
            .login
            .retry_if_stale(|| self.run(event, request_id, &stored))
            .await;
        let stored = stored.load(std::sync::atomic::Ordering::Relaxed);
        self.publish(&result, started.elapsed(), stored).await;
        Ok(result?)
    }

    async fn run(
        &self,
        event: &serde_json::Value,
        request_id: &str,
        stored: &std::sync::atomic::AtomicBool,
    ) -> Result<BackupOutcome, BackupError> {
        let request = BackupRequest::parse(event)?;
        if let Some(records) = &self.fence {
            if let Some(fence) = crate::failover::record::fence_of(records.as_ref()).await {
                warn!(since = %fence.since, trigger = %fence.trigger, last_phase = %fence.last_phase, "the DR region failed this cluster over and fenced it; no snapshot is taken until the failback");
                return Ok(BackupOutcome::Fenced(fence));
            }
        }
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
        let result = self
            .locked_run(&delivery, kind, request.reason, stored)
            .await;
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
        stored: &std::sync::atomic::AtomicBool,
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
        // The snapshot is stored and catalogued: say so now, before retention and the
        // DR copies, which a slow DR bucket could run into the invocation's timeout.
        self.publish_stored(&snapshot).await;
        stored.store(true, std::sync::atomic::Ordering::Relaxed);
        let retention = self.apply_retention().await?;
        let dr_copy::DrCopies {
            copies: copied,
            failures,
            waiting,
        } = self.copy_missing_to_dr().await?;
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
            dr_copies_waiting: waiting,
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
        let generations = RecordedGenerations::now(
            &self.vault,
            &active.addr,
            self.login.parameters(),
            &self.settings.keys,
        )
        .await;
        let taker = self.settings.taker(
            &self.vault,
            self.store.as_ref(),
            self.catalog.as_ref(),
            generations,
        );
        Ok(taker
            .take_from(&active, &health, &token, kind, reason)
            .await?)
    }
}

#[async_trait::async_trait]
impl<N: NodeApi, P: ParameterStore> Handler for SnapshotBackup<N, P> {
    type Output = BackupOutcome;
    async fn handle(&self, invocation: Invocation) -> Result<BackupOutcome, FunctionError> {
        SnapshotBackup::handle(
            self,
            &invocation.payload,
            &invocation.request_id,
            invocation.deadline,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
