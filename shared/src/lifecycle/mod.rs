//! node-lifecycle's logic: nodes that initialise, join, unseal and leave the Raft cluster
//! by themselves as the Auto Scaling group launches and terminates them.
//!
//! - [`launch`]: wait for the node's API, initialise the cluster exactly once or join the
//!   node to it, unseal it, wait until it is a healthy voter, complete CONTINUE (or
//!   ABANDON when a fresh instance could do better).
//! - [`init`]: the one-time initialisation under the init lock, with the shares stored
//!   before anything else; `bootstrap`: then every deployed function's policy and
//!   AppRole, the root token revoked.
//! - `abandoned`: `LaunchAbandoned`, for launches the function abandons and those the
//!   hook's timeout abandoned (counted at their instance's terminate).
//! - [`terminate`]: one at a time under the terminate lock, find the leader among every
//!   instance (leaving ones included), remove departed dead voters first, step a leader
//!   down, keep quorum's margin while a replacement joins, remove the peer, complete
//!   CONTINUE; hold the action with heartbeats while the departure would cost quorum.
//! - [`quorum`]: the arithmetic of voters that leave.
//! - `replacement`: before a peer leaves, wait for a joining replacement when its removal
//!   would leave no failure tolerance.
//! - [`reconcile`]: unseal sealed nodes, remove at most one departed peer per run.
//! - [`pending`]: one delivery of an action at a time, and only an action Auto Scaling
//!   has pending; a launch into the warm pool completes without touching the node.
//! - [`dr_keys`]: every share copied to the DR region's SSM under its own key.
//! - [`records`]: what is remembered between invocations, per lifecycle action.
//!
//! Every step reads the state first and acts only on the difference, so a redelivered
//! event or a run cut off at its timeout converges when it runs again.

mod abandoned;
mod assembly;
mod bootstrap;
pub mod dr_keys;
mod error;
pub mod init;
mod init_keys;
pub mod launch;
pub mod pending;
pub mod quorum;
mod rebuild;
pub mod reconcile;
pub mod records;
mod replacement;
pub mod settings;
pub mod terminate;
pub mod unseal;

use std::{collections::BTreeSet, time::Duration};

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

pub use self::{
    assembly::{assemble, from_sdk, DeployedLifecycle},
    error::LifecycleError,
};
pub use settings::{LifecycleConfig, LifecycleSettings};

use self::records::{ActionRecord, ActionStage, StateRecords};
use crate::{
    cluster::{
        auth::VaultLogin,
        lifecycle_actions::{ActionOutcome, LifecycleActions, Verdict},
        locks::Locks,
        node::NodeApi,
        ports::{Fleet, FleetNode, ParameterStore},
    },
    error_chain,
    events::{LifecycleAction, LifecycleRequest, Transition},
    ids::{InstanceId, NodeAddr},
    lambda::{FunctionError, Handler, Invocation},
    secret::Secret,
    telemetry::MetricsSink,
    vault::{SealStatus, VaultError},
};

/// How often a wait looks again. Short, because every look is one cheap local request
/// and the launch benchmark counts each wasted fraction of a second.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// node-lifecycle with its ports. Build it once per cold start.
pub struct NodeLifecycle<N, P> {
    /// What the operator configured.
    pub settings: LifecycleSettings,
    /// The cluster's Auto Scaling group.
    pub fleet: Box<dyn Fleet>,
    /// The Vault client for every node.
    pub vault: N,
    /// Where shares and credentials are kept.
    pub parameters: P,
    /// This function's own Vault login (its AppRole, once bootstrap made it).
    pub login: VaultLogin<P>,
    /// The init lock.
    pub locks: Box<dyn Locks>,
    /// Lifecycle actions: complete and heartbeat.
    pub actions: Box<dyn LifecycleActions>,
    /// Progress per lifecycle token, and the initialisation record.
    pub records: Box<dyn StateRecords>,
    /// Where the abandon count goes.
    pub metrics: Box<dyn MetricsSink>,
    /// The DR region's SSM and key, where every share is copied (`DR_REGION`).
    pub dr_keys: Option<dr_keys::DrKeys<P>>,
    /// This cluster's failover record in the DR region's table (`DR_STATE_TABLE`;
    /// `None`: not configured): while dr-failover has the cluster fenced and no failback
    /// is asked for, reconcile leaves its sealed nodes sealed.
    pub fence: Option<Box<dyn crate::failover::record::FailoverRecords>>,
}

/// What an invocation did, returned to the caller as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Auto Scaling's test notification: nothing to do.
    Acknowledged {
        /// The group that sent it.
        group: String,
    },
    /// The action was completed by an earlier delivery of the same event: nothing done.
    AlreadyCompleted {
        /// The instance.
        instance: InstanceId,
        /// `continued` or `abandoned`.
        stage: &'static str,
    },
    /// A launch into the warm pool: completed CONTINUE without initialising, joining or
    /// unsealing the node (it is stopped in the pool; its launch out of the pool joins it).
    WarmPoolEntered {
        /// The instance.
        instance: InstanceId,
        /// The lifecycle action was still pending and is now completed.
        completed_now: bool,
    },
    /// A launched node is a healthy voter; the action was completed CONTINUE.
    Launched(launch::LaunchReport),
    /// A launched node could not be made a member; the action was completed ABANDON so
    /// the group replaces the instance.
    Abandoned {
        /// The instance.
        instance: InstanceId,
        /// Why.
        reason: String,
    },
    /// A terminating node left the cluster; the action was completed CONTINUE.
    Terminated(terminate::LeaveReport),
    /// Reconcile's actions and refusals.
    Reconciled(reconcile::ReconcileReport),
}

/// An earlier delivery of this event completed its action: say so, to do nothing.
fn already_completed(action: &LifecycleAction, record: Option<&ActionRecord>) -> Option<Outcome> {
    let record = record?;
    if record.stage.in_progress() {
        info!(instance = %action.instance, stage = record.stage.as_str(), "resuming a lifecycle action an earlier run started");
        return None;
    }
    info!(instance = %action.instance, stage = record.stage.as_str(), "lifecycle action already completed by an earlier delivery; nothing to do");
    Some(Outcome::AlreadyCompleted {
        instance: action.instance.clone(),
        stage: record.stage.as_str(),
    })
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// The Raft peers, as the active node `active` lists them.
    pub(crate) async fn raft_peers(
        &self,
        active: &FleetNode,
        token: &Secret,
    ) -> Result<Vec<crate::vault::RaftServer>, LifecycleError> {
        Ok(self
            .vault
            .raft_configuration(&active.addr, token)
            .await
            .map_err(vault_step("reading the raft configuration"))?
            .servers)
    }
}

pub(crate) fn vault_step(step: impl Into<String>) -> impl FnOnce(VaultError) -> LifecycleError {
    let step = step.into();
    move |source| LifecycleError::Vault { step, source }
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Parses `event`, checks it is for this cluster's group, and carries it out.
    /// `deadline` is the invocation's: waits stop before it so progress is recorded.
    pub async fn handle(
        &self,
        event: &serde_json::Value,
        deadline: Instant,
    ) -> Result<Outcome, FunctionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        info!(time_left_ms = left.as_millis() as u64, "invocation started");
        Ok(self.run(event, deadline).await?)
    }

    /// Carries `event` out, once more with a fresh login if Vault refused a cached token.
    async fn run(
        &self,
        event: &serde_json::Value,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        self.login
            .retry_if_stale(|| self.run_once(event, deadline))
            .await
    }

    async fn run_once(
        &self,
        event: &serde_json::Value,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        let request = LifecycleRequest::parse(event)?;
        if let Some(group) = request.group() {
            if group != self.settings.asg {
                return Err(LifecycleError::OtherGroup {
                    expected: self.settings.asg.clone(),
                    got: group.to_owned(),
                });
            }
        }
        match request {
            LifecycleRequest::TestNotification { group } => {
                info!(group = %group, "test notification from the lifecycle hook acknowledged; nothing to do");
                Ok(Outcome::Acknowledged { group })
            }
            LifecycleRequest::Action(action) => {
                let lock = self.claim_action(&action, deadline).await?;
                let outcome = self.carry_out(&action, deadline).await;
                self.release_action(&action, lock).await;
                outcome
            }
            LifecycleRequest::Reconcile => Ok(Outcome::Reconciled(self.reconcile(deadline).await?)),
        }
    }

    /// Carries out one action, under its lock, once Auto Scaling confirms it is pending.
    async fn carry_out(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        let record = self.records.action(action).await?;
        if let Some(done) = already_completed(action, record.as_ref()) {
            return Ok(done);
        }
        self.ensure_pending(action).await?;
        if record.is_none() {
            if action.transition == Transition::Terminating {
                self.count_launch_abandoned_by_timeout(action).await;
            }
            self.record_stage(action, ActionStage::Started).await?;
        }
        match action.transition {
            Transition::Launching if action.into_warm_pool() => {
                self.on_warm_pool_entry(action).await
            }
            Transition::Launching => self.on_launch(action, deadline).await,
            Transition::Terminating => self.on_terminate(action, deadline).await,
        }
    }

    pub(crate) async fn record_stage(
        &self,
        action: &LifecycleAction,
        stage: ActionStage,
    ) -> Result<(), LifecycleError> {
        let record = ActionRecord {
            instance: action.instance.clone(),
            transition: action.transition,
            stage,
        };
        Ok(self.records.put_action(action, &record).await?)
    }

    /// Completes the action and records it, in that order: a crash between the two
    /// leaves a record that says "started", and the next delivery's completion is
    /// answered AlreadyDone.
    async fn complete(
        &self,
        action: &LifecycleAction,
        verdict: Verdict,
    ) -> Result<ActionOutcome, LifecycleError> {
        let outcome = self.actions.complete(action, verdict).await?;
        if outcome == ActionOutcome::AlreadyDone {
            warn!(instance = %action.instance, ?verdict, "lifecycle action was no longer pending (completed before, or its timeout passed)");
        } else {
            info!(instance = %action.instance, ?verdict, "lifecycle action completed");
        }
        let stage = match verdict {
            Verdict::Continue => ActionStage::Continued,
            Verdict::Abandon => ActionStage::Abandoned,
        };
        self.record_stage(action, stage).await?;
        Ok(outcome)
    }

    /// Runs `work` while sending the action's heartbeat every interval, so the hook does
    /// not time out while a node joins or a replacement catches up.
    async fn with_heartbeats<T>(
        &self,
        action: &LifecycleAction,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let interval = self.settings.heartbeat_interval;
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = ticks.tick() => match self.actions.heartbeat(action).await {
                    Ok(ActionOutcome::Done) => info!(instance = %action.instance, "lifecycle heartbeat sent"),
                    Ok(ActionOutcome::AlreadyDone) => warn!(instance = %action.instance, "lifecycle action no longer pending; heartbeat not needed"),
                    Err(e) => warn!(instance = %action.instance, error = %error_chain(&e), "lifecycle heartbeat failed; will try again"),
                },
            }
        }
    }

    /// The first node of the group that answers as active, asking all of them at once:
    /// every instance whatever its lifecycle state (a leader whose own instance waits in
    /// Terminating:Wait still leads), and `also` (a leaving instance the group may no
    /// longer list).
    async fn active_node(
        &self,
        also: Option<&FleetNode>,
    ) -> Result<Option<FleetNode>, LifecycleError> {
        Ok(self.find_active(also).await?.0)
    }

    /// The active node, if any, and how many nodes were asked.
    async fn find_active(
        &self,
        also: Option<&FleetNode>,
    ) -> Result<(Option<FleetNode>, usize), LifecycleError> {
        let mut nodes = self.fleet.instances().await?;
        if let Some(node) = also.filter(|n| !nodes.contains(n)) {
            nodes.push(node.clone());
        }
        let asked = nodes.len();
        let active = crate::cluster::find_active(&self.vault, nodes).await;
        Ok((active.map(|(node, _)| node), asked))
    }

    /// The active node and this function's token, logged in through it (a standby may
    /// not know a freshly written credential yet).
    async fn active_with_token(
        &self,
        also: Option<&FleetNode>,
    ) -> Result<(FleetNode, Secret), LifecycleError> {
        let (active, asked) = self.find_active(also).await?;
        let Some(active) = active else {
            return Err(LifecycleError::NoActiveNode { asked });
        };
        let token = self.login.token(&self.vault, &active.addr).await?;
        Ok((active, token))
    }

    /// `sys/seal-status` of `node`, as a step of this function.
    async fn seal_status_of(&self, node: &NodeAddr) -> Result<SealStatus, LifecycleError> {
        self.vault
            .seal_status(node)
            .await
            .map_err(vault_step(format!("reading the seal status of {node}")))
    }

    /// The node ids of the group's members.
    async fn member_ids(&self) -> Result<BTreeSet<String>, LifecycleError> {
        Ok(self
            .fleet
            .members()
            .await?
            .into_iter()
            .map(|m| m.instance.as_str().to_owned())
            .collect())
    }
}

#[async_trait::async_trait]
impl<N: NodeApi, P: ParameterStore> Handler for NodeLifecycle<N, P> {
    type Output = Outcome;
    async fn handle(&self, invocation: Invocation) -> Result<Outcome, FunctionError> {
        NodeLifecycle::handle(self, &invocation.payload, invocation.deadline).await
    }
}

#[cfg(test)]
mod tests;
