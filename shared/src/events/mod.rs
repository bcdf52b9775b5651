//! The events AWS delivers and the direct requests operators send, parsed into domain
//! requests before anything changes. A malformed or misdirected event fails here with an
//! [`EventError`] that says what was received and what was expected.
//!
//! Parsing starts from `serde_json::Value` rather than one derived struct because a
//! function takes several shapes (EventBridge rule, EventBridge Scheduler, a CloudWatch
//! alarm action, SNS, a direct payload) and must tell them apart by their keys.

mod alarm;
mod lifecycle;
mod requests;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use alarm::{AlarmDelivery, AlarmKind, AlarmNotice, AlarmState, FailoverRequest};
pub use lifecycle::{LifecycleAction, LifecycleRequest, Place, Transition};
pub use requests::{
    BackupRequest, ProbeRequest, RestoreRequest, RotationRequest, RotationTarget, SnapshotSelector,
};

/// An event a function cannot act on. Nothing was changed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    /// The event is of a kind this function does not take.
    #[error("{function} does not take {got}; it takes {expected}")]
    Unrecognised {
        /// The function that received it.
        function: &'static str,
        /// What it takes.
        expected: &'static str,
        /// A short description of what arrived (source and detail-type, or its keys).
        got: String,
    },
    /// The event is of the right kind but a field is missing or wrong.
    #[error("{function} cannot use this event: {field} {reason}")]
    Invalid {
        /// The function that received it.
        function: &'static str,
        /// The field, as a JSON path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// An EventBridge envelope (rule or Scheduler), with `detail` decoded when Scheduler sent
/// it as a JSON string. `None` when the value is not an envelope.
pub(crate) fn eventbridge(value: &Value) -> Option<EventBridgeEvent<Value>> {
    if value.get("detail-type").is_none() || value.get("source").is_none() {
        return None;
    }
    let mut event: EventBridgeEvent<Value> = serde_json::from_value(value.clone()).ok()?;
    if let Value::String(text) = &event.detail {
        event.detail = serde_json::from_str(text).unwrap_or(Value::String(text.clone()));
    }
    Some(event)
}

/// A schedule fired this event: an EventBridge rule or an EventBridge Scheduler envelope.
pub(crate) fn is_schedule(event: &EventBridgeEvent<Value>) -> bool {
    event.detail_type == "Scheduled Event"
        && (event.source == "aws.events" || event.source == "aws.scheduler")
}

/// A short description of an unexpected event for an error message: its envelope's
/// source and detail-type, or its top-level keys. Never values, which may be anything.
pub(crate) fn describe(value: &Value) -> String {
    if let Some(event) = eventbridge(value) {
        return format!(
            "an EventBridge event {:?} from {}",
            event.detail_type, event.source
        );
    }
    match value {
        Value::Object(map) if map.is_empty() => "an empty object".into(),
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
            format!("an object with keys [{}]", keys.join(", "))
        }
        Value::Null => "null".into(),
        Value::Array(_) => "a JSON array".into(),
        _ => "a JSON scalar".into(),
    }
}

/// Decodes a direct request into `T` (which denies unknown fields), naming the problem.
pub(crate) fn direct<T: DeserializeOwned>(
    function: &'static str,
    value: &Value,
) -> Result<T, EventError> {
    serde_json::from_value(value.clone()).map_err(|e| EventError::Invalid {
        function,
        field: "request".into(),
        reason: e.to_string(),
    })
}

/// A required string field, or an error naming its path.
pub(crate) fn text(
    function: &'static str,
    value: &Value,
    path: &str,
) -> Result<String, EventError> {
    let mut current = value;
    for key in path.split('.') {
        current = current.get(key).unwrap_or(&Value::Null);
    }
    match current {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::Null => Err(EventError::Invalid {
            function,
            field: path.into(),
            reason: "is missing".into(),
        }),
        _ => Err(EventError::Invalid {
            function,
            field: path.into(),
            reason: "must be a non-empty string".into(),
        }),
    }
}

impl crate::errors::Classify for EventError {
    fn retry_helps(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Unrecognised { .. } => "UnrecognisedEvent",
            Self::Invalid { .. } => "InvalidEvent",
        }
    }
}

#[cfg(test)]
mod tests;
