//! Every file in events/ parses into the request its function uses, and the shapes AWS
//! really sends (Scheduler's string detail, metric-math and composite alarms) are taken.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::*;

fn sample(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn all_samples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("events/ exists") {
        let dir = dir.expect("entry").path();
        if dir.is_dir() {
            for file in std::fs::read_dir(&dir).expect("function dir") {
                files.push(file.expect("entry").path());
            }
        }
    }
    files.sort();
    files
}

/// One parse per function; the outcome is summarised as a string to compare.
fn parse(function: &str, value: &Value) -> Result<String, EventError> {
    Ok(match function {
        "health-probe" => format!("{:?}", ProbeRequest::parse(value)?),
        "node-lifecycle" => match LifecycleRequest::parse(value)? {
            LifecycleRequest::Action(a) => format!("{:?} {} {}", a.transition, a.group, a.instance),
            other => format!("{other:?}"),
        },
        "snapshot-backup" => format!("{:?}", BackupRequest::parse(value)?),
        "snapshot-restore" => format!("{:?}", RestoreRequest::parse(value)?),
        "credential-rotation" => format!("{:?}", RotationRequest::parse(value)?),
        "dr-failover" => match FailoverRequest::parse(value)? {
            FailoverRequest::Alarm(a) => {
                format!("{:?} {:?} {:?} {}", a.delivery, a.kind, a.state, a.name)
            }
            FailoverRequest::Alarms(all) => all
                .iter()
                .map(|a| format!("{:?} {:?} {:?} {}", a.delivery, a.kind, a.state, a.name))
                .collect::<Vec<_>>()
                .join("; "),
            other => format!("{other:?}"),
        },
        other => panic!("events/{other}/ is not a function of this product"),
    })
}

#[test]
fn every_sample_event_parses_into_its_functions_request() {
    let files = all_samples();
    assert!(
        files.len() >= 30,
        "expected a sample per trigger, found {}",
        files.len()
    );
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let function = file
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .expect("dir name");
        let text = std::fs::read_to_string(file).expect("readable");
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(e) = parse(function, &value) {
            panic!("{} does not parse for {function}: {e}", file.display());
        }
    }
}

#[test]
fn samples_parse_to_what_they_stand_for() {
    let cases = [
        ("health-probe/schedule.json", "ProbeRequest"),
        ("health-probe/scheduler.json", "ProbeRequest"),
        (
            "node-lifecycle/launch.json",
            "Launching vault-prod i-0123456789abcdef0",
        ),
        ("node-lifecycle/terminate.json", "Terminating vault-prod"),
        (
            "node-lifecycle/launch-into-warm-pool.json",
            "Launching vault-prod i-0fedcba9876543210",
        ),
        (
            "node-lifecycle/launch-from-warm-pool.json",
            "Launching vault-prod i-0fedcba9876543210",
        ),
        (
            "node-lifecycle/terminate-into-warm-pool.json",
            "Terminating vault-prod i-0fedcba9876543210",
        ),
        ("node-lifecycle/other-group.json", "Launching web-frontend"),
        ("node-lifecycle/test-notification.json", "TestNotification"),
        ("node-lifecycle/reconcile.json", "Reconcile"),
        ("node-lifecycle/reconcile-schedule.json", "Reconcile"),
        ("snapshot-backup/schedule.json", "scheduled: true"),
        ("snapshot-backup/direct.json", "before upgrade"),
        ("snapshot-restore/latest.json", "Latest(Latest)"),
        ("snapshot-restore/as-of.json", "AsOf"),
        (
            "snapshot-restore/exact-version.json",
            "version_id: \"3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY\"",
        ),
        ("snapshot-restore/dry-run.json", "dry_run: true"),
        ("snapshot-restore/force-other-cluster.json", "force: true"),
        ("credential-rotation/schedule.json", "rotate: None"),
        (
            "credential-rotation/direct.json",
            "[Keyring, ApproleSecretIds, DatabaseRoot]",
        ),
        ("credential-rotation/unseal-shares.json", "[UnsealShares]"),
        (
            "dr-failover/alarm-action-metric.json",
            "AlarmAction Metric Alarm",
        ),
        (
            "dr-failover/alarm-action-metric-math.json",
            "AlarmAction MetricMath Alarm",
        ),
        (
            "dr-failover/alarm-action-composite.json",
            "AlarmAction Composite Alarm",
        ),
        (
            "dr-failover/alarm-action-anomaly.json",
            "AlarmAction AnomalyDetection Alarm",
        ),
        (
            "dr-failover/eventbridge-metric.json",
            "EventBridge Metric Alarm",
        ),
        (
            "dr-failover/eventbridge-metric-math.json",
            "EventBridge MetricMath Alarm",
        ),
        (
            "dr-failover/eventbridge-composite.json",
            "EventBridge Composite Alarm",
        ),
        ("dr-failover/sns-metric.json", "Sns Metric Alarm"),
        ("dr-failover/sns-metric-math.json", "Sns MetricMath Alarm"),
        ("dr-failover/sns-ok.json", "Sns Metric Ok"),
        ("dr-failover/plan.json", "Plan"),
        ("dr-failover/failover.json", "Failover { reason: Some("),
        ("dr-failover/failback.json", "Failback { rebuild: false }"),
        (
            "dr-failover/failback-rebuild.json",
            "Failback { rebuild: true }",
        ),
        ("dr-failover/drill.json", "Drill"),
    ];
    for (path, expected) in cases {
        let function = path.split('/').next().expect("dir");
        let got = parse(function, &sample(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            got.contains(expected),
            "{path}: expected {expected:?} in {got:?}"
        );
    }
}

#[test]
fn scheduler_string_detail_and_rule_object_detail_are_both_schedules() {
    for detail in [json!("{}"), json!({})] {
        let event = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.scheduler",
            "account": "123456789012", "time": "2026-11-20T03:00:00Z", "region": "eu-west-1", "resources": [], "detail": detail});
        assert_eq!(ProbeRequest::parse(&event), Ok(ProbeRequest));
        assert_eq!(
            LifecycleRequest::parse(&event),
            Ok(LifecycleRequest::Reconcile)
        );
    }
}

#[test]
fn malformed_and_misdirected_events_say_what_is_wrong() {
    let launch = sample("node-lifecycle/launch.json");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "health-probe",
            launch.clone(),
            "EC2 Instance-launch Lifecycle Action",
        ),
        (
            "health-probe",
            json!({"action": "reconcile"}),
            "keys [action]",
        ),
        (
            "node-lifecycle",
            json!({"action": "recon"}),
            "\"recon\" is not an action",
        ),
        ("node-lifecycle", json!({"hello": 1}), "keys [hello]"),
        ("node-lifecycle", json!([1, 2]), "a JSON array"),
        ("snapshot-restore", json!({}), "an empty object"),
        (
            "snapshot-restore",
            json!({"snapshot": "newest"}),
            "snapshot is not one of",
        ),
        (
            "snapshot-restore",
            json!({"snapshot": {"as_of": "yesterday"}}),
            "snapshot.as_of \"yesterday\" is not an RFC 3339 time",
        ),
        (
            "snapshot-restore",
            json!({"snapshot": {"as_of": "2999-01-01T00:00:00Z"}}),
            "is in the future",
        ),
        (
            "snapshot-restore",
            json!({"snapshot": {"as_of": "2026-11-20T03:00:00Z", "key": "k"}}),
            "snapshot.key is not a field of an as_of selector",
        ),
        (
            "snapshot-restore",
            json!({"snapshot": {"key": "k", "version_id": "v", "as": "x"}}),
            "snapshot.as is not a field of an exact selector",
        ),
        (
            "snapshot-restore",
            json!({"snapshot": {"key": "k", "version_id": " "}}),
            "non-empty key and version_id",
        ),
        (
            "snapshot-restore",
            json!({"snapshot": "latest", "froce": true}),
            "froce is not a field of a restore request",
        ),
        (
            "snapshot-restore",
            sample("snapshot-backup/schedule.json"),
            "Scheduled Event",
        ),
        (
            "snapshot-backup",
            json!({"reasn": "x"}),
            "unknown field `reasn`",
        ),
        (
            "credential-rotation",
            json!({"rotate": ["root-token"]}),
            "unknown variant `root-token`",
        ),
        (
            "credential-rotation",
            json!({"rotate": []}),
            "rotate is empty",
        ),
        (
            "dr-failover",
            json!({"action": "explode"}),
            "\"explode\" is not one of plan, failover, failback",
        ),
        (
            "dr-failover",
            json!({"action": "plan", "force": true}),
            "force is not a field",
        ),
        ("dr-failover", json!({"Records": []}), "holds 0 records"),
        (
            "dr-failover",
            json!({"Records": [{"Sns": {"Message": "not json"}}]}),
            "not JSON",
        ),
        (
            "dr-failover",
            json!({"alarmData": {"alarmName": "a", "state": {"value": "RED"}}}),
            "\"RED\" is not an alarm state",
        ),
    ];
    for (function, value, expected) in cases {
        let err = parse(function, &value).expect_err(expected).to_string();
        assert!(
            err.contains(expected),
            "{function}: expected {expected:?} in {err:?}"
        );
        assert!(
            err.starts_with(function),
            "{function}: error does not name the function: {err:?}"
        );
    }
    let mut bad_launch = launch;
    bad_launch["detail"]["LifecycleTransition"] = json!("autoscaling:EC2_INSTANCE_TERMINATING");
    let err = LifecycleRequest::parse(&bad_launch)
        .expect_err("mismatched transition")
        .to_string();
    assert!(
        err.contains("does not match the event's detail-type"),
        "{err}"
    );
    bad_launch["detail"]
        .as_object_mut()
        .expect("object")
        .remove("LifecycleActionToken");
    bad_launch["detail"]["LifecycleTransition"] = json!("autoscaling:EC2_INSTANCE_LAUNCHING");
    let err = LifecycleRequest::parse(&bad_launch)
        .expect_err("no token")
        .to_string();
    assert!(
        err.contains("detail.LifecycleActionToken is missing"),
        "{err}"
    );
}

#[test]
fn warm_pool_samples_say_where_the_instance_comes_from_and_goes() {
    let cases = [
        (
            "launch.json",
            Transition::Launching,
            Place::Ec2,
            Place::AutoScalingGroup,
        ),
        (
            "terminate.json",
            Transition::Terminating,
            Place::AutoScalingGroup,
            Place::Ec2,
        ),
        (
            "launch-into-warm-pool.json",
            Transition::Launching,
            Place::Ec2,
            Place::WarmPool,
        ),
        (
            "launch-from-warm-pool.json",
            Transition::Launching,
            Place::WarmPool,
            Place::AutoScalingGroup,
        ),
        (
            "terminate-into-warm-pool.json",
            Transition::Terminating,
            Place::AutoScalingGroup,
            Place::WarmPool,
        ),
    ];
    for (file, transition, origin, destination) in cases {
        let value = sample(&format!("node-lifecycle/{file}"));
        let Ok(LifecycleRequest::Action(action)) = LifecycleRequest::parse(&value) else {
            panic!("{file} is not a lifecycle action");
        };
        assert_eq!(
            (action.transition, action.origin, action.destination),
            (transition, origin, destination),
            "{file}"
        );
        assert_eq!(
            action.into_warm_pool(),
            file == "launch-into-warm-pool.json",
            "{file}"
        );
    }
    // Without the fields (a group without a warm pool): EC2 to the group, and back.
    let mut plain = sample("node-lifecycle/launch.json");
    let detail = plain["detail"].as_object_mut().expect("object");
    detail.remove("Origin");
    detail.remove("Destination");
    let Ok(LifecycleRequest::Action(action)) = LifecycleRequest::parse(&plain) else {
        panic!("a launch without Origin and Destination");
    };
    assert_eq!(
        (action.origin, action.destination),
        (Place::Ec2, Place::AutoScalingGroup)
    );
    // A place Auto Scaling never sends is refused.
    let mut odd = sample("node-lifecycle/launch.json");
    odd["detail"]["Destination"] = json!("Standby");
    let err = LifecycleRequest::parse(&odd)
        .expect_err("odd place")
        .to_string();
    assert!(
        err.contains("detail.Destination is \"Standby\"; Auto Scaling sends EC2, AutoScalingGroup or WarmPool"),
        "{err}"
    );
}

#[test]
fn an_sns_delivery_of_two_alarm_notifications_gives_both_in_order() {
    let one = sample("dr-failover/sns-metric.json");
    let record = one["Records"][0].clone();
    let mut second = record.clone();
    let mut message: Value =
        serde_json::from_str(second["Sns"]["Message"].as_str().expect("message")).expect("json");
    message["NewStateValue"] = json!("OK");
    message["OldStateValue"] = json!("ALARM");
    second["Sns"]["Message"] = json!(message.to_string());
    let both = json!({"Records": [record, second]});
    let Ok(FailoverRequest::Alarms(notices)) = FailoverRequest::parse(&both) else {
        panic!("{:?}", FailoverRequest::parse(&both));
    };
    let states: Vec<AlarmState> = notices.iter().map(|n| n.state).collect();
    assert_eq!(states, [AlarmState::Alarm, AlarmState::Ok]);
    assert!(notices.iter().all(|n| n.delivery == AlarmDelivery::Sns));
    // A bad second record is named by its place.
    let mut bad = both.clone();
    bad["Records"][1]["Sns"]["Message"] = json!("{}");
    let err = FailoverRequest::parse(&bad)
        .expect_err("no alarm name")
        .to_string();
    assert!(
        err.contains("Records[1].Sns.Message.AlarmName is missing"),
        "{err}"
    );
}
