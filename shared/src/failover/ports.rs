//! What dr-failover stands on besides the shared ports: the primary cluster's API as seen
//! from the DR region, and the restore of a snapshot into the standby (snapshot-restore's
//! own steps, run by this function).

use async_trait::async_trait;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    cluster::{
        find_active, node::Health, node::NodeApi, policies::CANARY_PATH, ports::ParameterStore,
    },
    error_chain,
    ids::NodeAddr,
    lambda::FunctionError,
    restore::{RestoreOutcome, SnapshotRestore},
    snapshots::store::Location,
};

/// Why a probe of the primary found no health to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No answer: the primary (or the way to it) is down.
    NoAnswer(String),
    /// Something answered with a certificate the CA bundle does not trust: the primary's
    /// state cannot be told, which is never taken for "down".
    Untrusted(String),
}

/// The primary cluster's API, probed from the DR region.
#[async_trait]
pub trait PrimaryApi: Send + Sync {
    /// One health probe: the primary's answer, or why there was none.
    async fn health(&self) -> Result<Health, ProbeFailure>;
}

/// The primary's API at one address (its load balancer, not the failover record, which
/// points at the DR cluster after a failover), through the node port.
pub struct PrimaryAt<N> {
    /// The node port (its CA bundle trusts the primary's certificate).
    pub vault: N,
    /// `PRIMARY_API_ADDR`.
    pub addr: NodeAddr,
}

#[async_trait]
impl<N: NodeApi> PrimaryApi for PrimaryAt<N> {
    async fn health(&self) -> Result<Health, ProbeFailure> {
        self.vault.health(&self.addr).await.map_err(|e| {
            if e.is_untrusted_peer() {
                ProbeFailure::Untrusted(error_chain(&e))
            } else {
                ProbeFailure::NoAnswer(error_chain(&e))
            }
        })
    }
}

/// What a restore into a cluster left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRestored {
    /// The node active after it.
    pub active_node: String,
    /// The Raft index it applied.
    pub applied_index: u64,
    /// The safety snapshot of that cluster taken first.
    pub safety_snapshot: Location,
}

/// What a rebuild left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRebuilt {
    /// The node the cluster was rebuilt in, active now.
    pub node: String,
    /// The Raft index it applied.
    pub applied_index: u64,
    /// This run sent the snapshot (false: an earlier, cut-off run had).
    pub sent_now: bool,
}

/// Restores another cluster's snapshot into one cluster: the standby (a failover, a
/// drill) or the primary (a failback), each its own instance.
#[async_trait]
pub trait ClusterRestore: Send + Sync {
    /// Restores `snapshot` (catalogued in the DR region) with `force`, unsealing the
    /// cluster with the source's shares of the snapshot's generation; returns when an
    /// active node is healthy, or fails naming why.
    async fn restore(
        &self,
        snapshot: &Location,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<ClusterRestored, FunctionError>;

    /// Rebuilds the cluster from `snapshot` (catalogued in the DR region) in a new node
    /// of its group, when none of its nodes is initialised: throwaway keys, the snapshot
    /// sent with `force`, the node unsealed with the source's shares of the snapshot's
    /// generation. Resumes a rebuild an earlier run left half-way.
    /// `seal`: the source cluster's share count and threshold.
    async fn rebuild(
        &self,
        snapshot: &Location,
        seal: (u8, u8),
        deadline: Instant,
    ) -> Result<ClusterRebuilt, FunctionError>;

    /// The canary the cluster's active node holds now (`None`: none was ever written),
    /// read with a fresh login: the credentials in force now (after a failover's
    /// adoption, the primary's). An error when no node is active or the read fails.
    async fn canary(&self) -> Result<Option<String>, FunctionError>;
}

/// snapshot-restore's steps (check the whole object against the catalog, safety
/// snapshot, send with `force`, unseal with the source's shares, wait until healthy),
/// configured for the DR region's bucket, table and the standby's group.
#[async_trait]
impl<N: NodeApi, P: ParameterStore> ClusterRestore for SnapshotRestore<N, P> {
    async fn restore(
        &self,
        snapshot: &Location,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<ClusterRestored, FunctionError> {
        let request = json!({
            "snapshot": {"key": snapshot.key, "version_id": snapshot.version_id},
            "force": true,
            "reason": reason,
        });
        match self.handle(&request, request_id, deadline).await? {
            RestoreOutcome::Restored(report) => Ok(ClusterRestored {
                active_node: report.active_node,
                applied_index: report.applied_index,
                safety_snapshot: report.safety_snapshot,
            }),
            other => Err(FunctionError {
                error_type: "Transient.RestoreNotDone".into(),
                message: format!("the standby's restore did not run: {other:?}"),
            }),
        }
    }

    async fn rebuild(
        &self,
        snapshot: &Location,
        seal: (u8, u8),
        deadline: Instant,
    ) -> Result<ClusterRebuilt, FunctionError> {
        let rebuilt = SnapshotRestore::rebuild(self, snapshot, seal, deadline)
            .await
            .map_err(FunctionError::from)?;
        Ok(ClusterRebuilt {
            node: rebuilt.node.instance.to_string(),
            applied_index: rebuilt.applied_index,
            sent_now: rebuilt.initialised_now,
        })
    }

    async fn canary(&self) -> Result<Option<String>, FunctionError> {
        let transient = |message: String| FunctionError {
            error_type: "Transient.CanaryUnread".into(),
            message,
        };
        let members = self
            .fleet
            .members()
            .await
            .map_err(|e| transient(format!("the group's members: {}", error_chain(&e))))?;
        let asked = members.len();
        let Some((active, _)) = find_active(&self.vault, members).await else {
            return Err(transient(format!("no active node ({asked} asked)")));
        };
        // A token cached before a restore names data that no longer exists.
        self.login.forget();
        let token = self
            .login
            .token(&self.vault, &active.addr)
            .await
            .map_err(|e| transient(format!("logging in: {}", error_chain(&e))))?;
        self.vault
            .read_canary(&active.addr, &token)
            .await
            .map_err(|e| transient(format!("reading {CANARY_PATH}: {}", error_chain(&e))))
    }
}

/// Takes a snapshot of the standby (the DR cluster, once it serves) into the DR bucket,
/// catalogued in the DR region: what a failback restores into the primary.
#[async_trait]
pub trait StandbyBackup: Send + Sync {
    /// One backup with `reason`; a redelivery of `request_id` gives the same snapshot.
    async fn back_up(
        &self,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<crate::snapshots::catalog::CatalogEntry, FunctionError>;
}

/// snapshot-backup's steps, configured for the standby (the DR region's bucket and
/// table, dr-failover's own AppRole).
#[async_trait]
impl<N: NodeApi, P: ParameterStore> StandbyBackup for crate::backup::SnapshotBackup<N, P> {
    async fn back_up(
        &self,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<crate::snapshots::catalog::CatalogEntry, FunctionError> {
        match self
            .handle(&json!({ "reason": reason }), request_id, deadline)
            .await?
        {
            crate::backup::BackupOutcome::BackedUp(report) => Ok(report.snapshot),
            crate::backup::BackupOutcome::Busy { owner, .. } => Err(FunctionError {
                error_type: "Transient.BackupBusy".into(),
                message: format!("the standby's backup lock is held by {owner}"),
            }),
            crate::backup::BackupOutcome::Fenced(fence) => Err(FunctionError {
                error_type: "Permanent.StandbyFenced".into(),
                message: format!(
                    "the standby's own backup reads a failover record fencing it, since {}",
                    fence.since
                ),
            }),
        }
    }
}
