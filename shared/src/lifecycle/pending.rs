//! Before a lifecycle action is carried out: one delivery at a time, and only an action
//! Auto Scaling really has pending.
//!
//! - Events arrive at least once and sometimes together: each action is carried out
//!   under a lock named by its record's key. A second delivery while the first runs
//!   waits for the lock: it then finds the action completed, or takes over from a first
//!   run that died (its lock lapses). If its own time runs out first it fails with
//!   `ActionInProgress`, changing nothing, so Lambda's retry looks again: answering
//!   "in progress" as a success would leave the action to a run that may be dead.
//! - An event is only a claim: the instance must be waiting in the matching wait state
//!   (`Pending:Wait` or `Warmed:Pending:Wait` for a launch, `Terminating:Wait`,
//!   `Warmed:Terminating:Wait`, or `Warmed:Pending:Wait` on its way back to the warm pool,
//!   for a terminate), and Auto Scaling must take a heartbeat for the token. Otherwise
//!   the event is refused and nothing changes: a made-up terminate event cannot remove a
//!   healthy voter.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio::time::Instant;
use tracing::{info, warn};

use super::{records::action_key, LifecycleError, NodeLifecycle, Outcome};
use crate::{
    cluster::{
        lifecycle_actions::{ActionOutcome, Verdict},
        locks::Claim,
        node::NodeApi,
        polling::{poll_until, Look},
        ports::ParameterStore,
    },
    error_chain,
    events::{LifecycleAction, Place, Transition},
};

/// How long an action's lock outlives the invocation's deadline: a run cut off at its
/// timeout blocks a redelivery only this much longer.
const LOCK_MARGIN: Duration = Duration::from_secs(30);

/// How often a delivery waiting for its action's lock tries again.
const CLAIM_INTERVAL: Duration = Duration::from_secs(1);

/// The lifecycle states in which Auto Scaling waits for `action`.
pub fn wait_states(action: &LifecycleAction) -> &'static [&'static str] {
    match (action.transition, action.destination) {
        (Transition::Launching, _) => &["Pending:Wait", "Warmed:Pending:Wait"],
        // An instance returned to the warm pool on scale-in waits in Warmed:Pending:Wait.
        (Transition::Terminating, Place::WarmPool) => &[
            "Terminating:Wait",
            "Warmed:Terminating:Wait",
            "Warmed:Pending:Wait",
        ],
        (Transition::Terminating, _) => &["Terminating:Wait", "Warmed:Terminating:Wait"],
    }
}

/// The lock one delivery of an action holds while it runs.
pub(crate) struct ActionLock {
    name: String,
    owner: String,
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Claims the action's lock until a little past `deadline`, waiting while another
    /// delivery of the same action holds it (until that one releases it or its lock
    /// lapses), up to this invocation's deadline.
    pub(crate) async fn claim_action(
        &self,
        action: &LifecycleAction,
        deadline: Instant,
    ) -> Result<ActionLock, LifecycleError> {
        let lock = ActionLock {
            name: format!("action/{}", action_key(action)),
            owner: format!("{}#{:016x}", action.token, fastrand::u64(..)),
        };
        let lock = &lock;
        let waited = AtomicBool::new(false);
        let waited = &waited;
        let claimed = poll_until(
            "the lifecycle action's lock",
            deadline.saturating_duration_since(Instant::now()),
            deadline,
            CLAIM_INTERVAL,
            || async move {
                let ttl = deadline.saturating_duration_since(Instant::now()) + LOCK_MARGIN;
                Ok::<_, LifecycleError>(match self.locks.claim(&lock.name, &lock.owner, ttl).await? {
                    Claim::Acquired { .. } => Look::Ready(()),
                    Claim::HeldBy { owner, .. } => {
                        if !waited.swap(true, Ordering::Relaxed) {
                            info!(instance = %action.instance, transition = action.transition.as_str(), holder = %owner, "another delivery of this lifecycle action is being carried out; waiting for it");
                        }
                        Look::NotYet(owner)
                    }
                })
            },
        )
        .await?;
        match claimed {
            Ok(()) => Ok(ActionLock {
                name: lock.name.clone(),
                owner: lock.owner.clone(),
            }),
            Err(expired) => Err(LifecycleError::ActionInProgress {
                instance: action.instance.clone(),
                transition: action.transition.as_str(),
                holder: expired.last,
            }),
        }
    }

    /// Releases the lock; a failure only delays a redelivery until the lock lapses.
    pub(crate) async fn release_action(&self, action: &LifecycleAction, lock: ActionLock) {
        if let Err(e) = self.locks.release(&lock.name, &lock.owner).await {
            warn!(instance = %action.instance, error = %error_chain(&e), "lifecycle action's lock not released; it lapses by itself");
        }
    }

    /// Refuses the action unless the instance waits in its wait state and Auto Scaling
    /// takes a heartbeat for the token.
    pub(crate) async fn ensure_pending(
        &self,
        action: &LifecycleAction,
    ) -> Result<(), LifecycleError> {
        let expected = wait_states(action);
        let state = self.fleet.lifecycle_state(&action.instance).await?;
        let refused = |found: String| LifecycleError::ActionNotPending {
            instance: action.instance.clone(),
            group: action.group.clone(),
            transition: action.transition.as_str(),
            found,
            expected: expected.join(" or "),
        };
        match state {
            Some(state) if expected.contains(&state.as_str()) => {}
            Some(state) => return Err(refused(format!("in {state}"))),
            None => return Err(refused("not in the group or its warm pool".into())),
        }
        match self.actions.heartbeat(action).await? {
            ActionOutcome::Done => Ok(()),
            ActionOutcome::AlreadyDone => Err(refused(
                "waiting, but Auto Scaling has no pending action with this event's token".into(),
            )),
        }
    }

    /// A launch into the warm pool: the instance is stopped after this and is no member,
    /// so it is not initialised, joined or unsealed; the launch out of the pool does that.
    pub(crate) async fn on_warm_pool_entry(
        &self,
        action: &LifecycleAction,
    ) -> Result<Outcome, LifecycleError> {
        info!(instance = %action.instance, "launch into the warm pool: not joined now, the launch out of the pool joins it");
        let completed = self.complete(action, Verdict::Continue).await?;
        Ok(Outcome::WarmPoolEntered {
            instance: action.instance.clone(),
            completed_now: completed == ActionOutcome::Done,
        })
    }
}
