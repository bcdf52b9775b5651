//! Each selector chooses its snapshot, and a restore puts exactly that one in force.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_dry_run_of_latest_names_the_newest_snapshot_checked_and_changes_nothing() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let (newest, bytes) = &snapshots[2];
    let before = bed.state();
    let outcome = bed
        .restore(json!({"snapshot": "latest", "dry_run": true}))
        .await
        .expect("an outcome");
    let RestoreOutcome::WouldRestore(plan) = outcome else {
        panic!("expected a plan, got {outcome:?}");
    };
    assert_eq!(plan.snapshot, newest.object);
    assert_eq!(plan.entry.as_ref(), Some(newest));
    assert!(!plan.other_cluster);
    assert_eq!(plan.source_cluster, "prod");
    assert_eq!(
        plan.checked,
        Checked {
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
            index: 30,
            term: 2,
        }
    );
    bed.unchanged_since(&before);
}

#[tokio::test(start_paused = true)]
async fn as_of_restores_the_newest_snapshot_taken_at_or_before_that_time() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let (middle, middle_bytes) = &snapshots[1];
    // Between the middle snapshot (20 h ago) and the newest (10 h ago).
    let as_of = middle.taken_at + chrono::Duration::hours(1);
    let report = restored(
        bed.restore(json!({"snapshot": {"as_of": as_of.to_rfc3339()}}))
            .await,
    );
    assert_eq!(report.plan.snapshot, middle.object);
    assert_eq!(report.plan.checked.index, 20);
    assert_eq!(&bed.cluster().state().data, middle_bytes);

    // A snapshot taken exactly at the time asked for is in force at that time.
    let (oldest, _) = &snapshots[0];
    let outcome = bed
        .restore(json!({"snapshot": {"as_of": oldest.taken_at.to_rfc3339()}, "dry_run": true}))
        .await
        .expect("an outcome");
    assert!(
        matches!(&outcome, RestoreOutcome::WouldRestore(plan) if plan.snapshot == oldest.object),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_exact_key_and_version_restores_that_version_and_not_the_keys_newest() {
    let bed = Bed::healthy();
    let older = good_snapshot(40, 2000);
    let newer = good_snapshot(50, 2000);
    let first = bed.catalogued(("prod", "c-1"), &older, 40, 5);
    // A second version of the same key, catalogued too.
    let second = bed.put(&first.object.key, &newer);
    let mut entry = first.clone();
    entry.object = second.clone();
    entry.sha256 = sha256_hex(&newer);
    entry.index = 50;
    entry.taken_at = Utc::now() - chrono::Duration::hours(1);
    bed.catalog.put(&entry).await.expect("put");

    let report = restored(bed.restore(json!({"snapshot": exact(&first.object)})).await);
    assert_eq!(report.plan.snapshot, first.object);
    assert_eq!(report.plan.entry.as_ref(), Some(&first));
    assert_eq!(report.plan.checked.index, 40);
    assert_eq!(bed.cluster().state().data, older);
    assert_eq!(bed.cluster().state().restores, vec![(older, false)]);
}

#[tokio::test(start_paused = true)]
async fn an_uncatalogued_version_is_restored_with_force_on_the_archive_check_alone() {
    let bed = Bed::healthy();
    // A snapshot of this cluster saved by hand: its keys are the cluster's own.
    let saved = good_snapshot(60, 2000);
    let location = bed.put("vault-lifecycle/prod/saved-by-hand.snap", &saved);
    bed.store_shares("prod", &bed.cluster().state().shares.clone());
    let report = restored(
        bed.restore(json!({"snapshot": exact(&location), "force": true, "reason": "drill"}))
            .await,
    );
    assert_eq!(report.plan.snapshot, location);
    assert_eq!(report.plan.entry, None);
    assert!(report.plan.other_cluster);
    assert_eq!(report.plan.checked.sha256, sha256_hex(&saved));
    let cluster = bed.cluster().state();
    assert_eq!(cluster.data, saved);
    assert_eq!(
        cluster.restores,
        vec![(saved.clone(), true)],
        "sent with force"
    );
    assert!(cluster.nodes.values().all(|n| !n.sealed), "its own keys");
    drop(cluster);
    assert!(report.unsealed.is_empty(), "{:?}", report.unsealed);
    let records = bed.catalog.restores.lock().expect("lock").clone();
    assert_eq!(records.len(), 1);
    assert!(records[0].1.forced);
    assert_eq!(records[0].1.reason.as_deref(), Some("drill"));
}

#[tokio::test(start_paused = true)]
async fn latest_and_as_of_skip_a_safety_snapshot_unless_asked() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    // The newest entry is a safety snapshot, taken before an earlier restore.
    let mut safety = snapshots[2].0.clone();
    safety.kind = BackupKind::PreRestore;
    futures::executor::block_on(bed.catalog.put(&safety)).expect("put");
    let chosen = |request: Value| {
        let bed = &bed;
        async move {
            match bed.restore(request).await.expect("an outcome") {
                RestoreOutcome::WouldRestore(plan) => plan.snapshot,
                other => panic!("expected a plan, got {other:?}"),
            }
        }
    };
    let now = Utc::now().to_rfc3339();
    assert_eq!(
        chosen(json!({"snapshot": "latest", "dry_run": true})).await,
        snapshots[1].0.object,
        "latest is the newest backup"
    );
    assert_eq!(
        chosen(json!({"snapshot": {"as_of": now}, "dry_run": true})).await,
        snapshots[1].0.object
    );
    assert_eq!(
        chosen(json!({"snapshot": "latest", "dry_run": true, "include_pre_restore": true})).await,
        safety.object,
        "asked for, the safety snapshot is chosen"
    );
}
