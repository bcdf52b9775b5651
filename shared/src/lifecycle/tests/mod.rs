//! node-lifecycle's state machines on the fakes, with tokio's clock paused: what each run
//! leaves in the cluster (peers, voters, seal state), in SSM, in the state table and in
//! Auto Scaling. One file per state machine, the bed in `bed.rs` and its ports in `ports.rs`; this one holds the
//! handler's decisions that need no node.

mod bed;
mod init;
mod launch;
mod pending;
mod ports;
mod reconcile;
mod terminate;
mod unseal;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use self::bed::*;
use super::*;
use crate::{
    cluster::lifecycle_actions::Verdict,
    lifecycle::records::{ActionRecord, ActionStage, InitStage},
    testing::capture_logs,
};

#[tokio::test(start_paused = true)]
async fn an_event_of_another_group_is_refused_and_changes_nothing() {
    let bed = Bed::fresh(&["i-1"]);
    let err = bed
        .function
        .handle(&launch_event("web-frontend"), soon())
        .await
        .expect_err("another group");
    assert_eq!(err.error_type, "Permanent.OtherGroup");
    assert!(
        err.message
            .contains("serves auto scaling group vault-prod, and the event is for web-frontend"),
        "{}",
        err.message
    );
    assert!(bed.untouched());
    assert!(bed.cluster().state().calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_malformed_event_is_refused_and_changes_nothing() {
    let bed = Bed::fresh(&["i-1"]);
    let mut event = launch_event("vault-prod");
    event["detail"]["EC2InstanceId"] = json!("not-an-instance");
    let err = bed
        .function
        .handle(&event, soon())
        .await
        .expect_err("malformed");
    assert_eq!(err.error_type, "Permanent.InvalidEvent");
    assert!(
        err.message.contains("detail.EC2InstanceId"),
        "{}",
        err.message
    );
    assert!(bed.untouched());
    assert!(bed.cluster().state().calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_hooks_test_notification_is_acknowledged() {
    let bed = Bed::fresh(&["i-1"]);
    let event =
        json!({"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": "vault-prod"});
    let outcome = bed
        .function
        .handle(&event, soon())
        .await
        .expect("acknowledged");
    assert_eq!(
        outcome,
        Outcome::Acknowledged {
            group: "vault-prod".into()
        }
    );
    assert!(bed.untouched());
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_event_of_a_completed_action_does_nothing() {
    let logs = capture_logs();
    let bed = Bed::fresh(&["i-1"]);
    let LifecycleRequest::Action(action) =
        LifecycleRequest::parse(&launch_event("vault-prod")).expect("event")
    else {
        panic!("not an action");
    };
    bed.records
        .put_action(
            &action,
            &ActionRecord {
                instance: "i-0123456789abcdef0".into(),
                transition: Transition::Launching,
                stage: ActionStage::Continued,
            },
        )
        .await
        .expect("record");
    let outcome = bed
        .function
        .handle(&launch_event("vault-prod"), soon())
        .await
        .expect("already completed");
    assert_eq!(
        outcome,
        Outcome::AlreadyCompleted {
            instance: "i-0123456789abcdef0".into(),
            stage: "continued"
        }
    );
    assert_eq!(bed.verdict("token-5e1f"), None);
    assert_eq!(bed.lock_holder(), None);
    assert!(bed.cluster().state().calls.is_empty());
    let logged = logs.contents();
    assert!(logged.contains("already completed"), "{logged}");
}
