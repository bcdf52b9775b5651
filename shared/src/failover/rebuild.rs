//! Rebuilding a cluster that has no node left, never initialising it anew: a primary
//! whose group the fence emptied (or whose nodes an outage took, on the operator's
//! word), by the failback; a pilot-light standby raised again after its first use, by a
//! failover or a drill. The cluster's node-lifecycle leaves the new node uninitialised,
//! and snapshot-restore's `rebuild` step (throwaway keys of the source's counts, the
//! snapshot forced, the source's shares or its own seal) puts the data and keys back.

use tokio::time::Instant;
use tracing::info;

use super::{DrFailover, FailoverError};
use crate::{
    cluster::{find_active, node::NodeApi, ports::FleetNode, ports::ParameterStore},
    error_chain,
};

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// How the primary's nodes stand: one reports itself initialised (sealed or not),
    /// every one answers uninitialised (none at all included: the fence emptied the
    /// group), or some do not answer.
    pub(super) async fn primary_nodes(&self) -> Result<PrimaryNodes, FailoverError> {
        let members = self.primary_fleet.members().await?;
        let healths =
            futures::future::join_all(members.iter().map(|m| self.vault.health(&m.addr))).await;
        Ok(
            if healths
                .iter()
                .any(|h| h.as_ref().is_ok_and(|h| h.initialized))
            {
                PrimaryNodes::Initialised
            } else if healths.iter().all(|h| h.is_ok()) {
                PrimaryNodes::NoneInitialised
            } else {
                PrimaryNodes::Unanswered
            },
        )
    }

    /// A rebuild's first phase: the emptied primary group wants one node again (only
    /// one: its node-lifecycle leaves a node uninitialised while no node is, and the
    /// others join the rebuilt one once the group has its size back), and an instance
    /// of it is in service.
    pub(super) async fn primary_node_for_rebuild(&self) -> Result<String, FailoverError> {
        let capacity = self.primary_group.capacity().await?;
        let raised = capacity.desired != 1;
        if raised {
            self.primary_group.resize(1, 1).await?;
            info!(
                was = capacity.desired,
                "the primary's group wants one node, to rebuild the cluster in"
            );
        }
        let in_service = self.primary_fleet.in_service().await?;
        match in_service.first() {
            Some(node) => Ok(format!(
                "node {} in service in the primary's group, to rebuild the cluster in",
                node.instance
            )),
            None => Err(FailoverError::FailbackPhase {
                phase: "PrimaryServing".into(),
                reason: format!(
                    "the fence emptied the primary's group; it {} one node to rebuild the cluster in, and none is in service yet (its node-lifecycle completes the launch and leaves the node uninitialised for the rebuild): run failback again then",
                    if raised { "now wants" } else { "wants" }
                ),
                retry_helps: true,
            }),
        }
    }

    /// The DR cluster's share count and threshold, read from its active node: the
    /// primary's (a standby is initialised with them, and serves with the primary's
    /// keys), which a rebuilt primary is initialised with.
    pub(super) async fn standby_seal_config(&self) -> Result<(u8, u8), FailoverError> {
        let members = self.standby_fleet.members().await?;
        let asked = members.len();
        let unread = |why: String| {
            FailoverError::FailbackPhase {
            phase: "RestoredIntoPrimary".into(),
            reason: format!("the DR cluster's seal configuration, which the rebuilt primary is initialised with, could not be read: {why}"),
            retry_helps: true,
        }
        };
        let Some((active, _)) = find_active(&self.vault, members).await else {
            return Err(unread(format!("no active node ({asked} asked)")));
        };
        let status = self
            .vault
            .seal_status(&active.addr)
            .await
            .map_err(|e| unread(error_chain(&e)))?;
        match (u8::try_from(status.shares), u8::try_from(status.threshold)) {
            (Ok(shares), Ok(threshold)) if threshold >= 1 && threshold <= shares => {
                Ok((shares, threshold))
            }
            _ => Err(unread(format!(
                "it reports {} shares and a threshold of {}",
                status.shares, status.threshold
            ))),
        }
    }

    /// The in-service node to rebuild the standby's cluster in, when every member of
    /// the group answers uninitialised (its node-lifecycle leaves a new node so once its
    /// cluster has no node left); `None` while any is initialised or does not answer.
    pub(super) async fn standby_to_rebuild(
        &self,
        in_service: &[FleetNode],
    ) -> Result<Option<FleetNode>, FailoverError> {
        let Some(first) = in_service.first() else {
            return Ok(None);
        };
        let members = self.standby_fleet.members().await?;
        let healths =
            futures::future::join_all(members.iter().map(|m| self.vault.health(&m.addr))).await;
        let empty = healths
            .iter()
            .all(|h| h.as_ref().is_ok_and(|h| !h.initialized));
        Ok(empty.then(|| first.clone()))
    }

    /// Restores `snapshot` into the standby, or, when its cluster has no node left
    /// (`rebuild`), rebuilds it in the new node: throwaway keys of the primary's counts,
    /// the snapshot forced, the primary's shares. What was done, for the record.
    pub(super) async fn restore_or_rebuild(
        &self,
        snapshot: &crate::snapshots::store::Location,
        rebuild: bool,
        reason: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<String, crate::lambda::FunctionError> {
        if rebuild {
            let rebuilt = self
                .restorer
                .rebuild(snapshot, self.settings.key_counts, deadline)
                .await?;
            return Ok(format!(
                "{snapshot} restored into {}, the standby's cluster rebuilt in its new node (applied index {}; throwaway keys, then the primary's shares; no safety snapshot: the node held nothing)",
                rebuilt.node, rebuilt.applied_index
            ));
        }
        let restored = self
            .restorer
            .restore(snapshot, reason, request_id, deadline)
            .await?;
        Ok(format!(
            "{snapshot} restored into {} (applied index {}; the standby's safety snapshot {})",
            restored.active_node, restored.applied_index, restored.safety_snapshot
        ))
    }
}

/// How the primary's nodes answered before a failback is recorded.
pub(super) enum PrimaryNodes {
    /// One is initialised (sealed or not): restore into it.
    Initialised,
    /// Every member answered, none initialised (or there is none).
    NoneInitialised,
    /// Some did not answer.
    Unanswered,
}
