//! A terminating node leaves the Raft cluster, one terminate at a time under the
//! terminate lock: the leader is looked for among every instance of the group (a leader
//! whose own instance is leaving included), departed dead voters are removed first, a
//! leading node steps down, and the peer is removed through whoever leads, never leaving
//! the cluster without failure tolerance while a replacement that would restore it is
//! still joining. While its departure would cost quorum the action is held with
//! heartbeats, counted in a metric, and never completed.

use std::{sync::Mutex, time::Duration};

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    quorum::plan_leave, vault_step, LifecycleError, NodeLifecycle, Outcome, POLL_INTERVAL,
};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        lifecycle_actions::{ActionOutcome, Verdict},
        locks::Claim,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterStore},
    },
    error_chain,
    events::LifecycleAction,
    ids::InstanceId,
    telemetry::{Metric, Unit},
    vault::RaftServer,
};

/// The lock every terminate holds while it changes the Raft configuration.
const TERMINATE_LOCK: &str = "terminate";

/// How long the lock outlives the invocation that holds it, should that one die.
const LOCK_MARGIN: Duration = Duration::from_secs(30);

/// What a terminate did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaveReport {
    /// The instance (and Raft node id).
    pub instance: InstanceId,
    /// Voters whose instance had left and that were dead, removed first to keep quorum.
    pub removed_first: Vec<String>,
    /// It led the cluster and was stepped down.
    pub stepped_down: bool,
    /// Its peer was removed now (false: it was not a peer).
    pub peer_removed: bool,
    /// It waited for a joining replacement; the text says how that ended.
    pub waited_for_replacement: Option<String>,
    /// The lifecycle action was still pending and is now completed.
    pub completed_now: bool,
}

/// One attempt at leaving: done, or held for the reason given.
enum Attempt {
    Done,
    Held(String),
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Takes the node out of the cluster, then completes the action CONTINUE. While that
    /// would cost quorum, or another terminate holds the lock past this invocation, the
    /// action is kept pending with a heartbeat and the error says why; the retry (or the
    /// redelivery) continues from there.
    pub(crate) async fn on_terminate(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        let left = self
            .with_heartbeats(action, self.leave_in_turn(action, deadline))
            .await;
        let mut report = match left {
            Ok(report) => report,
            Err(e) => {
                if matches!(
                    e,
                    LifecycleError::TerminateHeld { .. } | LifecycleError::TerminateQueued { .. }
                ) {
                    self.keep_pending(action, &e).await;
                }
                return Err(e);
            }
        };
        report.completed_now =
            self.complete(action, Verdict::Continue).await? == ActionOutcome::Done;
        Ok(Outcome::Terminated(report))
    }

    /// Extends the action's timeout once more and, when quorum is at stake, counts it.
    async fn keep_pending(&self, action: &LifecycleAction, why: &LifecycleError) {
        warn!(instance = %action.instance, error = %error_chain(why), "terminate not completed; the lifecycle action stays pending");
        if let Err(e) = self.actions.heartbeat(action).await {
            warn!(instance = %action.instance, error = %error_chain(&e), "lifecycle heartbeat failed");
        }
        if let LifecycleError::TerminateHeld { .. } = why {
            let name = "TerminateHeldForQuorum";
            let metric = Metric::cluster(self.settings.cluster.as_str(), name, 1.0, Unit::Count);
            if let Err(e) = self.metrics.publish(&[metric]).await {
                warn!(instance = %action.instance, error = %error_chain(&e), "held terminate not counted in metrics");
            }
        }
    }

    /// Waits for the terminate lock (another terminate may be changing the Raft
    /// configuration), leaves the cluster, and releases the lock.
    async fn leave_in_turn(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<LeaveReport, LifecycleError> {
        let owner = format!("{} {}", action.instance, action.token);
        let ttl = deadline.saturating_duration_since(Instant::now()) + LOCK_MARGIN;
        let claimed = poll_until(
            "the terminate lock",
            ttl,
            deadline,
            POLL_INTERVAL * 4,
            || async {
                Ok::<_, LifecycleError>(
                    match self.locks.claim(TERMINATE_LOCK, &owner, ttl).await? {
                        Claim::Acquired { .. } => Look::Ready(()),
                        Claim::HeldBy { owner, .. } => Look::NotYet(owner),
                    },
                )
            },
        )
        .await?;
        if let Err(expired) = claimed {
            return Err(LifecycleError::TerminateQueued {
                instance: action.instance.clone(),
                holder: expired.last,
            });
        }
        let left = self.leave_cluster(&action.instance, deadline).await;
        if let Err(e) = self.locks.release(TERMINATE_LOCK, &owner).await {
            warn!(instance = %action.instance, error = %error_chain(&e), "terminate lock not released; it lapses by itself");
        }
        left
    }

    /// Leaves the cluster, looking again while its departure would cost quorum (a dead
    /// voter may come back, a replacement may join, an election may end) until the
    /// replacement limit or the invocation's deadline.
    async fn leave_cluster(
        &self,
        instance: &InstanceId,
        deadline: Instant,
    ) -> Result<LeaveReport, LifecycleError> {
        let leaving = self.fleet.node(instance).await?;
        let report = Mutex::new(LeaveReport {
            instance: instance.clone(),
            removed_first: Vec::new(),
            stepped_down: false,
            peer_removed: false,
            waited_for_replacement: None,
            completed_now: false,
        });
        let (report, leaving) = (&report, leaving.as_ref());
        let done = poll_until(
            &format!("a quorum that survives the departure of {instance}"),
            self.settings.replacement_timeout,
            deadline,
            POLL_INTERVAL * 4,
            || async move {
                Ok::<_, LifecycleError>(
                    match self.try_leave(instance, leaving, report, deadline).await? {
                        Attempt::Done => Look::Ready(()),
                        Attempt::Held(why) => Look::NotYet(why),
                    },
                )
            },
        )
        .await?;
        if let Err(expired) = done {
            return Err(LifecycleError::TerminateHeld {
                instance: instance.clone(),
                reason: expired.last,
            });
        }
        Ok(report
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone()))
    }

    /// One attempt: remove departed dead voters, step down, wait for a joining
    /// replacement, remove the peer. Every step reads the state first, so an attempt
    /// after a held one (or a redelivery) repeats nothing.
    async fn try_leave(
        &self,
        instance: &InstanceId,
        leaving: Option<&FleetNode>,
        report: &Mutex<LeaveReport>,
        deadline: Instant,
    ) -> Result<Attempt, LifecycleError> {
        let note = |f: &dyn Fn(&mut LeaveReport)| {
            if let Ok(mut r) = report.lock() {
                f(&mut r);
            }
        };
        let id = instance.as_str();
        let Some((active, token, peers)) = self.leader_and_peers(leaving).await? else {
            return Ok(Attempt::Held(
                "no node of the cluster is active: no election has ended".into(),
            ));
        };
        if !peers.iter().any(|s| s.node_id == id) {
            info!(instance = %id, "not a raft peer; nothing to remove");
            return Ok(Attempt::Done);
        }
        if let Some(why) = self
            .remove_departed_first(&active, &token, &peers, id, report)
            .await?
        {
            return Ok(Attempt::Held(why));
        }
        if active.instance == *instance {
            self.step_down(&active, &token, deadline).await?;
            note(&|r| r.stepped_down = true);
        }
        let waited = self.wait_for_replacement_if_needed(id, deadline).await?;
        if waited.is_some() {
            note(&|r| r.waited_for_replacement = waited.clone());
        }
        // Leadership may have moved while waiting: remove through whoever leads now,
        // after checking the quorum again against what the cluster is now.
        let Some((active, token, peers)) = self.leader_and_peers(leaving).await? else {
            return Ok(Attempt::Held(
                "no node of the cluster is active after the step-down".into(),
            ));
        };
        if !peers.iter().any(|s| s.node_id == id) {
            return Ok(Attempt::Done);
        }
        if let Some(why) = self
            .remove_departed_first(&active, &token, &peers, id, report)
            .await?
        {
            return Ok(Attempt::Held(why));
        }
        self.vault
            .remove_peer(&active.addr, &token, id)
            .await
            .map_err(vault_step(format!("removing raft peer {id}")))?;
        info!(peer = %id, through = %active.instance, "removed raft peer");
        note(&|r| r.peer_removed = true);
        Ok(Attempt::Done)
    }

    /// The active node, this function's token and the Raft peers; `None` while no node
    /// leads.
    async fn leader_and_peers(
        &self,
        leaving: Option<&FleetNode>,
    ) -> Result<Option<(FleetNode, crate::secret::Secret, Vec<RaftServer>)>, LifecycleError> {
        let (active, token) = match self.active_with_token(leaving).await {
            Ok(found) => found,
            Err(LifecycleError::NoActiveNode { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let peers = self.raft_peers(&active, &token).await?;
        Ok(Some((active, token, peers)))
    }

    /// Removes the voters whose instance has left and that autopilot judges dead (each
    /// keeps quorum: they count in the quorum and vote for nothing), then says why `id`
    /// must still wait, if it must.
    async fn remove_departed_first(
        &self,
        active: &FleetNode,
        token: &crate::secret::Secret,
        peers: &[RaftServer],
        id: &str,
        report: &Mutex<LeaveReport>,
    ) -> Result<Option<String>, LifecycleError> {
        let state = self
            .vault
            .autopilot_state(&active.addr, token)
            .await
            .map_err(vault_step("reading autopilot state"))?;
        if state.leader.is_none() || !state.servers.contains_key(id) {
            return Ok(Some("autopilot is settling after the election".into()));
        }
        let plan = plan_leave(peers, &state, &self.member_ids().await?, id);
        for dead in &plan.remove_first {
            if self.answers(dead).await? {
                return Ok(Some(format!(
                    "{dead} answers though autopilot judges it unhealthy"
                )));
            }
            self.vault
                .remove_peer(&active.addr, token, dead)
                .await
                .map_err(vault_step(format!("removing departed raft peer {dead}")))?;
            warn!(peer = %dead, leaving = %id, "removed a dead raft peer whose instance has left, before this terminate");
            if let Ok(mut r) = report.lock() {
                r.removed_first.push(dead.clone());
            }
        }
        Ok(plan.hold)
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

    /// Whether the node of instance `id` still serves (answers unsealed): then it is
    /// not dead, whatever autopilot judged a moment ago.
    async fn answers(&self, id: &str) -> Result<bool, LifecycleError> {
        let Some(node) = self.fleet.node(&InstanceId::from(id)).await? else {
            return Ok(false);
        };
        let health = self.vault.health(&node.addr).await;
        Ok(health.is_ok_and(|h| h.initialized && !h.sealed))
    }
}
