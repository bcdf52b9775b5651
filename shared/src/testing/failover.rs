//! Fakes of dr-failover's own ports: its record, the primary's API, and the restore into
//! the standby (which makes a fake standby cluster hold the primary's cluster id and
//! index, as a forced restore does).

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::FakeCluster;
use crate::{
    cluster::node::Health,
    failover::{
        record::{FailoverRecord, FailoverRecords, Phase, PhaseDone},
        ClusterRebuilt, ClusterRestore, ClusterRestored, PrimaryApi, ProbeFailure, StandbyBackup,
    },
    lambda::FunctionError,
    lifecycle::records::RecordError,
    snapshots::{catalog::CatalogEntry, store::Location},
};

/// The failover record, in memory.
#[derive(Default)]
pub struct FakeFailoverRecords {
    /// The record.
    pub record: Mutex<Option<FailoverRecord>>,
    /// How many writes were made.
    pub writes: AtomicUsize,
    /// Records archived, oldest first.
    pub history: Mutex<Vec<FailoverRecord>>,
}

impl FakeFailoverRecords {
    /// Holds a failover of the primary that has fenced it (every phase through
    /// `fenced`), as the DR region records it.
    pub fn fencing() -> Self {
        Self {
            record: Mutex::new(Some(failover_through(Phase::Fenced))),
            ..Self::default()
        }
    }
}

/// A failover of the primary `prod` as the DR region records it, every phase through
/// `last` completed.
pub fn failover_through(last: Phase) -> FailoverRecord {
    let entry = CatalogEntry {
        cluster: "prod".into(),
        taken_at: chrono::Utc::now(),
        object: Location {
            region: "eu-central-1".into(),
            bucket: "dr-snapshots".into(),
            key: "vault-lifecycle/prod/1h.snap".into(),
            version_id: None,
        },
        dr_copy: None,
        sha256: "00".into(),
        bytes: 1,
        index: 1,
        term: 1,
        state_size: 1,
        cluster_id: "c-primary".into(),
        server_version: "2.7.2".into(),
        kind: crate::snapshots::catalog::BackupKind::Scheduled,
        reason: None,
        share_generation: Some(1),
        database_generation: None,
        canary: None,
        drill: None,
    };
    let mut record = FailoverRecord::for_drill(&entry);
    record.trigger = "alarm prod-vault-down".into();
    record.phases = Phase::ALL
        .into_iter()
        .take_while(|p| *p <= last)
        .map(|phase| PhaseDone {
            phase,
            at: chrono::Utc::now(),
            took_ms: 1,
            detail: String::new(),
        })
        .collect();
    record
}

#[async_trait]
impl FailoverRecords for FakeFailoverRecords {
    async fn current(&self) -> Result<Option<FailoverRecord>, RecordError> {
        Ok(self
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
    async fn put(&self, record: &FailoverRecord) -> Result<(), RecordError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
        Ok(())
    }
    async fn archive(&self, record: &FailoverRecord) -> Result<(), RecordError> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record.clone());
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

/// The primary's API: answers from a script, then the last answer forever.
pub struct FakePrimary {
    /// The answers still to give; the last one repeats.
    pub answers: Mutex<VecDeque<Result<Health, ProbeFailure>>>,
    /// How many probes were made.
    pub probes: AtomicUsize,
}

impl FakePrimary {
    /// A primary that never answers.
    pub fn down() -> Self {
        Self::answering(vec![Err(ProbeFailure::NoAnswer(
            "connection refused".into(),
        ))])
    }

    /// A primary whose active node answers healthy.
    pub fn healthy() -> Self {
        Self::answering(vec![Ok(Health {
            code: 200,
            initialized: true,
            sealed: false,
            standby: false,
            version: "2.7.2".into(),
            cluster_id: Some("c-primary".into()),
        })])
    }

    /// A primary that answers these, in order.
    pub fn answering(answers: Vec<Result<Health, ProbeFailure>>) -> Self {
        Self {
            answers: Mutex::new(answers.into()),
            probes: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl PrimaryApi for FakePrimary {
    async fn health(&self) -> Result<Health, ProbeFailure> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let none = || Err(ProbeFailure::NoAnswer("no answer".into()));
        if answers.len() > 1 {
            answers.pop_front().unwrap_or_else(none)
        } else {
            answers.front().cloned().unwrap_or_else(none)
        }
    }
}

/// The restore into the standby: the fake standby cluster takes the snapshot's cluster
/// id; `fail_next` makes the next restore fail as a transient error.
pub struct FakeClusterRestore {
    /// The standby (shared with the failover's node port, a `FailingNode`).
    pub standby: std::sync::Arc<FakeCluster>,
    /// The cluster id a restore brings (the primary's).
    pub cluster_id: String,
    /// The restores made, in order.
    pub restored: Mutex<Vec<Location>>,
    /// Fail the next this many restores.
    pub fail_next: AtomicUsize,
    /// The error type those failures give (default `Transient.SendFailed`).
    pub fail_as: Mutex<String>,
    /// The Raft index the cluster reports applied after a restore (`None`: unchanged).
    pub applied_index: Option<u64>,
    /// The canary each snapshot (by key) brings; a snapshot not named here leaves the
    /// cluster's canary as it was.
    pub canaries: Mutex<std::collections::BTreeMap<String, String>>,
    /// How many of the restores were rebuilds.
    pub rebuilds: AtomicUsize,
}

#[async_trait]
impl ClusterRestore for FakeClusterRestore {
    async fn restore(
        &self,
        snapshot: &Location,
        _reason: &str,
        _request_id: &str,
        _deadline: Instant,
    ) -> Result<ClusterRestored, FunctionError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let error_type = self
                .fail_as
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            return Err(FunctionError {
                error_type: if error_type.is_empty() {
                    "Transient.SendFailed".into()
                } else {
                    error_type
                },
                message: "the standby refused the snapshot".into(),
            });
        }
        {
            let mut state = self.standby.state();
            state.cluster_id = self.cluster_id.clone();
            if self.applied_index.is_some() {
                state.applied_index = self.applied_index;
            }
            let canaries = self.canaries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(canary) = canaries.get(&snapshot.key) {
                state.canary = Some(canary.clone());
            }
        }
        self.restored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(snapshot.clone());
        let active = self.standby.active().unwrap_or_default();
        Ok(ClusterRestored {
            active_node: self.standby.addr(&active).to_string(),
            applied_index: 0,
            safety_snapshot: snapshot.clone(),
        })
    }

    /// The fake's one cluster plays the rebuilt cluster as it plays a restored one; its
    /// nodes, uninitialised before, are initialised and unsealed, the first one active.
    async fn rebuild(
        &self,
        snapshot: &Location,
        _seal: (u8, u8),
        deadline: Instant,
    ) -> Result<ClusterRebuilt, FunctionError> {
        {
            let mut state = self.standby.state();
            state.initialised = true;
            for node in state.nodes.values_mut() {
                node.initialised = true;
                node.sealed = false;
            }
            if state.leader.is_none() {
                state.leader = state.nodes.keys().next().cloned();
            }
        }
        self.rebuilds.fetch_add(1, Ordering::SeqCst);
        let restored = self.restore(snapshot, "", "", deadline).await?;
        Ok(ClusterRebuilt {
            node: restored.active_node,
            applied_index: restored.applied_index,
            sent_now: true,
        })
    }

    async fn canary(&self) -> Result<Option<String>, FunctionError> {
        let state = self.standby.state();
        if state.leader.is_none() {
            return Err(FunctionError {
                error_type: "Transient.CanaryUnread".into(),
                message: "no active node".into(),
            });
        }
        Ok(state.canary.clone())
    }
}

/// Shared, as a test keeps a handle on it.
#[async_trait]
impl<T: FailoverRecords> FailoverRecords for std::sync::Arc<T> {
    async fn current(&self) -> Result<Option<FailoverRecord>, RecordError> {
        (**self).current().await
    }
    async fn put(&self, record: &FailoverRecord) -> Result<(), RecordError> {
        (**self).put(record).await
    }
    async fn archive(&self, record: &FailoverRecord) -> Result<(), RecordError> {
        (**self).archive(record).await
    }
}

/// Shared, as a test keeps a handle on it.
#[async_trait]
impl<T: ClusterRestore> ClusterRestore for std::sync::Arc<T> {
    async fn restore(
        &self,
        snapshot: &Location,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<ClusterRestored, FunctionError> {
        (**self)
            .restore(snapshot, reason, request_id, deadline)
            .await
    }
    async fn rebuild(
        &self,
        snapshot: &Location,
        seal: (u8, u8),
        deadline: Instant,
    ) -> Result<ClusterRebuilt, FunctionError> {
        (**self).rebuild(snapshot, seal, deadline).await
    }
    async fn canary(&self) -> Result<Option<String>, FunctionError> {
        (**self).canary().await
    }
}

/// A snapshot of the standby: each call returns `entry` (a fresh object version per
/// request id) and counts.
pub struct FakeStandbyBackup {
    /// What a backup returns.
    pub entry: CatalogEntry,
    /// The request ids backed up, in order.
    pub requests: Mutex<Vec<String>>,
}

#[async_trait]
impl StandbyBackup for FakeStandbyBackup {
    async fn back_up(
        &self,
        _reason: &str,
        request_id: &str,
        _deadline: Instant,
    ) -> Result<CatalogEntry, FunctionError> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request_id.to_owned());
        Ok(self.entry.clone())
    }
}

/// Shared, as a test keeps a handle on it.
#[async_trait]
impl<T: StandbyBackup> StandbyBackup for std::sync::Arc<T> {
    async fn back_up(
        &self,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<CatalogEntry, FunctionError> {
        (**self).back_up(reason, request_id, deadline).await
    }
}
