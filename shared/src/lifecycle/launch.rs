//! A launched instance becomes a healthy voter, or is abandoned when a fresh instance
//! could do better.

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    init::Initialised, records::ActionStage, unseal::Unsealed, vault_step, LifecycleError,
    NodeLifecycle, Outcome, POLL_INTERVAL,
};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        lifecycle_actions::Verdict,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterStore},
    },
    events::LifecycleAction,
    ids::InstanceId,
    keys::SealKind,
};

/// What a launch did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LaunchReport {
    /// The instance (and Raft node id).
    pub instance: InstanceId,
    /// This launch initialised the cluster.
    pub initialised_cluster: bool,
    /// This launch joined the node to the cluster (false: it had joined already).
    pub joined: bool,
    /// How the node came to be unsealed.
    pub unsealed: Unsealed,
    /// The lifecycle action was still pending and is now completed.
    pub completed_now: bool,
}

/// Whether a launch that failed with `e` is abandoned at once: a permanent error of the
/// instance or the configuration (missing or rejected shares, a failed auto-unseal),
/// whose retries would fail alike until the hook's timeout abandoned it uncounted.
/// Not abandoned: a join refused over certificates (the CA's configuration), errors about the cluster's keys (the node is left for the operator: an
/// abandon could let a fresh instance initialise a new cluster over lost keys), and a
/// call Vault denied or a login it refused (a cached token a restore revoked is replaced
/// by the retry around the whole run, which an abandon here would pre-empt; a denial that
/// stays is the policy's or the credentials', which no fresh instance cures).
fn abandons(e: &LifecycleError) -> bool {
    use crate::errors::Classify;
    !e.retry_helps()
        && e.name() != crate::errors::POLICY_DENIED
        && !matches!(e, LifecycleError::Login(_))
        // A join refused over certificates is the cluster's CA configuration (the only
        // Vault error the join returns rather than abandoning): an error, as documented.
        && !matches!(e, LifecycleError::Vault { step, .. } if step.starts_with("joining"))
        && !matches!(
            e,
            LifecycleError::InitialisedWithoutShares { .. }
                | LifecycleError::SharesNotStored { .. }
                | LifecycleError::StaleShares { .. }
                | LifecycleError::RootTokenLost { .. }
                | LifecycleError::ActionNotPending { .. }
                | LifecycleError::OtherGroup { .. }
        )
}

/// Why a launch did not reach the end.
pub(crate) enum LaunchFailure {
    /// The instance itself is at fault: give it up so the group launches another.
    FreshInstanceMayHelp(String),
    /// Anything else is an error: retrying, or fixing the configuration, is the cure.
    Error(LifecycleError),
}

impl<E: Into<LifecycleError>> From<E> for LaunchFailure {
    fn from(e: E) -> Self {
        Self::Error(e.into())
    }
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Brings the launched node into the cluster, then completes the action.
    pub(crate) async fn on_launch(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        match self
            .with_heartbeats(action, self.bring_into_cluster(action, deadline))
            .await
        {
            Ok(mut report) => {
                let outcome = self.complete(action, Verdict::Continue).await?;
                report.completed_now =
                    outcome == crate::cluster::lifecycle_actions::ActionOutcome::Done;
                Ok(Outcome::Launched(report))
            }
            Err(LaunchFailure::FreshInstanceMayHelp(reason)) => {
                warn!(instance = %action.instance, reason = %reason, "abandoning the launch; the group will replace the instance");
                self.count_abandoned(&action.instance).await;
                self.complete(action, Verdict::Abandon).await?;
                Ok(Outcome::Abandoned {
                    instance: action.instance.clone(),
                    reason,
                })
            }
            Err(LaunchFailure::Error(e)) if abandons(&e) => {
                // What the hook's DefaultResult would do after its timeout, at once and
                // counted: a permanent error is not cured by waiting.
                let reason = format!(
                    "{}: {}",
                    crate::errors::Classify::name(&e),
                    crate::error_chain(&e)
                );
                warn!(instance = %action.instance, reason = %reason, "abandoning the launch after a permanent error; the group will replace the instance");
                self.count_abandoned(&action.instance).await;
                self.complete(action, Verdict::Abandon).await?;
                Ok(Outcome::Abandoned {
                    instance: action.instance.clone(),
                    reason,
                })
            }
            Err(LaunchFailure::Error(e)) => Err(e),
        }
    }

    async fn bring_into_cluster(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<LaunchReport, LaunchFailure> {
        let node = self
            .wait_until_api_answers(&action.instance, deadline)
            .await?;
        let owner = format!("launch/{}", action.token);
        let initialised = self
            .ensure_initialised_once(&node, &owner, deadline)
            .await?;
        if initialised == Initialised::Elsewhere && self.left_for_rebuild(&node).await? {
            return Ok(LaunchReport {
                instance: node.instance,
                initialised_cluster: false,
                joined: false,
                unsealed: Unsealed::LeftForRebuild,
                completed_now: false,
            });
        }
        let joined = match initialised {
            Initialised::Here => false,
            Initialised::Elsewhere => self.ensure_joined(action, &node, deadline).await?,
        };
        let unsealed = self.ensure_unsealed(&node.addr, deadline).await?;
        self.wait_until_healthy_voter(&node, deadline).await?;
        Ok(LaunchReport {
            instance: node.instance,
            initialised_cluster: initialised == Initialised::Here,
            joined,
            unsealed,
            completed_now: false,
        })
    }

    /// Resolves the instance's address and waits until its API answers `sys/health`.
    /// The address is asked of EC2 until EC2 reports it, then kept: an instance keeps its
    /// private IP for its whole life, and a node that boots for minutes would otherwise
    /// cost a DescribeInstances call at every poll.
    async fn wait_until_api_answers(
        &self,
        instance: &InstanceId,
        deadline: Instant,
    ) -> Result<FleetNode, LaunchFailure> {
        let resolved: std::sync::Mutex<Option<FleetNode>> = std::sync::Mutex::new(None);
        let resolved = &resolved;
        let waited = poll_until(
            &format!("the API of {instance} to answer"),
            self.settings.node_api_timeout,
            deadline,
            POLL_INTERVAL,
            || async move {
                let known = resolved.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let node = match known {
                    Some(node) => node,
                    None => {
                        let Some(node) = self.fleet.node(instance).await? else {
                            return Ok(Look::NotYet("EC2 does not know the instance".into()));
                        };
                        *resolved.lock().unwrap_or_else(|p| p.into_inner()) = Some(node.clone());
                        node
                    }
                };
                match self.vault.health(&node.addr).await {
                    Ok(_) => Ok(Look::Ready(node)),
                    Err(e) => Ok::<_, LifecycleError>(Look::NotYet(e.to_string())),
                }
            },
        )
        .await?;
        match waited {
            Ok(node) => {
                info!(instance = %instance, node = %node.addr, "node API answers");
                Ok(node)
            }
            Err(expired) if expired.why == "its limit" => {
                Err(LaunchFailure::FreshInstanceMayHelp(expired.to_string()))
            }
            Err(expired) => Err(LaunchFailure::Error(expired.into())),
        }
    }

    /// Joins `node` to the active node, unless it is initialised already (it joined
    /// before, or through `retry_join` in its own configuration). Returns whether it
    /// joined now.
    async fn ensure_joined(
        &self,
        action: &LifecycleAction,
        node: &FleetNode,
        deadline: Instant,
    ) -> Result<bool, LaunchFailure> {
        let health = self
            .vault
            .health(&node.addr)
            .await
            .map_err(vault_step(format!("reading the health of {}", node.addr)))?;
        if health.initialized {
            // A node this action joined is initialised and sealed, and not a peer until
            // its unseal answers the cluster's challenge: go on to the unseal.
            let joined_here = self
                .records
                .action(action)
                .await?
                .is_some_and(|r| r.stage == ActionStage::Joining);
            if joined_here {
                info!(instance = %node.instance, "an earlier run of this launch joined the node; not joining again");
                return Ok(false);
            }
            if let Some(reason) = self.initialised_outside(node).await? {
                return Err(LaunchFailure::FreshInstanceMayHelp(reason));
            }
            info!(instance = %node.instance, "node is already part of the cluster; not joining");
            return Ok(false);
        }
        let seal = self.seal_status_of(&node.addr).await?;
        if SealKind::of(&seal) == SealKind::Shamir {
            // Joined but never unsealed is worse than not joined: check the shares first.
            self.stored_unseal_shares(&node.addr, usize::from(self.settings.key_threshold))
                .await?;
        }
        // Recorded before the join is sent, so that a run cut off after it knows the
        // initialised node that is not a peer yet as its own.
        self.record_stage(action, ActionStage::Joining).await?;
        let ca = self.settings.leader_ca_pem.as_deref();
        // A join can fail for a while when nothing is wrong with the instance: no node is
        // active yet, the leader is being elected (5xx), the network drops. Those are
        // tried again until the voter timeout; a refusal (4xx) is not.
        let waited = poll_until(
            &format!("{} to join the cluster", node.instance),
            self.settings.voter_timeout,
            deadline,
            POLL_INTERVAL,
            || async {
                // A join whose answer was lost may have happened: a node initialised
                // now joined then.
                let health = self.vault.health(&node.addr).await;
                if health.is_ok_and(|h| h.initialized) {
                    return Ok(Look::Ready(Joined::Already));
                }
                let Some(leader) = self.active_node(None).await? else {
                    return Ok(Look::NotYet("no member answers as active".into()));
                };
                Ok::<_, LifecycleError>(match self.vault.join(&node.addr, &leader.addr, ca).await {
                    Ok(true) => Look::Ready(Joined::Now(leader)),
                    Ok(false) => Look::Ready(Joined::Refused(format!(
                        "node {} answered joined=false to the join through {}",
                        node.addr, leader.addr
                    ))),
                    Err(e) if e.status().is_none_or(|s| s >= 500) => {
                        Look::NotYet(format!("the join through {} failed: {e}", leader.addr))
                    }
                    // A refusal that names certificates is this product's configuration
                    // (the cluster's CA): an error, not a reason to replace the instance.
                    Err(e) if e.to_string().contains("certificate") => {
                        return Err(vault_step(format!(
                            "joining {} through {}",
                            node.addr, leader.addr
                        ))(e))
                    }
                    Err(e) => Look::Ready(Joined::Refused(format!(
                        "join through {} refused: {e}",
                        leader.addr
                    ))),
                })
            },
        )
        .await?;
        match waited {
            Ok(Joined::Now(leader)) => {
                info!(instance = %node.instance, leader = %leader.instance, "node joined the cluster");
                Ok(true)
            }
            Ok(Joined::Already) => {
                info!(instance = %node.instance, "the node's earlier join went through");
                Ok(true)
            }
            Ok(Joined::Refused(reason)) => Err(LaunchFailure::FreshInstanceMayHelp(reason)),
            Err(expired) if expired.why == "its limit" => {
                Err(LaunchFailure::FreshInstanceMayHelp(expired.to_string()))
            }
            Err(expired) => Err(LaunchFailure::Error(expired.into())),
        }
    }

    /// Why an initialised `node` that the active node does not list as a Raft peer cannot
    /// be taken in: it holds Raft data of its own (an instance back from the warm pool
    /// after its peer was removed, or another cluster's disk). Joining needs empty Raft
    /// data, and this function cannot wipe a disk, so the launch is abandoned and the
    /// group replaces the instance. `None` when it is a peer, or no node leads to ask.
    async fn initialised_outside(
        &self,
        node: &FleetNode,
    ) -> Result<Option<String>, LifecycleError> {
        let (active, token) = match self.active_with_token(None).await {
            Ok(found) => found,
            Err(LifecycleError::NoActiveNode { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let peers = self.raft_peers(&active, &token).await?;
        let id = node.instance.as_str();
        if peers.iter().any(|p| p.node_id == id) {
            return Ok(None);
        }
        Ok(Some(format!(
            "node {id} is initialised but is not a raft peer of the cluster {} leads: it holds raft data of its own (reused from the warm pool after its peer was removed, or another cluster's disk), and a node joins only with empty raft data; the user data must clear it before the node starts",
            active.instance
        )))
    }

    /// Waits until autopilot, asked through the active node, reports `node` a healthy
    /// voter.
    async fn wait_until_healthy_voter(
        &self,
        node: &FleetNode,
        deadline: Instant,
    ) -> Result<(), LifecycleError> {
        let id = node.instance.as_str();
        poll_until(
            &format!("{id} to be a healthy voter"),
            self.settings.voter_timeout,
            deadline,
            POLL_INTERVAL,
            || async {
                let (active, token) = match self.active_with_token(None).await {
                    Ok(found) => found,
                    Err(LifecycleError::NoActiveNode { .. }) => {
                        return Ok(Look::NotYet("no active node".into()))
                    }
                    Err(e) => return Err(e),
                };
                let state = self
                    .vault
                    .autopilot_state(&active.addr, &token)
                    .await
                    .map_err(vault_step("reading autopilot state"))?;
                Ok(match state.servers.get(id) {
                    Some(s) if s.healthy && s.is_voter() => Look::Ready(()),
                    Some(s) => Look::NotYet(format!("{}, healthy: {}", s.status, s.healthy)),
                    None => Look::NotYet("not a raft peer yet".into()),
                })
            },
        )
        .await??;
        info!(instance = %id, "node is a healthy voter");
        Ok(())
    }
}

/// How a join ended.
enum Joined {
    /// It joined now, through this active node.
    Now(FleetNode),
    /// An earlier join whose answer was lost went through.
    Already,
    /// The node or the leader refused it: the instance is at fault.
    Refused(String),
}
