//! Restore drills: a proven copy, a failed one never chosen by a failover, a pilot-light
//! group given its 0 back and rebuilt when raised again, and no drill while a failover
//! is recorded.

use std::sync::atomic::Ordering;

use super::*;

async fn drill(bed: &Bed) -> DrillReport {
    match bed.send(json!({"action": "drill"})).await.expect("a drill") {
        FailoverOutcome::Drilled(report) => report,
        other => panic!("{other:?}"),
    }
}

fn entry(bed: &Bed, object: &Location) -> CatalogEntry {
    bed.catalog
        .entries
        .lock()
        .expect("lock")
        .iter()
        .find(|e| e.object == *object)
        .cloned()
        .expect("catalogued")
}

#[tokio::test(start_paused = true)]
async fn a_drill_proves_the_newest_copy_and_publishes_its_age() {
    let bed = Bed::down();
    let report = drill(&bed).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(report.snapshot, dr_copy(1, 60).object);
    assert_eq!(bed.restored(), [dr_copy(1, 60).object]);
    assert!(entry(&bed, &report.snapshot).drill_proven());
    let age = bed
        .metrics
        .value("LastProvenRestorableAgeSeconds", None)
        .expect("published");
    assert!((3590.0..=3610.0).contains(&age), "{age}");
    assert_eq!(report.last_proven_age_seconds.map(|a| a / 60), Some(60));
    // The plan now says the snapshot it would restore is proven.
    let FailoverOutcome::Planned(plan) = bed.send(json!({"action": "plan"})).await.expect("plan")
    else {
        panic!("a plan");
    };
    assert_eq!(plan.snapshot.map(|s| s.proven), Some(true));
    assert_eq!(bed.record(), None, "a drill is no failover");
    assert_eq!(bed.primary_group.now().desired, 3, "the primary untouched");
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_fails_its_drill_is_marked_and_the_failover_takes_the_one_before() {
    let bed = Bed::down();
    bed.restores.fail_next.store(1, Ordering::SeqCst);
    *bed.restores.fail_as.lock().expect("lock") = "Permanent.ChecksumMismatch".into();
    let report = drill(&bed).await;
    assert!(!report.passed);
    assert!(
        report.detail.contains("ChecksumMismatch"),
        "{}",
        report.detail
    );
    assert!(entry(&bed, &dr_copy(1, 60).object).drill_failed());
    assert_eq!(report.last_proven_age_seconds, None);
    assert_eq!(
        bed.metrics.value("LastProvenRestorableAgeSeconds", None),
        None,
        "nothing proven: nothing published, and the alarm's missing data breaches"
    );
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        record.snapshot,
        dr_copy(5, 40).object,
        "the failed one skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_standby_that_cannot_restore_says_nothing_about_the_snapshot() {
    let bed = Bed::down();
    bed.restores.fail_next.store(1, Ordering::SeqCst);
    let error = bed
        .send(json!({"action": "drill"}))
        .await
        .expect_err("the standby refused");
    assert_eq!(error.error_type, "Transient.FailoverPhaseFailed");
    assert_eq!(
        entry(&bed, &dr_copy(1, 60).object).drill,
        None,
        "not marked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pilot_light_group_gets_its_0_back_after_a_drill_and_no_drill_runs_during_a_failover() {
    let bed = Bed::down();
    bed.standby_group.capacity.lock().expect("lock").desired = 0;
    // The fake standby node answers at once, as a warm one would once booted (and stays
    // once the group is back at 0: the fake's fleet does not follow the group).
    let report = drill(&bed).await;
    assert!(report.passed);
    assert_eq!(
        bed.standby_group.now().desired,
        0,
        "a pilot light again: its next raise is rebuilt"
    );

    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    let outcome = bed
        .send(json!({"action": "drill"}))
        .await
        .expect("an answer");
    assert!(
        matches!(outcome, FailoverOutcome::DrillSkipped { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        bed.restored().len(),
        1,
        "the failover found the standby holding the copy the drill restored"
    );
}

#[tokio::test(start_paused = true)]
async fn with_proof_required_a_failover_restores_only_a_proven_copy() {
    let mut bed = Bed::down();
    bed.failover.settings.require_proven = true;
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("nothing proven yet");
    assert_eq!(error.error_type, "Permanent.NoSnapshot");
    assert_eq!(bed.primary_group.now().desired, 3, "nothing changed");
    // The older copy proven (the newer never drilled): it is the one restored.
    let mut older = dr_copy(5, 40);
    older.drill = Some(DrillResult {
        at: Utc::now(),
        passed: true,
        detail: "proven".into(),
    });
    crate::snapshots::catalog::Catalog::put(&bed.catalog, &older)
        .await
        .expect("put");
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(record.snapshot, older.object);
}

/// A pilot light raised again after its first use has no node of its cluster left: the
/// drill rebuilds the standby's cluster in the new node (left uninitialised by its
/// node-lifecycle), proves the copy, and gives the group its 0 back; a failover after
/// it rebuilds again, recorded as such.
#[tokio::test(start_paused = true)]
async fn a_pilot_light_emptied_after_its_first_use_is_rebuilt_by_the_drill_and_the_failover() {
    let bed = Bed::down();
    bed.standby_group.capacity.lock().expect("lock").desired = 0;
    bed.standby_emptied();
    let report = drill(&bed).await;
    assert!(report.passed, "{report:?}");
    assert_eq!(bed.restores.rebuilds.load(Ordering::SeqCst), 1);
    assert_eq!(bed.standby_group.now().desired, 0);

    bed.standby_emptied();
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(record.standby_rebuild);
    assert_eq!(bed.restores.rebuilds.load(Ordering::SeqCst), 2);
    let detail = |phase: Phase| record.detail(phase).unwrap_or_default().to_owned();
    assert!(
        detail(Phase::StandbyUp).contains("left uninitialised"),
        "{}",
        detail(Phase::StandbyUp)
    );
    assert!(
        detail(Phase::Restored).contains("rebuilt in its new node"),
        "{}",
        detail(Phase::Restored)
    );
    assert!(bed.dns_points_at_dr());
}
