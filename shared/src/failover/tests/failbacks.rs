//! Failbacks: after a completed failover, the DR cluster's snapshot restored into the
//! primary, DNS pointed back, both groups given their sizes back, the record archived so
//! the next alarm fails over again; refusals that change nothing.

use std::sync::atomic::Ordering;

use super::*;
use crate::failover::record::FailbackPhase;

/// `request` stops at primary-serving, retryably, its message holding `why`.
async fn waits_at_primary_serving(bed: &Bed, request: Value, why: &str) {
    let error = bed.send(request).await.expect_err("waits");
    assert_eq!(error.error_type, "Transient.FailbackPhaseFailed");
    assert!(
        error.message.contains("PrimaryServing") && error.message.contains(why),
        "{}",
        error.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_failback_returns_to_the_primary_and_the_next_alarm_may_fail_over_again() {
    let bed = Bed::down();
    bed.standby_group.capacity.lock().expect("lock").desired = 0;
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    assert_eq!(bed.standby_group.now().desired, 3);
    assert!(bed.dns_points_at_dr());

    let record = bed.failed_back().await;
    let failback = record.failback.expect("its progress");
    assert_eq!(
        failback.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
        FailbackPhase::ALL
    );
    assert_eq!(bed.backups.requests.lock().expect("lock").len(), 1);
    assert_eq!(
        *bed.primary_restores.restored.lock().expect("lock"),
        std::slice::from_ref(&bed.backups.entry.object),
        "the DR cluster's snapshot restored into the primary"
    );
    assert_eq!(
        bed.dns.record.lock().expect("lock").as_ref(),
        Some(&primary_target())
    );
    assert_eq!(
        (bed.primary_group.now().min, bed.primary_group.now().desired),
        (3, 3),
        "the primary's group has its size back"
    );
    assert_eq!(
        bed.standby_group.now().desired,
        0,
        "a pilot light again: its next raise is rebuilt"
    );
    assert_eq!(bed.record(), None, "archived");
    assert_eq!(bed.records.history.lock().expect("lock").len(), 1);
    assert_eq!(
        bed.notifier.sent().len(),
        2,
        "told of the failover and the failback"
    );

    // A later outage fails over again: the archived record does not stop it.
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    assert!(
        matches!(outcome, FailoverOutcome::FailedOver(_)),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failback_without_a_completed_failover_or_a_serving_primary_changes_nothing() {
    let mut bed = Bed::down();
    let error = bed
        .send(json!({"action": "failback"}))
        .await
        .expect_err("nothing to return from");
    assert_eq!(error.error_type, "Permanent.NoFailoverToReturnFrom");

    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    // Its one node does not answer (the fake cluster knows no such node).
    bed.failover.primary_fleet = Box::new(FakeFleet::of(&bed.standby, &["i-gone"]));
    let error = bed
        .send(json!({"action": "failback"}))
        .await
        .expect_err("no primary node answers");
    assert_eq!(error.error_type, "Transient.PrimaryNotServing");
    assert!(
        error.message.contains("\"rebuild\": true"),
        "{}",
        error.message
    );
    assert!(bed.dns_points_at_dr(), "nothing changed");
    assert_eq!(bed.primary_group.now().desired, 0, "still fenced");
    assert!(bed.backups.requests.lock().expect("lock").is_empty());
    assert!(bed.record().expect("kept").failback.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_failback_into_a_primary_the_fence_emptied_rebuilds_its_cluster_in_one_new_node() {
    let mut bed = Bed::down();
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    assert_eq!(bed.primary_group.now().desired, 0, "the fence emptied it");
    bed.failover.primary_fleet = Box::new(FakeFleet::of(&bed.standby, &[]));
    waits_at_primary_serving(&bed, json!({"action": "failback"}), "one node").await;
    assert_eq!(
        (bed.primary_group.now().min, bed.primary_group.now().desired),
        (1, 1),
        "one node asked for, to rebuild the cluster in"
    );
    assert!(
        bed.record()
            .expect("kept")
            .failback
            .expect("recorded")
            .rebuild
    );
    assert!(bed.dns_points_at_dr(), "the DR cluster serves meanwhile");
    assert!(bed
        .primary_restores
        .restored
        .lock()
        .expect("lock")
        .is_empty());

    // Asked again once the new node is in service (the fake's one cluster plays it).
    bed.failover.primary_fleet = Box::new(FakeFleet::of(&bed.standby, &["d-1"]));
    let record = bed.failed_back().await;
    let failback = record.failback.expect("its progress");
    let detail = |phase: FailbackPhase| failback.detail(phase).unwrap_or_default().to_owned();
    assert!(
        detail(FailbackPhase::RestoredIntoPrimary).contains("a new node of the emptied primary"),
        "{}",
        detail(FailbackPhase::RestoredIntoPrimary)
    );
    assert_eq!(
        *bed.primary_restores.restored.lock().expect("lock"),
        std::slice::from_ref(&bed.backups.entry.object),
        "the DR cluster's snapshot rebuilt the primary"
    );
    assert_eq!(
        (bed.primary_group.now().min, bed.primary_group.now().desired),
        (3, 3),
        "the others join the rebuilt node once the group has its size back"
    );
    assert!(!bed.dns_points_at_dr());
    assert_eq!(bed.record(), None, "archived");
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_lost_its_nodes_in_an_outage_is_rebuilt_when_the_operator_says_so() {
    let mut bed = Bed::down();
    // The primary region's Auto Scaling API does not answer: the fence is only recorded.
    bed.primary_group.fail_next.store(true, Ordering::SeqCst);
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    assert!(bed.record().expect("kept").primary_group_was.is_none());
    // The region is back without the primary's nodes.
    bed.failover.primary_fleet = Box::new(FakeFleet::of(&bed.standby, &[]));
    let error = bed
        .send(json!({"action": "failback"}))
        .await
        .expect_err("not without the operator's word");
    assert_eq!(error.error_type, "Transient.PrimaryNotServing");
    assert!(
        bed.record().expect("kept").failback.is_none(),
        "nothing recorded"
    );
    let error = bed
        .send(json!({"action": "failback", "rebuild": "yes"}))
        .await
        .expect_err("not a flag");
    assert_eq!(error.error_type, "Permanent.InvalidEvent");

    waits_at_primary_serving(
        &bed,
        json!({"action": "failback", "rebuild": true}),
        "one node",
    )
    .await;
    let record = bed.record().expect("kept");
    assert!(record.failback.expect("recorded").rebuild);
    assert_eq!(
        record.primary_group_was.map(|c| (c.min, c.desired)),
        Some((3, 3)),
        "its size now, given back once rebuilt"
    );
    assert_eq!(
        (bed.primary_group.now().min, bed.primary_group.now().desired),
        (1, 1)
    );
    bed.failover.primary_fleet = Box::new(FakeFleet::of(&bed.standby, &["d-1"]));
    let outcome = bed
        .send(json!({"action": "failback"}))
        .await
        .expect("failed back");
    assert!(
        matches!(outcome, FailoverOutcome::FailedBack(_)),
        "{outcome:?}"
    );
    assert_eq!(
        *bed.primary_restores.restored.lock().expect("lock"),
        std::slice::from_ref(&bed.backups.entry.object)
    );
    assert_eq!(
        (bed.primary_group.now().min, bed.primary_group.now().desired),
        (3, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_failback_cut_off_resumes_without_a_second_snapshot_or_restore() {
    let bed = Bed::down();
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    bed.dns.fail_next.store(true, Ordering::SeqCst);
    let error = bed
        .send(json!({"action": "failback"}))
        .await
        .expect_err("the DNS change fails");
    assert_eq!(error.error_type, "Transient.FailbackPhaseFailed");
    assert!(error.message.contains("SwitchedBack"), "{}", error.message);
    let outcome = bed
        .send(json!({"action": "failback"}))
        .await
        .expect("resumed");
    assert!(
        matches!(outcome, FailoverOutcome::FailedBack(_)),
        "{outcome:?}"
    );
    assert_eq!(bed.backups.requests.lock().expect("lock").len(), 1);
    assert_eq!(bed.primary_restores.restored.lock().expect("lock").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failback_into_a_primary_kept_sealed_by_the_fence_is_recorded_then_resumed() {
    let bed = Bed::down();
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    // The primary region is back, its node sealed: its node-lifecycle leaves a fenced
    // primary sealed until a failback is asked for.
    bed.standby.seal("d-1");
    waits_at_primary_serving(&bed, json!({"action": "failback"}), "reconcile").await;
    // Asked for, and nothing else done: the primary's reconcile reads this and unseals.
    let failback = bed.record().expect("kept").failback.expect("asked for");
    assert!(failback.phases.is_empty(), "{failback:?}");
    assert!(bed.backups.requests.lock().expect("lock").is_empty());
    assert!(bed.dns_points_at_dr());

    bed.standby
        .state()
        .nodes
        .get_mut("d-1")
        .expect("node")
        .sealed = false;
    let outcome = bed
        .send(json!({"action": "failback"}))
        .await
        .expect("resumed");
    assert!(
        matches!(outcome, FailoverOutcome::FailedBack(_)),
        "{outcome:?}"
    );
    assert_eq!(bed.backups.requests.lock().expect("lock").len(), 1);
}
