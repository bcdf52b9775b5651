//! A launch into a cluster that exists but has no initialised node left, which
//! dr-failover rebuilds in the new node instead of this function initialising a new
//! cluster with new keys (see dr-failover's `rebuild`).

use tracing::warn;

use super::{vault_step, LifecycleError, NodeLifecycle};
use crate::cluster::{
    node::NodeApi,
    ports::{FleetNode, ParameterStore},
};

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Whether `node` is to be left uninitialised for dr-failover to rebuild the cluster
    /// in: the cluster exists (its init record says so) but no node of it is
    /// initialised, so there is nothing to join, and either
    /// - the DR region's failback is asked for (the failover's fence emptied this
    ///   primary's group; the failback restores the DR cluster's snapshot into this
    ///   node), or
    /// - this cluster is a DR standby (`PRIMARY_CLUSTER`) whose group dr-failover
    ///   emptied back to a pilot light and raises again (a failover or a drill restores
    ///   the primary's snapshot into this node).
    ///
    /// A node this function initialised would be a new cluster with new keys, whose data
    /// the restore replaces anyway.
    pub(super) async fn left_for_rebuild(&self, node: &FleetNode) -> Result<bool, LifecycleError> {
        let why = if self.settings.standby_of.is_some() {
            "this DR standby's group was emptied to a pilot light: dr-failover restores the primary's snapshot into the node"
        } else {
            let Some(records) = &self.fence else {
                return Ok(false);
            };
            match crate::failover::record::fence_of(records.as_ref()).await {
                Some(fence) if fence.failback_started => {
                    "the DR region's fence emptied the group and its failback is under way: it rebuilds the cluster in the node"
                }
                _ => return Ok(false),
            }
        };
        let health = self
            .vault
            .health(&node.addr)
            .await
            .map_err(vault_step(format!("reading the health of {}", node.addr)))?;
        if health.initialized || self.initialised_member().await?.is_some() {
            return Ok(false);
        }
        warn!(instance = %node.instance, reason = why, "no node of the cluster is initialised: the node is left uninitialised");
        Ok(true)
    }
}
