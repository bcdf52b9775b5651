//! The restore drill: the newest DR copy of the primary's snapshots restored into the
//! idle standby, checked (the whole object against its catalog entry before sending; the
//! primary's cluster id and the snapshot's canary after, or for a snapshot without one
//! at least its Raft index), and its catalog
//! entry marked proven or failed. A failover never chooses a failed one. The age of the
//! newest proven copy is published as `LastProvenRestorableAgeSeconds` (dimension
//! `Cluster` = the primary), which an alarm watches.
//!
//! A drill never runs while a failover is recorded (the standby serves, or may be about
//! to), and holds the failover lock, so a failover waits for it or it waits for the
//! failover. A group at 0 (pilot light) is brought to 1 for the drill and given its 0
//! back after it: the first time, the standby's node-lifecycle initialises its cluster
//! in the new node and the copy is restored into it; every later time, node-lifecycle
//! leaves the new node uninitialised (its cluster has no node left) and the standby's
//! cluster is rebuilt in it from the copy.

use chrono::Utc;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    record::{FailoverRecord, Phase},
    verify::Holding,
    DrFailover, FailoverError, FailoverOutcome, FAILOVER_LOCK,
};
use crate::{
    cluster::{locks::Claim, node::NodeApi, ports::ParameterStore},
    error_chain,
    snapshots::{
        catalog::{CatalogEntry, DrillResult},
        store::Location,
    },
    telemetry::{Metric, Unit},
};

/// What a drill found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DrillReport {
    /// The DR copy drilled.
    pub snapshot: Location,
    /// When it was taken.
    pub taken_at: chrono::DateTime<Utc>,
    /// Whether it restored and held what its entry says.
    pub passed: bool,
    /// What the drill found.
    pub detail: String,
    /// How long the restore and the checks took, in milliseconds.
    pub took_ms: u64,
    /// The age of the newest proven copy after this drill (`None`: none is proven).
    pub last_proven_age_seconds: Option<i64>,
}

/// The restore errors that are the snapshot's fault: the drill marks it failed. Any other
/// (the standby unreachable, a login refused, a policy) says nothing about the snapshot.
const SNAPSHOT_FAULTS: [&str; 6] = [
    "ChecksumMismatch",
    "NoSuchVersion",
    "RestoreFailed",
    "NotHealthy",
    "UnsealFailed",
    "SharesRejected",
];

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// Runs one drill, or says why not.
    pub(super) async fn drill(
        &self,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        if let Some(record) = self.records.current().await? {
            return Ok(FailoverOutcome::DrillSkipped {
                why: format!(
                    "a failover is recorded (last phase {}): the standby is not idle",
                    record.last_phase().map_or("none", Phase::as_str)
                ),
            });
        }
        let owner = format!("drill {request_id}");
        if let Claim::HeldBy { owner, .. } = self
            .locks
            .claim(FAILOVER_LOCK, &owner, self.settings.lock_ttl)
            .await?
        {
            info!(owner = %owner, "the failover lock is held; no drill now");
            return Ok(FailoverOutcome::Busy { owner });
        }
        let result = self.locked_drill(request_id, deadline).await;
        if let Err(e) = self.locks.release(FAILOVER_LOCK, &owner).await {
            warn!(error = %error_chain(&e), "releasing the failover lock failed; it lapses by itself");
        }
        result
    }

    async fn locked_drill(
        &self,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        let mut entry = self.newest_copy().await?;
        let started = Instant::now();
        let was = self.standby_group.capacity().await?;
        let verdict = self.drill_entry(&entry, request_id, deadline).await;
        if was.desired == 0 {
            // Back to a pilot light, whatever the verdict: the next raise gets a new
            // node, which its node-lifecycle leaves uninitialised, and the standby's
            // cluster is rebuilt in it.
            match self.standby_group.set_desired(0).await {
                Ok(()) => info!("the pilot light is back at 0 nodes"),
                Err(e) => {
                    warn!(error = %error_chain(&e), "the standby group could not be given its 0 back; set it by hand")
                }
            }
        }
        let (passed, detail) = verdict?;
        entry.drill = Some(DrillResult {
            at: Utc::now(),
            passed,
            detail: detail.clone(),
        });
        self.catalog.put(&entry).await?;
        let last_proven_age_seconds = self.publish_proven_age().await;
        if passed {
            info!(snapshot = %entry.object, "drill passed: the snapshot is proven restorable");
        } else {
            warn!(snapshot = %entry.object, detail = %detail, "drill failed: the snapshot is marked failed and never chosen by a failover");
        }
        Ok(FailoverOutcome::Drilled(DrillReport {
            snapshot: entry.object,
            taken_at: entry.taken_at,
            passed,
            detail,
            took_ms: started.elapsed().as_millis() as u64,
            last_proven_age_seconds,
        }))
    }

    /// The newest DR copy of the primary's snapshots that has not failed a drill (a
    /// failed one stays failed: it is never drilled again, nor chosen by a failover).
    async fn newest_copy(&self) -> Result<CatalogEntry, FailoverError> {
        let entries = self.catalog.entries(&self.settings.primary).await?;
        let catalogued = entries.len();
        let failed = entries.iter().filter(|e| e.drill_failed()).count();
        entries
            .into_iter()
            .filter(|e| !e.drill_failed())
            .max_by_key(|e| e.taken_at)
            .ok_or_else(|| FailoverError::NoSnapshot {
                primary: self.settings.primary.to_string(),
                catalogued,
                failed,
            })
    }

    /// The verdict (passed, what was found), or an error that says nothing about the
    /// snapshot.
    async fn drill_entry(
        &self,
        entry: &CatalogEntry,
        request_id: &str,
        deadline: Instant,
    ) -> Result<(bool, String), FailoverError> {
        let (_, rebuild) = self.wait_until_standby_up(None, deadline).await?;
        let reason = format!("restore drill of {}", self.settings.primary);
        if let Err(e) = self
            .restore_or_rebuild(&entry.object, rebuild, &reason, request_id, deadline)
            .await
        {
            let name = super::phases::fault_name(&e.error_type);
            if SNAPSHOT_FAULTS.contains(&name) {
                return Ok((false, format!("{}: {}", e.error_type, e.message)));
            }
            return Err(FailoverError::Phase {
                phase: Phase::Restored,
                reason: format!(
                    "the drill could not restore: {}: {}",
                    e.error_type, e.message
                ),
                retry_helps: e.error_type.starts_with("Transient"),
            });
        }
        let record = FailoverRecord::for_drill(entry);
        // The standby now holds the primary's data: it unseals and logs in with the
        // primary's shares and credentials from here on, and its canary is read with
        // them.
        let adopted = self.ensure_adopted(&record, deadline).await?;
        match self.holds_snapshot(&record).await? {
            Holding::Held(held) => Ok((true, format!("{held}; {adopted}"))),
            Holding::NotHeld(why) => Ok((false, format!("restored, but {why}"))),
            Holding::Unknown(why) => Err(FailoverError::Phase {
                phase: Phase::Verified,
                reason: format!("the drill restored the snapshot but could not check it: {why}"),
                retry_helps: true,
            }),
        }
    }

    /// Publishes the age of the newest proven copy; `None` (nothing published) when no
    /// copy is proven or the catalog cannot be read.
    async fn publish_proven_age(&self) -> Option<i64> {
        let entries = match self.catalog.entries(&self.settings.primary).await {
            Ok(entries) => entries,
            Err(e) => {
                warn!(error = %error_chain(&e), "the catalog could not be read for the proven age");
                return None;
            }
        };
        let newest = entries
            .iter()
            .filter(|e| e.drill_proven())
            .map(|e| e.taken_at)
            .max()?;
        let age = (Utc::now() - newest).num_seconds();
        let metric = Metric::cluster(
            self.settings.primary.as_str(),
            "LastProvenRestorableAgeSeconds",
            age as f64,
            Unit::Seconds,
        );
        if let Err(e) = self.metrics.publish(&[metric]).await {
            warn!(error = %error_chain(&e), "LastProvenRestorableAgeSeconds not published");
        }
        Some(age)
    }
}
