//! The canary each snapshot carries is what tells that a cluster holds that very
//! snapshot after a restore; a snapshot without one is checked by cluster id and Raft
//! index, and is never taken for already restored.

use super::*;
use crate::failover::record::FailbackPhase;

fn detail(record: &FailoverRecord, phase: Phase) -> String {
    record
        .phases
        .iter()
        .find(|p| p.phase == phase)
        .map(|p| p.detail.clone())
        .unwrap_or_else(|| panic!("no {phase:?} in {record:?}"))
}

async fn failed_over(bed: &Bed) -> FailoverRecord {
    match bed.send(alarm(ALARM, "ALARM")).await.expect("failed over") {
        FailoverOutcome::FailedOver(record) => record,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_failover_checks_that_the_standby_holds_the_snapshots_canary() {
    let bed = Bed::down();
    let record = failed_over(&bed).await;
    assert_eq!(record.snapshot_canary, Some(canary_of(1)));
    let verified = detail(&record, Phase::Verified);
    assert!(verified.contains(&canary_of(1)), "{verified}");
    assert_eq!(bed.standby.state().canary, Some(canary_of(1)));
}

#[tokio::test(start_paused = true)]
async fn a_restore_that_brings_another_canary_is_not_verified_and_the_primary_is_unfenced() {
    let bed = Bed::down();
    bed.restores
        .canaries
        .lock()
        .expect("lock")
        .insert(dr_copy(1, 60).object.key, "another-snapshot".into());
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("not verified");
    assert_eq!(error.error_type, "Transient.FailoverPhaseFailed");
    assert!(
        error.message.contains("another-snapshot") && error.message.contains(&canary_of(1)),
        "{}",
        error.message
    );
    let failed = bed.record().expect("recorded").failed.expect("the failure");
    assert_eq!((failed.phase, failed.unfenced), (Phase::Verified, true));
    assert_eq!(
        bed.primary_group.now().desired,
        3,
        "the primary has its size back"
    );
    assert!(!bed.dns_points_at_dr(), "clients left with the primary");
}

#[tokio::test(start_paused = true)]
async fn a_standby_holding_an_older_drilled_snapshot_past_the_newer_ones_index_is_restored() {
    let bed = Bed::down();
    let FailoverOutcome::Drilled(report) =
        bed.send(json!({"action": "drill"})).await.expect("drill")
    else {
        panic!("a drill");
    };
    assert!(report.passed, "{report:?}");
    // A backup after the drill, at an index the standby (its logins since) has passed.
    let newer = dr_copy(0, 70);
    crate::snapshots::catalog::Catalog::put(&bed.catalog, &newer)
        .await
        .expect("put");
    assert!(bed.standby.state().applied_index.unwrap_or(100) > newer.index);

    let record = failed_over(&bed).await;
    assert_eq!(record.snapshot, newer.object);
    assert_eq!(
        bed.restored(),
        [dr_copy(1, 60).object, newer.object],
        "the drilled snapshot, then the newer one: not taken for already restored"
    );
    let restored = detail(&record, Phase::Restored);
    assert!(!restored.starts_with("already"), "{restored}");
    assert_eq!(bed.standby.state().canary, Some(canary_of(0)));
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_without_a_canary_is_checked_by_index_and_restored_again_after_a_cut_off() {
    let bed = Bed::down();
    for entry in bed.catalog.entries.lock().expect("lock").iter_mut() {
        entry.canary = None;
    }
    let record = failed_over(&bed).await;
    let verified = detail(&record, Phase::Verified);
    assert!(verified.contains("carries no canary"), "{verified}");
    // Cut off right after the restore, before recording it: restored again.
    let mut cut = record;
    cut.phases.truncate(3);
    *bed.records.record.lock().expect("lock") = Some(cut);
    failed_over(&bed).await;
    assert_eq!(bed.restored().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_drill_that_finds_another_canary_marks_the_copy_failed() {
    let bed = Bed::down();
    bed.restores
        .canaries
        .lock()
        .expect("lock")
        .insert(dr_copy(1, 60).object.key, "stale-data".into());
    let FailoverOutcome::Drilled(report) =
        bed.send(json!({"action": "drill"})).await.expect("drill")
    else {
        panic!("a drill");
    };
    assert!(!report.passed);
    assert!(report.detail.contains("stale-data"), "{}", report.detail);
    let entries = bed.catalog.entries.lock().expect("lock").clone();
    let drilled = entries
        .iter()
        .find(|e| e.object == report.snapshot)
        .expect("catalogued");
    assert!(drilled.drill_failed());
}

#[tokio::test(start_paused = true)]
async fn a_failback_restores_into_a_primary_whose_own_index_is_past_the_dr_snapshots() {
    let bed = Bed::down();
    failed_over(&bed).await;
    {
        // The primary is back with its own data: its last writes before the outage put
        // its index past the DR cluster's snapshot.
        let mut primary = bed.standby.state();
        primary.canary = Some("primary-before-the-outage".into());
        primary.applied_index = Some(10_000);
    }
    let record = bed.failed_back().await;
    assert_eq!(
        *bed.primary_restores.restored.lock().expect("lock"),
        std::slice::from_ref(&bed.backups.entry.object),
        "restored, not taken for held"
    );
    let failback = record.failback.expect("its progress");
    let verified = failback
        .phases
        .iter()
        .find(|p| p.phase == FailbackPhase::PrimaryVerified)
        .expect("verified");
    assert!(
        verified.detail.contains(&canary_of(0)),
        "{}",
        verified.detail
    );
}
