//! Before a peer leaves: when its removal would leave the cluster without failure
//! tolerance while a replacement is still joining, wait (up to
//! `REPLACEMENT_TIMEOUT_SECS`) until the replacement is a healthy voter.

use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    quorum::{joining, removal_lowers_tolerance, tolerance_without},
    vault_step, LifecycleError, NodeLifecycle, POLL_INTERVAL,
};
use crate::cluster::{
    node::NodeApi,
    polling::{poll_until, Look},
    ports::ParameterStore,
};

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// When removing `id` would leave no failure tolerance and a replacement is joining,
    /// waits (up to its limit) until the replacement is a healthy voter.
    pub(crate) async fn wait_for_replacement_if_needed(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<String>, LifecycleError> {
        // A std mutex: held for a replace or a take, never across an await.
        let waited_for = std::sync::Mutex::new(None::<String>);
        let waited_for = &waited_for;
        let waited = poll_until(
            &format!("a replacement for {id} to become a healthy voter"),
            self.settings.replacement_timeout,
            deadline,
            POLL_INTERVAL * 4,
            || async move {
                let (active, token) = self.active_with_token(None).await?;
                let state = self
                    .vault
                    .autopilot_state(&active.addr, &token)
                    .await
                    .map_err(vault_step("reading autopilot state"))?;
                // Right after an election the new leader's autopilot has not judged
                // every server yet: look again rather than count them as joining.
                if state.leader.is_none() || !state.servers.contains_key(id) {
                    return Ok(Look::NotYet("autopilot is settling after the election".into()));
                }
                let peers = self.raft_peers(&active, &token).await?;
                let members = self.member_ids().await?;
                let tolerance = tolerance_without(&peers, &state, id);
                let joining = joining(&peers, &members, id);
                if tolerance > 0
                    || joining.is_empty()
                    || !removal_lowers_tolerance(&peers, &state, id)
                {
                    return Ok(Look::Ready(()));
                }
                let names = joining.join(", ");
                let first = waited_for
                    .lock()
                    .map(|mut w| w.replace(names.clone()).is_none())
                    .unwrap_or(false);
                if first {
                    info!(peer = %id, joining = %names, "removing this peer now would leave no failure tolerance; waiting for the replacement");
                }
                Ok::<_, LifecycleError>(Look::NotYet(format!(
                    "failure tolerance without {id} would be 0; joining: {names}"
                )))
            },
        )
        .await?;
        Ok(match waited {
            Ok(()) => waited_for
                .lock()
                .ok()
                .and_then(|mut w| w.take())
                .map(|names| format!("waited until {names} became a healthy voter")),
            Err(expired) => {
                warn!(peer = %id, last = %expired.last, "replacement not ready within the limit; removing the peer anyway, the cluster has no failure tolerance until it is");
                Some(format!(
                    "gave up after {:?}: {}",
                    expired.waited, expired.last
                ))
            }
        })
    }
}
