//! Completing Auto Scaling lifecycle actions. Events arrive at least once, so an action
//! that is already complete is an outcome ([`ActionOutcome::AlreadyDone`]), not an error.

use async_trait::async_trait;

use crate::events::LifecycleAction;

/// How a lifecycle action ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the instance go on (into service, or to termination).
    Continue,
    /// Give up on it (a launch: the group terminates it and launches another).
    Abandon,
}

/// What became of a completion or a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Done now.
    Done,
    /// The action was no longer pending: completed before (a redelivered event), or
    /// timed out. Nothing was changed.
    AlreadyDone,
}

/// Why Auto Scaling could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} lifecycle action of {instance} in {group}: {reason}")]
pub struct ActionError {
    /// `complete` or `heartbeat`.
    pub action: &'static str,
    /// The instance.
    pub instance: String,
    /// The group.
    pub group: String,
    /// The SDK's error.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// The Auto Scaling lifecycle-action API.
#[async_trait]
pub trait LifecycleActions: Send + Sync {
    /// Completes `action` with `verdict`.
    async fn complete(
        &self,
        action: &LifecycleAction,
        verdict: Verdict,
    ) -> Result<ActionOutcome, ActionError>;
    /// Extends `action`'s timeout by the hook's heartbeat timeout.
    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionOutcome, ActionError>;
}

impl crate::errors::Classify for ActionError {
    fn retry_helps(&self) -> bool {
        self.reason.retry_helps()
    }
    fn name(&self) -> &'static str {
        self.reason.name("LifecycleActionFailed")
    }
}
