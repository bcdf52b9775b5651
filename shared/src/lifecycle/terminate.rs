//! A terminating node leaves the Raft cluster: stepped down if it leads, its peer removed
//! through the active node, never leaving the cluster without failure tolerance while a
//! replacement that would restore it is still joining.

use std::collections::BTreeSet;

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{vault_step, LifecycleError, NodeLifecycle, Outcome, POLL_INTERVAL};
use crate::{
    cluster::{
        lifecycle_actions::{ActionOutcome, Verdict},
        polling::{poll_until, Look},
        ports::ParameterStore,
    },
    events::LifecycleAction,
    ids::InstanceId,
    vault::AutopilotState,
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
}

/// The failure tolerance the cluster keeps if `leaving` is removed: healthy voters left
/// beyond the quorum of the voters left.
pub fn tolerance_without(state: &AutopilotState, leaving: &str) -> u32 {
    let remaining = state
        .servers
        .values()
        .filter(|s| s.id != leaving && s.is_voter());
    let (voters, healthy) =
        remaining.fold((0u32, 0u32), |(v, h), s| (v + 1, h + u32::from(s.healthy)));
    let quorum = voters / 2 + 1;
    healthy.saturating_sub(quorum)
}

/// Members that are not yet healthy voters: replacements still joining.
pub fn joining(state: &AutopilotState, members: &BTreeSet<String>, leaving: &str) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.as_str() != leaving)
        .filter(|m| {
            !state
                .servers
                .get(*m)
                .is_some_and(|s| s.healthy && s.is_voter())
        })
        .cloned()
        .collect()
}

impl<P: ParameterStore> NodeLifecycle<P> {
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
        };
        let (active, token) = self.active_with_token().await?;
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
            self.step_down(&active.addr, &token, id, deadline).await?;
            report.stepped_down = true;
        }
        report.waited_for_replacement = self.wait_for_replacement_if_needed(id, deadline).await?;
        // Leadership may have moved while waiting: remove through whoever leads now.
        let (active, token) = self.active_with_token().await?;
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
        leader: &crate::ids::NodeAddr,
        token: &crate::secret::Secret,
        id: &str,
        deadline: Instant,
    ) -> Result<(), LifecycleError> {
        self.vault
            .step_down(leader, token)
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
                    match self.active_node().await? {
                        Some(a) if a.instance.as_str() != id => Ok(Look::Ready(())),
                        Some(_) => {
                            // Re-elected (it may be the only voter so far): ask again.
                            if again {
                                let _ = self.vault.step_down(leader, token).await;
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
        let mut first = true;
        let waited = poll_until(
            &format!("a replacement for {id} to become a healthy voter"),
            self.settings.replacement_timeout,
            deadline,
            POLL_INTERVAL * 4,
            || {
                let first_look = std::mem::replace(&mut first, false);
                async move {
                    let (active, token) = self.active_with_token().await?;
                    let state = self
                        .vault
                        .autopilot_state(&active.addr, &token)
                        .await
                        .map_err(vault_step("reading autopilot state"))?;
                    let members: BTreeSet<String> = self
                        .fleet
                        .members()
                        .await?
                        .into_iter()
                        .map(|m| m.instance.as_str().to_owned())
                        .collect();
                    let tolerance = tolerance_without(&state, id);
                    let joining = joining(&state, &members, id);
                    if tolerance > 0 || joining.is_empty() {
                        return Ok(Look::Ready(!first_look));
                    }
                    if first_look {
                        info!(peer = %id, joining = ?joining, "removing this peer now would leave no failure tolerance; waiting for the replacement");
                    }
                    Ok::<_, LifecycleError>(Look::NotYet(format!(
                        "failure tolerance without {id} would be 0; joining: {}",
                        joining.join(", ")
                    )))
                }
            },
        )
        .await?;
        Ok(match waited {
            Ok(false) => None,
            Ok(true) => Some("the replacement became a healthy voter".into()),
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

    fn state(servers: &[(&str, &str, bool)]) -> AutopilotState {
        AutopilotState {
            healthy: servers.iter().all(|s| s.2),
            failure_tolerance: 0,
            leader: None,
            servers: servers
                .iter()
                .map(|(id, status, healthy)| {
                    (
                        id.to_string(),
                        AutopilotServer {
                            id: id.to_string(),
                            healthy: *healthy,
                            status: status.to_string(),
                            last_contact: None,
                            stable_since: None,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn tolerance_counts_healthy_voters_beyond_quorum() {
        let three = state(&[
            ("a", "leader", true),
            ("b", "voter", true),
            ("c", "voter", true),
        ]);
        assert_eq!(tolerance_without(&three, "c"), 0, "2 voters: quorum 2");
        let four = state(&[
            ("a", "leader", true),
            ("b", "voter", true),
            ("c", "voter", true),
            ("d", "voter", true),
        ]);
        assert_eq!(tolerance_without(&four, "d"), 1, "3 voters: quorum 2");
        let with_non_voter = state(&[
            ("a", "leader", true),
            ("b", "voter", true),
            ("c", "voter", true),
            ("d", "non-voter", true),
        ]);
        assert_eq!(
            tolerance_without(&with_non_voter, "c"),
            0,
            "a non-voter does not count"
        );
        let sick = state(&[
            ("a", "leader", true),
            ("b", "voter", false),
            ("c", "voter", true),
            ("d", "voter", true),
        ]);
        assert_eq!(
            tolerance_without(&sick, "d"),
            0,
            "an unhealthy voter adds no tolerance"
        );
    }

    #[test]
    fn a_member_that_is_not_a_healthy_voter_is_joining() {
        let s = state(&[
            ("a", "leader", true),
            ("b", "voter", true),
            ("d", "non-voter", true),
        ]);
        let members: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
        assert_eq!(
            joining(&s, &members, "a"),
            vec!["c".to_owned(), "d".to_owned()]
        );
    }
}
