//! What says a cluster holds a snapshot after a restore: the snapshot's cluster id and
//! its canary (for a snapshot without one, at least its Raft index); the failover's
//! `verified` phase, the drill's verdict and the failback's checks ask it.

use super::{
    record::{FailoverRecord, Phase},
    DrFailover, FailoverError,
};
use crate::{
    cluster::{find_active, node::NodeApi, ports::ParameterStore},
    error_chain,
};

/// What identifies a snapshot in the cluster it was restored into.
pub(super) struct SnapshotIdentity<'a> {
    /// The cluster id it carries.
    pub cluster_id: &'a str,
    /// Its Raft index.
    pub index: u64,
    /// The canary written just before it was taken, if any.
    pub canary: Option<&'a str>,
}

/// Whether a cluster holds a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Holding {
    /// It does; what says so.
    Held(String),
    /// It holds something else; what.
    NotHeld(String),
    /// It could not be told (no active node, a read refused); why.
    Unknown(String),
}

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// Whether the standby holds the failover's snapshot.
    pub(super) async fn holds_snapshot(
        &self,
        record: &FailoverRecord,
    ) -> Result<Holding, FailoverError> {
        self.cluster_holds(
            self.standby_fleet.as_ref(),
            self.restorer.as_ref(),
            &SnapshotIdentity {
                cluster_id: &record.snapshot_cluster_id,
                index: record.snapshot_index,
                canary: record.snapshot_canary.as_deref(),
            },
        )
        .await
    }

    /// Whether a cluster (its group, and the restore port that logs in to it) holds a
    /// snapshot: its active node reports the snapshot's cluster id and holds the
    /// snapshot's canary; for a snapshot without one, has applied at least its Raft
    /// index (weaker: any later write, a login's token included, moves the index on).
    pub(super) async fn cluster_holds(
        &self,
        fleet: &dyn crate::cluster::ports::Fleet,
        restorer: &dyn super::ClusterRestore,
        snapshot: &SnapshotIdentity<'_>,
    ) -> Result<Holding, FailoverError> {
        let members = fleet.members().await?;
        let asked = members.len();
        let Some((active, health)) = find_active(&self.vault, members).await else {
            return Ok(Holding::Unknown(format!(
                "no node is active ({asked} in the group)"
            )));
        };
        if health.cluster_id.as_deref() != Some(snapshot.cluster_id) {
            return Ok(Holding::NotHeld(format!(
                "node {} reports cluster {}, not the snapshot's {}",
                active.instance,
                health.cluster_id.as_deref().unwrap_or("(none)"),
                snapshot.cluster_id
            )));
        }
        if let Some(expected) = snapshot.canary {
            return Ok(match restorer.canary().await {
                Ok(Some(found)) if found == expected => Holding::Held(format!(
                    "node {} holds cluster {} and the snapshot's canary {expected}",
                    active.instance, snapshot.cluster_id
                )),
                Ok(found) => Holding::NotHeld(format!(
                    "node {} holds the canary {}, not the snapshot's {expected}",
                    active.instance,
                    found.as_deref().unwrap_or("(none)")
                )),
                Err(e) => Holding::Unknown(format!(
                    "the canary of node {} could not be read: {}: {}",
                    active.instance, e.error_type, e.message
                )),
            });
        }
        let applied = match self.vault.leader(&active.addr).await {
            Ok(leader) => leader.raft_applied_index,
            Err(e) => {
                return Ok(Holding::Unknown(format!(
                    "node {} did not say its Raft index: {}",
                    active.instance,
                    error_chain(&e)
                )))
            }
        };
        Ok(if applied >= snapshot.index {
            Holding::Held(format!(
                "node {} holds cluster {} at index {applied} (the snapshot carries no canary: checked by cluster id and Raft index)",
                active.instance, snapshot.cluster_id
            ))
        } else {
            Holding::NotHeld(format!(
                "node {} has applied index {applied}, before the snapshot's {}",
                active.instance, snapshot.index
            ))
        })
    }

    /// The `verified` phase: the standby holds the failover's snapshot.
    pub(super) async fn verify(&self, record: &FailoverRecord) -> Result<String, FailoverError> {
        match self.holds_snapshot(record).await? {
            Holding::Held(detail) => Ok(detail),
            Holding::NotHeld(why) | Holding::Unknown(why) => Err(FailoverError::Phase {
                phase: Phase::Verified,
                reason: format!("the standby does not hold {}: {why}", record.snapshot),
                retry_helps: true,
            }),
        }
    }
}
