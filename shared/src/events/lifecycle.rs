//! node-lifecycle's events: Auto Scaling lifecycle actions through EventBridge, the
//! hook's test notification, and reconcile (scheduled or direct).

use serde_json::Value;

use super::{describe, eventbridge, is_schedule, text, EventError};
use crate::ids::InstanceId;

const FUNCTION: &str = "node-lifecycle";
const EXPECTED: &str = "an EC2 Instance-launch or Instance-terminate Lifecycle Action, a scheduled event or {\"action\": \"reconcile\"}";

/// Which way an instance is moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `autoscaling:EC2_INSTANCE_LAUNCHING`.
    Launching,
    /// `autoscaling:EC2_INSTANCE_TERMINATING`.
    Terminating,
}

impl Transition {
    /// `launch` or `terminate`, as records and reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Launching => "launch",
            Self::Terminating => "terminate",
        }
    }
}

/// Where an instance comes from or goes to, as the event's `Origin` and `Destination`
/// say. Only a group with a warm pool sends `WarmPool`; an event without the fields (a
/// group without a warm pool, or an older event) counts as EC2 to the group on launch
/// and the group to EC2 on terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// EC2 itself: a new instance, or one terminated for good.
    Ec2,
    /// The Auto Scaling group: in service.
    AutoScalingGroup,
    /// The group's warm pool: stopped, hibernated or running, not in service.
    WarmPool,
}

impl Place {
    fn parse(field: &str, text: &str) -> Result<Self, EventError> {
        match text {
            "EC2" => Ok(Self::Ec2),
            "AutoScalingGroup" => Ok(Self::AutoScalingGroup),
            "WarmPool" => Ok(Self::WarmPool),
            other => Err(EventError::Invalid {
                function: FUNCTION,
                field: format!("detail.{field}"),
                reason: format!(
                    "is {other:?}; Auto Scaling sends EC2, AutoScalingGroup or WarmPool"
                ),
            }),
        }
    }
}

/// One pending lifecycle action, as the hook announced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleAction {
    /// The Auto Scaling group.
    pub group: String,
    /// The lifecycle hook.
    pub hook: String,
    /// The instance.
    pub instance: InstanceId,
    /// The action's token: it identifies this action (and its idempotency record).
    pub token: String,
    /// Launch or terminate.
    pub transition: Transition,
    /// The hook's notification metadata, if any.
    pub metadata: Option<String>,
    /// Where the instance comes from.
    pub origin: Place,
    /// Where the instance goes: `WarmPool` for a launch into the warm pool, or a
    /// terminate that returns the instance to it.
    pub destination: Place,
}

impl LifecycleAction {
    /// The action of a group without a warm pool: EC2 to the group, or the group to EC2.
    pub fn plain(
        group: impl Into<String>,
        hook: impl Into<String>,
        instance: InstanceId,
        token: impl Into<String>,
        transition: Transition,
    ) -> Self {
        let (origin, destination) = match transition {
            Transition::Launching => (Place::Ec2, Place::AutoScalingGroup),
            Transition::Terminating => (Place::AutoScalingGroup, Place::Ec2),
        };
        Self {
            group: group.into(),
            hook: hook.into(),
            instance,
            token: token.into(),
            transition,
            metadata: None,
            origin,
            destination,
        }
    }

    /// A launch into the warm pool: the instance will be stopped, not put in service.
    pub fn into_warm_pool(&self) -> bool {
        self.transition == Transition::Launching && self.destination == Place::WarmPool
    }
}

/// What node-lifecycle was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleRequest {
    /// A lifecycle action to carry out.
    Action(LifecycleAction),
    /// Auto Scaling's test message when a hook's target is set up: acknowledge, do nothing.
    TestNotification {
        /// The group that sent it.
        group: String,
    },
    /// Converge the cluster with the group (scheduled or direct).
    Reconcile,
}

impl LifecycleRequest {
    /// Parses any event node-lifecycle receives.
    pub fn parse(value: &Value) -> Result<Self, EventError> {
        if let Some(event) = eventbridge(value) {
            if is_schedule(&event) {
                return Ok(Self::Reconcile);
            }
            let transition = match event.detail_type.as_str() {
                "EC2 Instance-launch Lifecycle Action" => Transition::Launching,
                "EC2 Instance-terminate Lifecycle Action" => Transition::Terminating,
                _ => return Err(unrecognised(value)),
            };
            return Self::from_detail(&event.detail, transition);
        }
        if value.get("Event").and_then(Value::as_str) == Some("autoscaling:TEST_NOTIFICATION") {
            return Ok(Self::TestNotification {
                group: text(FUNCTION, value, "AutoScalingGroupName")?,
            });
        }
        match value.get("action").and_then(Value::as_str) {
            Some("reconcile") if value.as_object().is_some_and(|m| m.len() == 1) => {
                Ok(Self::Reconcile)
            }
            Some(other) if other != "reconcile" => Err(EventError::Invalid {
                function: FUNCTION,
                field: "action".into(),
                reason: format!(
                    "{other:?} is not an action; the only direct action is \"reconcile\""
                ),
            }),
            _ => Err(unrecognised(value)),
        }
    }

    fn from_detail(detail: &Value, transition: Transition) -> Result<Self, EventError> {
        if detail.get("Event").and_then(Value::as_str) == Some("autoscaling:TEST_NOTIFICATION") {
            return Ok(Self::TestNotification {
                group: text(FUNCTION, detail, "AutoScalingGroupName")?,
            });
        }
        let stated = text(FUNCTION, detail, "LifecycleTransition")?;
        let expected = match transition {
            Transition::Launching => "autoscaling:EC2_INSTANCE_LAUNCHING",
            Transition::Terminating => "autoscaling:EC2_INSTANCE_TERMINATING",
        };
        if stated != expected {
            return Err(EventError::Invalid {
                function: FUNCTION,
                field: "detail.LifecycleTransition".into(),
                reason: format!("is {stated:?}, which does not match the event's detail-type (expected {expected:?})"),
            });
        }
        let field = |name: &str| text(FUNCTION, detail, name).map_err(prefix_detail);
        let instance = field("EC2InstanceId")?;
        if !instance.starts_with("i-") {
            return Err(EventError::Invalid {
                function: FUNCTION,
                field: "detail.EC2InstanceId".into(),
                reason: format!("{instance:?} is not an instance id"),
            });
        }
        let mut action = LifecycleAction::plain(
            field("AutoScalingGroupName")?,
            field("LifecycleHookName")?,
            InstanceId::from(instance.as_str()),
            field("LifecycleActionToken")?,
            transition,
        );
        // EventBridge passes metadata that is valid JSON as an object, other text as a string.
        action.metadata = match detail.get("NotificationMetadata") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        };
        for (name, place) in [
            ("Origin", &mut action.origin),
            ("Destination", &mut action.destination),
        ] {
            match detail.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) => *place = Place::parse(name, text)?,
                Some(_) => *place = Place::parse(name, &field(name)?)?,
            }
        }
        Ok(Self::Action(action))
    }

    /// The Auto Scaling group the event is about, when it names one.
    pub fn group(&self) -> Option<&str> {
        match self {
            Self::Action(action) => Some(&action.group),
            Self::TestNotification { group } => Some(group),
            Self::Reconcile => None,
        }
    }
}

fn prefix_detail(error: EventError) -> EventError {
    match error {
        EventError::Invalid {
            function,
            field,
            reason,
        } => EventError::Invalid {
            function,
            field: format!("detail.{field}"),
            reason,
        },
        other => other,
    }
}

fn unrecognised(value: &Value) -> EventError {
    EventError::Unrecognised {
        function: FUNCTION,
        expected: EXPECTED,
        got: describe(value),
    }
}
