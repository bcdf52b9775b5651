use async_trait::async_trait;
use aws_sdk_autoscaling::error::ProvideErrorMetadata;

use super::describe;
use crate::{
    cluster::lifecycle_actions::{ActionError, ActionOutcome, LifecycleActions, Verdict},
    events::LifecycleAction,
};

/// CompleteLifecycleAction and RecordLifecycleActionHeartbeat, by token.
#[derive(Clone, Debug)]
pub struct AsgLifecycleActions {
    client: aws_sdk_autoscaling::Client,
}

impl AsgLifecycleActions {
    /// Actions completed through `client`.
    pub fn new(client: aws_sdk_autoscaling::Client) -> Self {
        Self { client }
    }
}

/// Auto Scaling answers `ValidationError: No active Lifecycle Action found ...` for an
/// action that is complete or timed out.
fn outcome<T, E>(
    action: &'static str,
    target: &LifecycleAction,
    result: Result<T, E>,
) -> Result<ActionOutcome, ActionError>
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match result {
        Ok(_) => Ok(ActionOutcome::Done),
        Err(e)
            if e.code() == Some("ValidationError")
                && e.message()
                    .is_some_and(|m| m.contains("No active Lifecycle Action")) =>
        {
            Ok(ActionOutcome::AlreadyDone)
        }
        Err(e) => Err(ActionError {
            action,
            instance: target.instance.to_string(),
            group: target.group.clone(),
            reason: describe(e),
        }),
    }
}

#[async_trait]
impl LifecycleActions for AsgLifecycleActions {
    async fn complete(
        &self,
        action: &LifecycleAction,
        verdict: Verdict,
    ) -> Result<ActionOutcome, ActionError> {
        let result = match verdict {
            Verdict::Continue => "CONTINUE",
            Verdict::Abandon => "ABANDON",
        };
        let sent = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_token(&action.token)
            .instance_id(action.instance.as_str())
            .lifecycle_action_result(result)
            .send()
            .await;
        outcome("complete", action, sent)
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionOutcome, ActionError> {
        let sent = self
            .client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_token(&action.token)
            .instance_id(action.instance.as_str())
            .send()
            .await;
        outcome("heartbeat", action, sent)
    }
}
