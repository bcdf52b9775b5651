//! What a failover has done so far, kept in the DR region's state table: the phases it
//! completed (each with its duration), the snapshot it chose, the primary's group size
//! before it was fenced, and how it ended. A run cut off in any phase reads it and goes
//! on from the next phase; a repeated alarm finds it done and changes nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    cluster::dr_ports::Capacity, keys::Generation, lifecycle::records::RecordError,
    snapshots::store::Location,
};

/// The phases of a failover, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The primary was confirmed down (or the operator forced the failover).
    Confirmed,
    /// The primary's group was scaled to 0 (or, its region unreachable, recorded fenced).
    Fenced,
    /// A standby node answers as the active node of the DR cluster.
    StandbyUp,
    /// The snapshot was restored into it and it was unsealed with the primary's shares.
    Restored,
    /// The standby's own parameters now hold the primary's shares of that generation
    /// (marked in force) and the primary's AppRole credentials, which the restored data
    /// knows: the DR region's functions unseal, join and log in with them.
    Adopted,
    /// The DR group was given its serving size; node-lifecycle joins the new nodes.
    Scaled,
    /// The active DR node holds the primary's cluster id, unsealed, at or past the
    /// snapshot's Raft index.
    Verified,
    /// The DNS record points at the DR cluster.
    Switched,
    /// The operators were notified.
    Notified,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 9] = [
        Phase::Confirmed,
        Phase::Fenced,
        Phase::StandbyUp,
        Phase::Restored,
        Phase::Adopted,
        Phase::Scaled,
        Phase::Verified,
        Phase::Switched,
        Phase::Notified,
    ];

    /// Its name in records, plans and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Confirmed => "confirmed",
            Phase::Fenced => "fenced",
            Phase::StandbyUp => "standby-up",
            Phase::Restored => "restored",
            Phase::Adopted => "adopted",
            Phase::Scaled => "scaled",
            Phase::Verified => "verified",
            Phase::Switched => "switched",
            Phase::Notified => "notified",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One completed phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseDone {
    /// Which.
    pub phase: Phase,
    /// When it completed.
    pub at: DateTime<Utc>,
    /// How long it took, in milliseconds (in the run that completed it).
    pub took_ms: u64,
    /// What it found or did, for the operator.
    pub detail: String,
}

/// Why the last run stopped short of the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseFailed {
    /// The phase that failed.
    pub phase: Phase,
    /// When.
    pub at: DateTime<Utc>,
    /// The error, as its chain of messages (never a secret).
    pub error: String,
    /// Whether the primary's group was given its size back (the DR side did not serve).
    pub unfenced: bool,
}

/// A failover of one primary cluster to its DR standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// The request that started it.
    pub id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// What started it: the alarm and how it arrived, or the operator's reason.
    pub trigger: String,
    /// The snapshot chosen (a DR copy, found in the DR region's catalog): kept, so a
    /// resumed run restores the same one.
    pub snapshot: Location,
    /// When it was taken (the recovery point).
    pub snapshot_taken_at: DateTime<Utc>,
    /// Its Raft index.
    pub snapshot_index: u64,
    /// The primary's cluster id in it.
    pub snapshot_cluster_id: String,
    /// The canary written just before it was taken (`None`: it carries none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_canary: Option<String>,
    /// The share generation it needs.
    pub share_generation: Generation,
    /// The primary group's size before it was fenced (`None`: its region did not answer,
    /// and it was recorded fenced only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_group_was: Option<Capacity>,
    /// The standby group's size before the failover raised it (given back by a
    /// failback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_group_was: Option<Capacity>,
    /// The standby had no initialised node (a pilot light emptied again after its first
    /// use): the snapshot is restored by a rebuild of the standby's cluster in its new
    /// node, which its node-lifecycle left uninitialised.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby_rebuild: bool,
    /// The phases completed, in order.
    pub phases: Vec<PhaseDone>,
    /// Set when the last run failed; cleared when a run goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<PhaseFailed>,
    /// The return to the primary, once asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<Failback>,
}

/// The phases of a failback, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailbackPhase {
    /// The primary has an active, unsealed node again.
    PrimaryServing,
    /// A snapshot of the DR cluster was taken and catalogued in the DR region.
    DrSnapshot,
    /// It was restored into the primary (forced: another cluster's snapshot).
    RestoredIntoPrimary,
    /// The primary's active node applied at least that snapshot's Raft index.
    PrimaryVerified,
    /// The DNS record points at the primary again.
    SwitchedBack,
    /// The primary's group has its size from before the fence.
    Unfenced,
    /// The standby group has its size from before the failover.
    StandbyIdle,
    /// The operators were told.
    Notified,
}

impl FailbackPhase {
    /// Every phase, in order.
    pub const ALL: [FailbackPhase; 8] = [
        FailbackPhase::PrimaryServing,
        FailbackPhase::DrSnapshot,
        FailbackPhase::RestoredIntoPrimary,
        FailbackPhase::PrimaryVerified,
        FailbackPhase::SwitchedBack,
        FailbackPhase::Unfenced,
        FailbackPhase::StandbyIdle,
        FailbackPhase::Notified,
    ];
}

/// One completed failback phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailbackDone {
    /// Which.
    pub phase: FailbackPhase,
    /// When it completed.
    pub at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
    /// What it found or did.
    pub detail: String,
}

/// A failback's progress, kept in the failover's record until it ends (then the record
/// is archived and the next alarm may fail over again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failback {
    /// The request that started it.
    pub id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The snapshot of the DR cluster restored into the primary, once taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<crate::snapshots::catalog::CatalogEntry>,
    /// The fence emptied the primary's group and no node of it was initialised when the
    /// failback was asked for: the primary's cluster is rebuilt from the DR snapshot in
    /// a new node (see `PrimaryServing` and `RestoredIntoPrimary`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,
    /// The phases completed, in order.
    pub phases: Vec<FailbackDone>,
    /// Why the last run stopped, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl Failback {
    /// What `phase` recorded, once completed.
    pub fn detail(&self, phase: FailbackPhase) -> Option<&str> {
        self.phases
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.detail.as_str())
    }
}

impl FailoverRecord {
    /// A record of `id`, started now by `trigger`, to restore `entry`, no phase done yet.
    pub(crate) fn new(
        id: &str,
        trigger: &str,
        entry: &crate::snapshots::catalog::CatalogEntry,
    ) -> Self {
        Self {
            id: id.to_owned(),
            started_at: chrono::Utc::now(),
            trigger: trigger.to_owned(),
            snapshot: entry.object.clone(),
            snapshot_taken_at: entry.taken_at,
            snapshot_index: entry.index,
            snapshot_cluster_id: entry.cluster_id.clone(),
            snapshot_canary: entry.canary.clone(),
            share_generation: entry.share_generation.unwrap_or(1),
            primary_group_was: None,
            standby_group_was: None,
            standby_rebuild: false,
            phases: Vec::new(),
            failed: None,
            failback: None,
        }
    }

    /// A record for a drill's checks of `entry` (never stored): the snapshot's identity
    /// and the share generation it needs.
    pub(crate) fn for_drill(entry: &crate::snapshots::catalog::CatalogEntry) -> Self {
        Self::new("drill", "restore drill", entry)
    }

    /// Takes `entry` as the snapshot to restore (its identity and the share generation
    /// it needs).
    pub(crate) fn choose(&mut self, entry: &crate::snapshots::catalog::CatalogEntry) {
        let chosen = Self::new(&self.id, &self.trigger, entry);
        self.snapshot = chosen.snapshot;
        self.snapshot_taken_at = chosen.snapshot_taken_at;
        self.snapshot_index = chosen.snapshot_index;
        self.snapshot_cluster_id = chosen.snapshot_cluster_id;
        self.snapshot_canary = chosen.snapshot_canary;
        self.share_generation = chosen.share_generation;
    }

    /// What `phase` recorded, once completed.
    pub fn detail(&self, phase: Phase) -> Option<&str> {
        self.phases
            .iter()
            .find(|p| p.phase == phase)
            .map(|p| p.detail.as_str())
    }

    /// The last phase completed.
    pub fn last_phase(&self) -> Option<Phase> {
        self.phases.last().map(|p| p.phase)
    }

    /// Whether every phase completed.
    pub fn is_done(&self) -> bool {
        self.last_phase() == Some(Phase::Notified)
    }

    /// Whether `phase` completed.
    pub fn completed(&self, phase: Phase) -> bool {
        self.phases.iter().any(|p| p.phase == phase)
    }

    /// Whether the DR cluster serves: verified and the DNS switched (from then on the
    /// primary stays fenced whatever fails).
    pub fn dr_serves(&self) -> bool {
        self.completed(Phase::Verified)
    }

    /// A failed run gave the primary's group its size back (and rewound the record).
    pub fn unfenced_after_failure(&self) -> bool {
        self.failed.as_ref().is_some_and(|f| f.unfenced)
    }

    /// The seconds from the first phase to the last completed.
    pub fn seconds_so_far(&self) -> f64 {
        self.phases
            .last()
            .map(|p| (p.at - self.started_at).num_milliseconds() as f64 / 1000.0)
            .unwrap_or_default()
    }
}

/// A failover that fenced a primary, as the primary's own functions see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fence {
    /// When the failover started.
    pub since: DateTime<Utc>,
    /// What started it.
    pub trigger: String,
    /// Its last phase completed.
    pub last_phase: String,
    /// An operator asked for the failback: the primary may serve again (the failback
    /// restores into it), though its backups and rotations wait for the end.
    pub failback_started: bool,
}

/// Whether the DR region's dr-failover has fenced this cluster: a failover of it is
/// recorded there (not yet archived by a failback) and its `fenced` phase completed. A
/// failover that failed before and gave the primary its size back fences nothing. The
/// record cannot be read: `None`, with a warning, as a primary whose DR region is
/// unreachable goes on as usual.
pub async fn fence_of(records: &dyn FailoverRecords) -> Option<Fence> {
    match records.current().await {
        Ok(Some(record)) if record.completed(Phase::Fenced) && !record.unfenced_after_failure() => {
            Some(Fence {
                since: record.started_at,
                trigger: record.trigger.clone(),
                last_phase: record.last_phase().map_or("none", Phase::as_str).to_owned(),
                failback_started: record.failback.is_some(),
            })
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "the DR region's failover record could not be read; going on as a primary that is not fenced");
            None
        }
    }
}

/// Where failover records are kept (the DR region's state table).
#[async_trait]
pub trait FailoverRecords: Send + Sync {
    /// The failover of the primary cluster, if one was ever started and not cleared.
    async fn current(&self) -> Result<Option<FailoverRecord>, RecordError>;
    /// Writes (replaces) it. Runs hold the failover lock while they write.
    async fn put(&self, record: &FailoverRecord) -> Result<(), RecordError>;
    /// Keeps it as history (under its start time) and clears the current one: the next
    /// alarm may fail over again.
    async fn archive(&self, record: &FailoverRecord) -> Result<(), RecordError>;
}
