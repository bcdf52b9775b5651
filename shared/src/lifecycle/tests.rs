//! The handler's decisions that need no node: what it refuses, what it acknowledges, and
//! what a redelivered event does. The steps against real nodes are tested in
//! tests/tests/node_lifecycle.rs.

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::*;
use crate::{
    cluster::auth::VaultLogin,
    config::AuthSettings,
    lifecycle::records::{ActionRecord, ActionStage},
    testing::{
        capture_logs, FakeActions, FakeCluster, FakeFleet, FakeLocks, FakeMetrics, FakeParameters,
        FakeRecords,
    },
};

struct Bed {
    function: NodeLifecycle<FakeCluster, FakeParameters>,
    actions: Arc<FakeActions>,
    records: Arc<FakeRecords>,
    locks: Arc<FakeLocks>,
}

fn bed() -> Bed {
    let (actions, records, locks) = (
        Arc::new(FakeActions::default()),
        Arc::new(FakeRecords::default()),
        Arc::new(FakeLocks::default()),
    );
    let settings = LifecycleSettings {
        cluster: "prod".parse().unwrap_or_else(|e| panic!("{e}")),
        asg: "vault-prod".into(),
        ssm_path: "/vault-lifecycle/prod".into(),
        kms_key: "alias/vault".into(),
        key_shares: 5,
        key_threshold: 3,
        keep_root_token: false,
        approle_mount: "approle".into(),
        leader_ca_pem: None,
        node_api_timeout: Duration::from_secs(1),
        voter_timeout: Duration::from_secs(1),
        replacement_timeout: Duration::from_secs(1),
        departed_peer_grace: Duration::from_secs(300),
        heartbeat_interval: Duration::from_secs(60),
        init_lock_ttl: Duration::from_secs(60),
    };
    let auth = AuthSettings::AppRole {
        mount: "approle".into(),
        role_id_parameter: "/p/role-id".into(),
        secret_id_parameter: "/p/secret-id".into(),
    };
    let vault = FakeCluster::fresh(&["i-1", "i-2", "i-3"]);
    Bed {
        function: NodeLifecycle {
            settings,
            fleet: Box::new(FakeFleet::default()),
            vault,
            parameters: FakeParameters::default(),
            login: VaultLogin::new(auth, FakeParameters::default()),
            locks: Box::new(locks.clone()),
            actions: Box::new(actions.clone()),
            records: Box::new(records.clone()),
            metrics: Box::new(FakeMetrics::default()),
        },
        actions,
        records,
        locks,
    }
}

fn launch_event(group: &str) -> Value {
    json!({
        "version": "0", "id": "e-1", "source": "aws.autoscaling", "account": "123456789012",
        "time": "2026-11-23T10:00:00Z", "region": "eu-west-1", "resources": [],
        "detail-type": "EC2 Instance-launch Lifecycle Action",
        "detail": {
            "LifecycleActionToken": "token-5e1f",
            "AutoScalingGroupName": group,
            "LifecycleHookName": "launch",
            "EC2InstanceId": "i-0123456789abcdef0",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"
        }
    })
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

impl Bed {
    fn untouched(&self) -> bool {
        self.actions
            .completed
            .lock()
            .map(|m| m.is_empty())
            .unwrap_or(false)
            && self
                .records
                .actions
                .lock()
                .map(|m| m.is_empty())
                .unwrap_or(false)
            && self
                .locks
                .held
                .lock()
                .map(|m| m.is_empty())
                .unwrap_or(false)
            && self
                .records
                .init
                .lock()
                .map(|m| m.is_none())
                .unwrap_or(false)
    }
}

#[tokio::test]
async fn an_event_of_another_group_is_refused_and_changes_nothing() {
    let bed = bed();
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
}

#[tokio::test]
async fn a_malformed_event_is_refused_and_changes_nothing() {
    let bed = bed();
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
}

#[tokio::test]
async fn the_hooks_test_notification_is_acknowledged() {
    let bed = bed();
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

#[tokio::test]
async fn a_redelivered_event_of_a_completed_action_does_nothing() {
    let logs = capture_logs();
    let bed = bed();
    bed.records
        .put_action(
            "token-5e1f",
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
    assert!(bed
        .actions
        .completed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty());
    assert!(bed
        .locks
        .held
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty());
    let logged = logs.contents();
    assert!(logged.contains("already completed"), "{logged}");
}
