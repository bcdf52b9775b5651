//! dr-failover's events: a CloudWatch alarm, however it is delivered (Lambda alarm action,
//! EventBridge "CloudWatch Alarm State Change", SNS), of any kind (single metric, metric
//! math, composite, anomaly detection); or a direct plan / failover / failback.
//!
//! Only the alarm's name and state are required: the typed alarm structs of
//! `aws_lambda_events` require fields that metric-math and composite alarms lack, so the
//! rest is read where present and never demanded.

use serde::Serialize;
use serde_json::Value;

use super::{describe, eventbridge, text, EventError};

const FUNCTION: &str = "dr-failover";
const EXPECTED: &str = "a CloudWatch alarm (alarm action, EventBridge or SNS) or {\"action\": \"plan\" | \"failover\" | \"failback\" | \"drill\"}";

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmState {
    /// `ALARM`.
    Alarm,
    /// `OK`.
    Ok,
    /// `INSUFFICIENT_DATA`.
    InsufficientData,
}

impl AlarmState {
    fn parse(field: &str, value: &str) -> Result<Self, EventError> {
        match value {
            "ALARM" => Ok(Self::Alarm),
            "OK" => Ok(Self::Ok),
            "INSUFFICIENT_DATA" => Ok(Self::InsufficientData),
            other => Err(EventError::Invalid {
                function: FUNCTION,
                field: field.into(),
                reason: format!("{other:?} is not an alarm state"),
            }),
        }
    }
}

/// What kind of alarm fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmKind {
    /// One metric against a threshold.
    Metric,
    /// A metric math expression.
    MetricMath,
    /// An anomaly detection band.
    AnomalyDetection,
    /// A composite alarm over other alarms.
    Composite,
    /// The delivery carried no configuration to tell.
    Unknown,
}

/// How the alarm reached the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmDelivery {
    /// CloudWatch invoked the function as the alarm's action.
    AlarmAction,
    /// An EventBridge rule on "CloudWatch Alarm State Change".
    EventBridge,
    /// An SNS topic the alarm publishes to.
    Sns,
}

/// An alarm's state change, whatever its kind and delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmNotice {
    /// The alarm's name.
    pub name: String,
    /// Its ARN, when the delivery carries it.
    pub arn: Option<String>,
    /// The state it entered.
    pub state: AlarmState,
    /// The state it left, when known.
    pub previous: Option<AlarmState>,
    /// CloudWatch's reason text.
    pub reason: Option<String>,
    /// What kind of alarm it is.
    pub kind: AlarmKind,
    /// How it arrived.
    pub delivery: AlarmDelivery,
}

/// What dr-failover was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum FailoverRequest {
    /// An alarm changed state: confirm the primary is down before acting.
    Alarm(AlarmNotice),
    /// An SNS delivery carrying several state changes, in the order delivered: each is
    /// handled in turn, as if it had come alone.
    Alarms(Vec<AlarmNotice>),
    /// Say what a failover would do; change nothing.
    Plan,
    /// Fail over now (an operator's decision).
    Failover {
        /// Why, for the record.
        reason: Option<String>,
        /// Go ahead even while the primary answers healthy.
        force: bool,
    },
    /// Return to the primary region.
    Failback {
        /// The operator says the primary's nodes and their data are gone (a region that
        /// lost them while its Auto Scaling API did not answer the fence): rebuild its
        /// cluster in a new node when none of its nodes is initialised.
        rebuild: bool,
    },
    /// Restore the newest DR copy into the idle standby and mark it proven or failed.
    Drill,
}

impl FailoverRequest {
    /// Parses any event dr-failover receives.
    pub fn parse(value: &Value) -> Result<Self, EventError> {
        if let Some(event) = eventbridge(value) {
            if event.detail_type == "CloudWatch Alarm State Change" {
                let notice =
                    from_cloudwatch_shape(&event.detail, "detail", AlarmDelivery::EventBridge)?;
                return Ok(Self::Alarm(AlarmNotice {
                    arn: event.resources.and_then(|r| r.into_iter().next()),
                    ..notice
                }));
            }
            return Err(unrecognised(value));
        }
        if value.get("alarmData").is_some() {
            let notice = from_cloudwatch_shape(
                &value["alarmData"],
                "alarmData",
                AlarmDelivery::AlarmAction,
            )?;
            return Ok(Self::Alarm(AlarmNotice {
                arn: value
                    .get("alarmArn")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..notice
            }));
        }
        if let Some(records) = value.get("Records").and_then(Value::as_array) {
            return from_sns(records);
        }
        match value.get("action").and_then(Value::as_str) {
            Some(action) => direct_action(value, action),
            None => Err(unrecognised(value)),
        }
    }
}

fn direct_action(value: &Value, action: &str) -> Result<FailoverRequest, EventError> {
    let allowed: &[&str] = match action {
        "plan" | "drill" => &["action"],
        "failback" => &["action", "rebuild"],
        "failover" => &["action", "reason", "force"],
        other => {
            return Err(EventError::Invalid {
                function: FUNCTION,
                field: "action".into(),
                reason: format!("{other:?} is not one of plan, failover, failback, drill"),
            })
        }
    };
    if let Some(extra) = value
        .as_object()
        .and_then(|m| m.keys().find(|k| !allowed.contains(&k.as_str())))
    {
        return Err(EventError::Invalid {
            function: FUNCTION,
            field: extra.clone(),
            reason: format!("is not a field of the {action} request"),
        });
    }
    Ok(match action {
        "plan" => FailoverRequest::Plan,
        "failback" => FailoverRequest::Failback {
            rebuild: flag(value, "rebuild")?,
        },
        "drill" => FailoverRequest::Drill,
        _ => FailoverRequest::Failover {
            reason: value
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            force: flag(value, "force")?,
        },
    })
}

/// An optional `true`/`false` field, false when absent.
fn flag(value: &Value, field: &str) -> Result<bool, EventError> {
    match value.get(field) {
        None => Ok(false),
        Some(Value::Bool(set)) => Ok(*set),
        Some(_) => Err(EventError::Invalid {
            function: FUNCTION,
            field: field.into(),
            reason: "is not true or false".into(),
        }),
    }
}

/// The alarm-action `alarmData` and the EventBridge `detail` share one shape.
fn from_cloudwatch_shape(
    data: &Value,
    at: &str,
    delivery: AlarmDelivery,
) -> Result<AlarmNotice, EventError> {
    let name = text(FUNCTION, data, "alarmName")
        .map_err(|_| invalid(&format!("{at}.alarmName"), "is missing"))?;
    let state_text = text(FUNCTION, data, "state.value")
        .map_err(|_| invalid(&format!("{at}.state.value"), "is missing"))?;
    let state = AlarmState::parse(&format!("{at}.state.value"), &state_text)?;
    let previous = match data.pointer("/previousState/value").and_then(Value::as_str) {
        Some(v) => Some(AlarmState::parse(&format!("{at}.previousState.value"), v)?),
        None => None,
    };
    let configuration = data.get("configuration").unwrap_or(&Value::Null);
    let kind = if configuration.get("alarmRule").is_some() {
        AlarmKind::Composite
    } else {
        metrics_kind(configuration.get("metrics"), "expression")
    };
    Ok(AlarmNotice {
        name,
        arn: None,
        state,
        previous,
        reason: data
            .pointer("/state/reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        kind,
        delivery,
    })
}

/// Metric math when any metric has an expression; anomaly detection when one of those
/// expressions is an anomaly band; a plain metric otherwise.
fn metrics_kind(metrics: Option<&Value>, expression_key: &str) -> AlarmKind {
    let Some(metrics) = metrics.and_then(Value::as_array) else {
        return AlarmKind::Unknown;
    };
    let expressions: Vec<&str> = metrics
        .iter()
        .filter_map(|m| m.get(expression_key).and_then(Value::as_str))
        .collect();
    if expressions
        .iter()
        .any(|e| e.contains("ANOMALY_DETECTION_BAND"))
    {
        AlarmKind::AnomalyDetection
    } else if !expressions.is_empty() {
        AlarmKind::MetricMath
    } else if metrics.is_empty() {
        AlarmKind::Unknown
    } else {
        AlarmKind::Metric
    }
}

fn from_sns(records: &[Value]) -> Result<FailoverRequest, EventError> {
    let mut notices = records
        .iter()
        .enumerate()
        .map(|(i, record)| from_sns_record(i, record))
        .collect::<Result<Vec<_>, _>>()?;
    match notices.len() {
        0 => Err(invalid(
            "Records",
            "holds 0 records; an SNS delivery holds at least one",
        )),
        1 => Ok(FailoverRequest::Alarm(notices.remove(0))),
        _ => Ok(FailoverRequest::Alarms(notices)),
    }
}

fn from_sns_record(i: usize, record: &Value) -> Result<AlarmNotice, EventError> {
    let at = |path: &str| format!("Records[{i}].{path}");
    let message = text(FUNCTION, record, "Sns.Message")
        .map_err(|_| invalid(&at("Sns.Message"), "is missing"))?;
    let alarm: Value = serde_json::from_str(&message).map_err(|_| {
        invalid(
            &at("Sns.Message"),
            "is not a CloudWatch alarm notification (not JSON)",
        )
    })?;
    let field = |name: &str| {
        text(FUNCTION, &alarm, name)
            .map_err(|_| invalid(&at(&format!("Sns.Message.{name}")), "is missing"))
    };
    let name = field("AlarmName")?;
    let state = AlarmState::parse(&at("Sns.Message.NewStateValue"), &field("NewStateValue")?)?;
    let previous = match alarm.get("OldStateValue").and_then(Value::as_str) {
        Some(v) => Some(AlarmState::parse(&at("Sns.Message.OldStateValue"), v)?),
        None => None,
    };
    let trigger = alarm.get("Trigger").unwrap_or(&Value::Null);
    let kind = if alarm.get("AlarmRule").is_some() {
        AlarmKind::Composite
    } else if trigger.get("MetricName").is_some() {
        AlarmKind::Metric
    } else {
        metrics_kind(trigger.get("Metrics"), "Expression")
    };
    Ok(AlarmNotice {
        name,
        arn: alarm
            .get("AlarmArn")
            .and_then(Value::as_str)
            .map(str::to_owned),
        state,
        previous,
        reason: alarm
            .get("NewStateReason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        kind,
        delivery: AlarmDelivery::Sns,
    })
}

fn invalid(field: &str, reason: &str) -> EventError {
    EventError::Invalid {
        function: FUNCTION,
        field: field.into(),
        reason: reason.into(),
    }
}

fn unrecognised(value: &Value) -> EventError {
    EventError::Unrecognised {
        function: FUNCTION,
        expected: EXPECTED,
        got: describe(value),
    }
}
