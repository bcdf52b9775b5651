//! A terminating node leaves the Raft cluster: stepped down if it leads, its peer removed
//! through the active node, never leaving the cluster without failure tolerance while a
//! replacement that would restore it is still joining.

use std::collections::BTreeSet;

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{vault_step, LifecycleError, NodeLifecycle, Outcome, POLL_INTERVAL};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        lifecycle_actions::{ActionOutcome, Verdict},
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterStore},
    },
    events::LifecycleAction,
    ids::InstanceId,
    vault::{AutopilotState, RaftServer},
};

/// What a terminate did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaveReport {
    /// The instance (and Raft node id).
    pub instance: InstanceId,
    /// It led the cluster and was stepped down.
    pub stepped_down: bool,
    /// Its peer was removed now (false: it was not a peer).
    pub peer_removed: bool,
    /// It waited for a joining replacement; the text says how that ended.
    pub waited_for_replacement: Option<String>,
    /// The lifecycle action was still pending and is now completed.
    pub completed_now: bool,
    /// Why the peer was left for reconcile, when it was.
    pub left_to_reconcile: Option<String>,
}

/// The failure tolerance the cluster keeps if `leaving` is removed: voters left (as Raft
/// has them) that autopilot judges healthy, beyond the quorum of the voters left.
/// Autopilot's own status lags the configuration right after an election, so voting
/// comes from the Raft configuration and only health from autopilot.
pub fn tolerance_without(peers: &[RaftServer], state: &AutopilotState, leaving: &str) -> u32 {
    let remaining = peers.iter().filter(|p| p.node_id != leaving && p.voter);
    let (voters, healthy) = remaining.fold((0u32, 0u32), |(v, h), p| {
        let healthy = state.servers.get(&p.node_id).is_some_and(|s| s.healthy);
        (v + 1, h + u32::from(healthy))
    });
    let quorum = voters / 2 + 1;
    healthy.saturating_sub(quorum)
}

/// Members that are not voters yet (not a peer, or a non-voter autopilot has not
/// promoted): replacements still joining. A voter judged unhealthy for a moment (as
/// right after an election) is not one.
pub fn joining(peers: &[RaftServer], members: &BTreeSet<String>, leaving: &str) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.as_str() != leaving)
        .filter(|m| !peers.iter().any(|p| &p.node_id == *m && p.voter))
        .cloned()
        .collect()
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Takes the node out of the cluster, then completes the action CONTINUE.
    pub(crate) async fn on_terminate(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        let mut report = self
            .with_heartbeats(action, self.leave_cluster(&action.instance, deadline))
            .await?;
        report.completed_now =
            self.complete(action, Verdict::Continue).await? == ActionOutcome::Done;
        Ok(Outcome::Terminated(report))
    }

    async fn leave_cluster(
        &self,
        instance: &InstanceId,
        deadline: Instant,
    ) -> Result<LeaveReport, LifecycleError> {
        let id = instance.as_str();
        let mut report = LeaveReport {
            instance: instance.clone(),
            stepped_down: false,
            peer_removed: false,
            waited_for_replacement: None,
            completed_now: false,
            left_to_reconcile: None,
        };
        let leaving = self.fleet.node(instance).await?;
        // Without a leader no peer can be removed, and holding the hook would not bring
        // one back: let the instance go, and reconcile removes its peer once a node leads.
        let (active, token) = match self.active_with_token(leaving.as_ref()).await {
            Ok(found) => found,
            Err(e @ LifecycleError::NoActiveNode { .. }) => {
                warn!(instance = %id, error = %e, "the peer cannot be removed now; reconcile removes it once a node leads");
                report.left_to_reconcile = Some(e.to_string());
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let peers = self
            .vault
            .raft_configuration(&active.addr, &token)
            .await
            .map_err(vault_step("reading the raft configuration"))?;
        if !peers.servers.iter().any(|s| s.node_id == id) {
            info!(instance = %id, "not a raft peer; nothing to remove");
            return Ok(report);
        }
        if active.instance == *instance {
            self.step_down(&active, &token, deadline).await?;
            report.stepped_down = true;
        }
        report.waited_for_replacement = self.wait_for_replacement_if_needed(id, deadline).await?;
        // Leadership may have moved while waiting: remove through whoever leads now.
        let (active, token) = self.active_with_token(leaving.as_ref()).await?;
        let peers = self
            .vault
            .raft_configuration(&active.addr, &token)
            .await
            .map_err(vault_step("reading the raft configuration"))?;
        if peers.servers.iter().any(|s| s.node_id == id) {
            self.vault
                .remove_peer(&active.addr, &token, id)
                .await
                .map_err(vault_step(format!("removing raft peer {id}")))?;
            info!(peer = %id, through = %active.instance, "removed raft peer");
            report.peer_removed = true;
        }
        Ok(report)
    }

    /// Steps the leader down and waits until another node leads. Step the leader down
    /// before removing it, or writes stall until an election.
    async fn step_down(
        &self,
        leader: &FleetNode,
        token: &crate::secret::Secret,
        deadline: Instant,
    ) -> Result<(), LifecycleError> {
        let id = leader.instance.as_str();
        self.vault
            .step_down(&leader.addr, token)
            .await
            .map_err(vault_step(format!("stepping {id} down")))?;
        let mut looks = 0u32;
        poll_until(
            &format!("a leader other than {id}"),
            self.settings.voter_timeout,
            deadline,
            POLL_INTERVAL,
            || {
                looks += 1;
                let again = looks.is_multiple_of(20);
                async move {
                    match self.active_node(Some(leader)).await? {
                        Some(a) if a.instance.as_str() != id => Ok(Look::Ready(())),
                        Some(_) => {
                            // Re-elected (it may be the only voter so far): ask again.
                            if again {
                                let _ = self.vault.step_down(&leader.addr, token).await;
                            }
                            Ok(Look::NotYet(format!("{id} still leads")))
                        }
                        None => Ok::<_, LifecycleError>(Look::NotYet("no leader yet".into())),
                    }
                }
            },
        )
        .await??;
        info!(instance = %id, "stepped down; another node leads");
        Ok(())
    }

    /// When removing `id` would leave no failure tolerance and a replacement is joining,
    /// waits (up to its limit) until the replacement is a healthy voter.
    async fn wait_for_replacement_if_needed(
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
                let peers = self
                    .vault
                    .raft_configuration(&active.addr, &token)
                    .await
                    .map_err(vault_step("reading the raft configuration"))?
                    .servers;
                let members = self.member_ids().await?;
                let tolerance = tolerance_without(&peers, &state, id);
                let joining = joining(&peers, &members, id);
                if tolerance > 0 || joining.is_empty() {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::vault::AutopilotServer;

    /// (id, raft voter, autopilot healthy)
    fn cluster(servers: &[(&str, bool, bool)]) -> (Vec<RaftServer>, AutopilotState) {
        let peers = servers
            .iter()
            .map(|(id, voter, _)| RaftServer {
                node_id: id.to_string(),
                address: format!("{id}:8201"),
                leader: false,
                voter: *voter,
            })
            .collect();
        let state = AutopilotState {
            healthy: servers.iter().all(|s| s.2),
            failure_tolerance: 0,
            leader: Some("a".into()),
            servers: servers
                .iter()
                .map(|(id, voter, healthy)| {
                    let server = AutopilotServer {
                        id: id.to_string(),
                        healthy: *healthy,
                        // Autopilot's status may lag: it never decides voting here.
                        status: if *voter { "non-voter" } else { "voter" }.into(),
                        last_contact: None,
                        stable_since: None,
                    };
                    (id.to_string(), server)
                })
                .collect::<BTreeMap<_, _>>(),
        };
        (peers, state)
    }

    #[test]
    fn tolerance_counts_healthy_voters_beyond_quorum() {
        let (p, s) = cluster(&[("a", true, true), ("b", true, true), ("c", true, true)]);
        assert_eq!(tolerance_without(&p, &s, "c"), 0, "2 voters: quorum 2");
        let (p, s) = cluster(&[
            ("a", true, true),
            ("b", true, true),
            ("c", true, true),
            ("d", true, true),
        ]);
        assert_eq!(tolerance_without(&p, &s, "d"), 1, "3 voters: quorum 2");
        let (p, s) = cluster(&[
            ("a", true, true),
            ("b", true, true),
            ("c", true, true),
            ("d", false, true),
        ]);
        assert_eq!(
            tolerance_without(&p, &s, "c"),
            0,
            "a non-voter does not count"
        );
        let (p, s) = cluster(&[
            ("a", true, true),
            ("b", true, false),
            ("c", true, true),
            ("d", true, true),
        ]);
        assert_eq!(
            tolerance_without(&p, &s, "d"),
            0,
            "an unhealthy voter adds no tolerance"
        );
    }

    #[test]
    fn a_member_that_is_not_a_voter_yet_is_joining() {
        let (p, _) = cluster(&[
            ("a", true, true),
            ("b", true, true),
            ("d", false, true),
            ("e", true, false),
        ]);
        let members: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        assert_eq!(
            joining(&p, &members, "a"),
            vec!["c".to_owned(), "d".to_owned()]
        );
    }
}
