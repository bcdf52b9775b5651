//! One delivery of an action at a time, only actions Auto Scaling has pending, and the
//! warm pool: a launch into it touches nothing, a node back from it with stale Raft data
//! is abandoned, a terminate into it removes the peer.

use super::*;

async fn deliver(bed: &Bed, event: serde_json::Value) -> Result<Outcome, LifecycleError> {
    bed.function.run(&event, far()).await
}

#[tokio::test(start_paused = true)]
async fn two_deliveries_of_one_launch_at_once_join_once_and_the_second_finds_it_done() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    let (a, b) = tokio::join!(bed.launch("i-2", "t-2"), bed.launch("i-2", "t-2"));
    let outcomes = [a.expect("first"), b.expect("second")];
    let launched = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Launched(r) if r.joined))
        .count();
    // The second waited for the first's lock, then found the action completed.
    let found_done = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::AlreadyCompleted {
                    stage: "continued",
                    ..
                }
            )
        })
        .count();
    assert_eq!((launched, found_done), (1, 1), "{outcomes:?}");
    assert_eq!(bed.cluster().calls("join i-2"), 1);
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2"]);
    assert_eq!(bed.verdict("t-2"), Some(Verdict::Continue));
    assert!(
        bed.locks.held.lock().map(|h| h.is_empty()).unwrap_or(false),
        "every lock released"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delivery_takes_over_from_a_run_that_died_holding_the_action() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    // A first delivery claimed the action and was cut off: its lock stays until it lapses.
    let key = format!("action/{}/i-2/launch/t-2", bed.function.settings.asg);
    let lapses = bed.locks.now() + Duration::from_secs(40);
    if let Ok(mut held) = bed.locks.held.lock() {
        held.insert(key, ("t-2#dead".into(), lapses));
    }
    let started = Instant::now();
    let outcome = bed.launch("i-2", "t-2").await.expect("taken over");
    let Outcome::Launched(report) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(report.joined && report.completed_now, "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(40),
        "it waited for the dead run's lock to lapse: {:?}",
        started.elapsed()
    );
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_whose_time_runs_out_behind_another_changes_nothing_and_fails_for_a_retry() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    let key = format!("action/{}/i-2/launch/t-2", bed.function.settings.asg);
    let lapses = bed.locks.now() + Duration::from_secs(3600);
    if let Ok(mut held) = bed.locks.held.lock() {
        held.insert(key, ("t-2#other".into(), lapses));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = bed
        .launch_until("i-2", "t-2", deadline)
        .await
        .expect_err("held by another delivery");
    assert!(
        matches!(&err, LifecycleError::ActionInProgress { holder, .. } if holder == "t-2#other"),
        "{err:?}"
    );
    assert!(crate::errors::Classify::retry_helps(&err));
    assert_eq!(bed.cluster().calls("join i-2"), 0);
    assert_eq!(bed.verdict("t-2"), None);
}

#[tokio::test(start_paused = true)]
async fn a_terminate_of_another_instance_with_a_used_token_is_carried_out() {
    let bed = Bed::fresh(&["i-1", "i-2", "i-3", "i-4"]);
    for instance in ["i-1", "i-2", "i-3", "i-4"] {
        bed.launched(instance).await;
    }
    // i-4's terminate comes with the token i-1's launch had.
    bed.fleet.terminating("i-4");
    let outcome = bed.terminate("i-4", "t-i-1").await.expect("terminate");
    let Outcome::Terminated(report) = outcome else {
        panic!("not taken for i-1's launch: {outcome:?}");
    };
    assert!(report.peer_removed, "{report:?}");
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
}

#[tokio::test(start_paused = true)]
async fn a_made_up_terminate_for_an_in_service_voter_is_refused_and_changes_nothing() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let err = bed
        .function
        .handle(
            &action_event(Transition::Terminating, "i-2", "made-up"),
            soon(),
        )
        .await
        .expect_err("not pending");
    assert_eq!(err.error_type, "Permanent.ActionNotPending");
    assert!(
        err.message.contains("i-2") && err.message.contains("is in InService"),
        "{}",
        err.message
    );
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.cluster().calls("remove-peer"), 0);
    assert_eq!(bed.cluster().calls("step-down"), 0);
    assert_eq!(bed.verdict("made-up"), None);
    assert_eq!(bed.records.stage("made-up"), None);
    assert_eq!(bed.heartbeats(), 0);
    // An instance the group does not hold at all is refused the same way.
    let err = bed
        .function
        .handle(&action_event(Transition::Launching, "i-9", "t-9"), soon())
        .await
        .expect_err("unknown instance");
    assert!(
        err.message.contains("not in the group or its warm pool"),
        "{}",
        err.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_launch_into_the_warm_pool_continues_without_touching_the_node() {
    let bed = Bed::fresh(&["i-1"]);
    bed.fleet.warm(bed.cluster(), "i-1", "Warmed:Pending:Wait");
    let event = between(
        action_event(Transition::Launching, "i-1", "t-w"),
        "EC2",
        "WarmPool",
    );
    let outcome = deliver(&bed, event).await.expect("warm pool");
    assert_eq!(
        outcome,
        Outcome::WarmPoolEntered {
            instance: "i-1".into(),
            completed_now: true
        }
    );
    assert!(
        bed.cluster().state().calls.is_empty(),
        "no call to the node"
    );
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(bed.records.init_stage(), None);
    assert_eq!(bed.verdict("t-w"), Some(Verdict::Continue));
    assert_eq!(bed.records.stage("t-w"), Some(ActionStage::Continued));
}

#[tokio::test(start_paused = true)]
async fn a_node_back_from_the_warm_pool_with_stale_raft_data_is_abandoned() {
    let bed = Bed::running(&["i-1", "i-2", "i-3", "i-4"]);
    // Scale-in returns i-4 to the warm pool: its peer goes, its Raft data stays.
    bed.fleet.warm(bed.cluster(), "i-4", "Warmed:Pending:Wait");
    let back = between(
        action_event(Transition::Terminating, "i-4", "t-in"),
        "AutoScalingGroup",
        "WarmPool",
    );
    let Outcome::Terminated(report) = deliver(&bed, back).await.expect("terminate") else {
        panic!("terminate into the warm pool");
    };
    assert!(report.peer_removed, "{report:?}");
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.verdict("t-in"), Some(Verdict::Continue));
    // Scale-out takes it out of the pool again, initialised and no peer.
    bed.fleet.add(bed.cluster(), "i-4");
    bed.fleet.set_state("i-4", "Pending:Wait");
    let out = between(
        action_event(Transition::Launching, "i-4", "t-out"),
        "WarmPool",
        "AutoScalingGroup",
    );
    let outcome = deliver(&bed, out).await.expect("abandoned");
    let Outcome::Abandoned { reason, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        reason.contains("is initialised but is not a raft peer"),
        "{reason}"
    );
    assert_eq!(bed.verdict("t-out"), Some(Verdict::Abandon));
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.cluster().calls("join"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_node_out_of_the_warm_pool_joins_as_any_launch() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().add_node("i-4");
    bed.fleet.add(bed.cluster(), "i-4");
    let out = between(
        action_event(Transition::Launching, "i-4", "t-out"),
        "WarmPool",
        "AutoScalingGroup",
    );
    let Outcome::Launched(report) = deliver(&bed, out).await.expect("launch") else {
        panic!("launched");
    };
    assert!(report.joined && report.completed_now, "{report:?}");
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2", "i-3", "i-4"]);
}

#[tokio::test(start_paused = true)]
async fn reconcile_counts_in_service_instances_that_are_not_peers() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let report = bed.reconcile().await;
    assert!(report.not_peers.is_empty(), "{report:?}");
    assert_eq!(bed.metrics.0.value("InServiceNotPeer", None), Some(0.0));
    bed.cluster().add_node("i-4");
    bed.fleet.add(bed.cluster(), "i-4");
    bed.fleet.set_state("i-4", "InService");
    let report = bed.reconcile().await;
    assert_eq!(
        report.not_peers,
        vec![InstanceId::from("i-4")],
        "{report:?}"
    );
    assert_eq!(bed.metrics.0.value("InServiceNotPeer", None), Some(1.0));
}
