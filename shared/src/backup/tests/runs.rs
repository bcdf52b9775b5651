//! Runs that take no new snapshot: the lock held, a redelivered request, a DR copy an
//! earlier run missed, retention.

use super::*;
use crate::testing::{capture_logs, failover_through};

#[tokio::test]
async fn a_held_lock_is_answered_busy_and_nothing_is_taken() {
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    bed.locks
        .claim(BACKUP_LOCK, "restore r-1", Duration::from_secs(60))
        .await
        .expect("claim");
    let outcome = bed
        .function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect("an outcome");
    assert!(
        matches!(&outcome, BackupOutcome::Busy { owner, .. } if owner == "restore r-1"),
        "{outcome:?}"
    );
    assert!(bed.s3.versions(PRIMARY).is_empty());
    assert!(bed.entries().is_empty());
    assert_eq!(bed.cluster().calls("GET"), 0, "no snapshot was asked for");
    let held = bed.locks.held.lock().expect("lock").clone();
    assert_eq!(
        held.get(BACKUP_LOCK).map(|(owner, _)| owner.as_str()),
        Some("restore r-1"),
        "the holder keeps its lock"
    );
}

#[tokio::test]
async fn a_redelivered_tick_stores_nothing_new_and_makes_the_missing_dr_copy() {
    let logs = capture_logs();
    let bed = Bed::without_members();
    let entry = bed.catalogued(1);
    bed.delivered("tick-1", &entry).await;
    let outcome = bed
        .function
        .handle(&tick("tick-1"), "req-2", deadline())
        .await
        .expect("an outcome");
    let BackupOutcome::BackedUp(report) = outcome else {
        panic!("expected a backup, got {outcome:?}");
    };
    assert!(report.redelivered);
    assert_eq!(report.snapshot.object, entry.object);
    assert_eq!(bed.s3.versions(PRIMARY).len(), 1, "no second snapshot");
    let copy = report.snapshot.dr_copy.clone().expect("a DR copy");
    assert_eq!(report.dr_copies, vec![copy.clone()]);
    let version = copy.version_id.clone().expect("version");
    assert_eq!(
        bed.s3.get(DR, &copy.key, &version),
        bed.s3.get(
            PRIMARY,
            &entry.object.key,
            entry.object.version_id.as_deref().expect("v")
        )
    );
    let tags = bed.s3.tags.lock().expect("lock");
    assert_eq!(
        tags.get(&(DR.to_owned(), copy.key.clone(), version))
            .and_then(|t| t.get("sha256")),
        Some(&entry.sha256)
    );
    assert_eq!(bed.entries()[0].dr_copy, Some(copy));
    let logged = logs.contents();
    assert!(logged.contains("DR copy made and checked"));
    assert!(!logged.contains(SECRET_ID) && !logged.contains(ROLE_ID));
}

#[tokio::test]
async fn a_dr_copy_that_fails_its_check_is_left_untagged_and_uncatalogued_and_reported() {
    let bed = Bed::without_members().corrupting_dr_copies();
    let entry = bed.catalogued(1);
    bed.delivered("tick-1", &entry).await;
    let err = bed
        .function
        .handle(&tick("tick-1"), "req-2", deadline())
        .await
        .expect_err("the copy is bad");
    assert_eq!(err.error_type, "Transient.DrCopyFailed", "{}", err.message);
    assert!(err.message.contains(&entry.object.key), "{}", err.message);
    assert!(err.message.contains("truncated"), "{}", err.message);
    // Nothing is deleted in the DR bucket (its own retention does that), and the bad
    // copy carries no checksum tag: nothing takes it for a good one.
    let copies = bed.s3.versions(DR);
    assert_eq!(copies.len(), 1, "{copies:?}");
    let (key, version) = copies[0].clone();
    let tags = bed
        .s3
        .tags
        .lock()
        .expect("lock")
        .get(&(DR.to_owned(), key, version))
        .cloned();
    assert!(tags.is_none_or(|t| !t.contains_key("sha256")), "untagged");
    assert_eq!(bed.s3.versions(PRIMARY).len(), 1, "the snapshot stays");
    assert_eq!(bed.entries()[0].dr_copy, None);
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(1.0));
    assert_eq!(bed.metrics.value("DrCopyFailed", None), Some(1.0));
}

#[tokio::test]
async fn retention_deletes_exact_versions_and_their_entries_and_copies_only_the_kept() {
    let mut bed = Bed::without_members();
    let entries: Vec<_> = (0..30).map(|h| bed.catalogued(h)).collect();
    bed.delivered("tick-1", &entries[0]).await;
    bed.function.settings.retention = RetentionPolicy {
        last: 3,
        daily: 0,
        weekly: 0,
        monthly: 0,
    };
    let outcome = bed
        .function
        .handle(&tick("tick-1"), "req-2", deadline())
        .await
        .expect("an outcome");
    let BackupOutcome::BackedUp(report) = outcome else {
        panic!("expected a backup, got {outcome:?}");
    };
    assert_eq!(report.retention.kept, 3);
    assert_eq!(report.retention.deleted.len(), 27);
    let mut expected: Vec<_> = entries[..3]
        .iter()
        .map(|e| {
            (
                e.object.key.clone(),
                e.object.version_id.clone().expect("v"),
            )
        })
        .collect();
    expected.sort();
    let mut left = bed.s3.versions(PRIMARY);
    left.sort();
    assert_eq!(left, expected);
    assert_eq!(bed.s3.versions(DR).len(), 3, "only the kept are copied");
    assert_eq!(bed.entries().len(), 3);
}

#[tokio::test]
async fn a_backlog_of_dr_copies_is_worked_off_a_few_per_run_newest_first() {
    let mut bed = Bed::without_members();
    bed.function.settings.dr_copies_per_run = 3;
    let entries: Vec<_> = (1..=7).map(|h| bed.catalogued(h)).collect();
    bed.delivered("tick-1", &entries[0]).await;
    let report = bed.backed_up(&tick("tick-1"), "req-1").await;
    let copied: Vec<&str> = report.dr_copies.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(
        copied,
        [
            "vault-lifecycle/prod/old-1.snap",
            "vault-lifecycle/prod/old-2.snap",
            "vault-lifecycle/prod/old-3.snap"
        ],
        "the newest three"
    );
    assert_eq!(report.dr_copies_waiting, 4);
    // The run's success was published, whatever the DR copies did.
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(1.0));
    // The next run copies the next three.
    bed.delivered("tick-2", &entries[0]).await;
    let report = bed.backed_up(&tick("tick-2"), "req-2").await;
    assert_eq!(report.dr_copies.len(), 3);
    assert_eq!(report.dr_copies_waiting, 1);
    assert_eq!(bed.s3.versions(DR).len(), 6);
}

#[tokio::test]
async fn each_dr_copy_gets_a_catalog_entry_of_its_own_in_the_dr_region() {
    let bed = Bed::without_members();
    let entry = bed.catalogued(1);
    bed.delivered("tick-1", &entry).await;
    let report = bed.backed_up(&tick("tick-1"), "req-1").await;
    let copy = report.snapshot.dr_copy.clone().expect("a DR copy");
    let in_dr = bed
        .dr_catalog
        .entries(&"prod".parse().expect("name"))
        .await
        .expect("entries");
    // The same snapshot (checksum, size, index, cluster), located at its copy: what
    // snapshot-restore in the DR region lists and checks with the primary region gone.
    assert_eq!(
        in_dr,
        [CatalogEntry {
            object: copy,
            dr_copy: None,
            ..report.snapshot.clone()
        }]
    );
}

#[tokio::test]
async fn each_entry_records_the_share_and_database_generations_in_force() {
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    let first = bed.backed_up(&tick("tick-1"), "req-1").await;
    assert_eq!(
        first.snapshot.share_generation,
        Some(1),
        "no rotation yet: the shares init made"
    );
    assert_eq!(first.snapshot.database_generation, Some(1));
    // A rotation marked generation 2 in force (only whether the mark exists is read).
    bed.function
        .login
        .parameters()
        .values
        .lock()
        .expect("values")
        .extend([
            (
                "/vault-lifecycle/prod/unseal/gen-2/in-force".into(),
                "2026-12-01T02:00:00Z".into(),
            ),
            (
                "/vault-lifecycle/prod/database-root/generation".into(),
                "4".into(),
            ),
        ]);
    let second = bed.backed_up(&tick("tick-2"), "req-2").await;
    assert_eq!(second.snapshot.share_generation, Some(2));
    assert_eq!(second.snapshot.database_generation, Some(4));
    assert_eq!(
        bed.entries()
            .iter()
            .map(|e| e.share_generation)
            .collect::<Vec<_>>(),
        [Some(1), Some(2)],
        "as the catalog keeps them"
    );
}

#[tokio::test]
async fn each_snapshot_carries_a_canary_of_its_own_written_just_before_it() {
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    let first = bed.backed_up(&tick("tick-1"), "req-1").await;
    let canary = first.snapshot.canary.clone().expect("a canary");
    assert_eq!(bed.cluster().state().canary.as_ref(), Some(&canary));
    let second = bed.backed_up(&tick("tick-2"), "req-2").await;
    let next = second.snapshot.canary.clone().expect("a canary");
    assert_ne!(canary, next, "each snapshot its own");
    assert_eq!(
        bed.entries()
            .iter()
            .map(|e| e.canary.clone())
            .collect::<Vec<_>>(),
        [Some(canary), Some(next)],
        "as the catalog keeps them"
    );
}

#[tokio::test]
async fn a_cluster_without_the_canary_mount_is_backed_up_without_a_canary() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    cluster.state().canary_mount = false;
    let bed = Bed::over(cluster, &["i-1"]);
    let report = bed.backed_up(&tick("tick-1"), "req-1").await;
    assert_eq!(report.snapshot.canary, None);
    assert_eq!(bed.entries().len(), 1, "the snapshot taken all the same");
}

#[tokio::test]
async fn a_cluster_the_dr_region_fenced_takes_no_snapshot_until_the_failback() {
    use crate::failover::record::{FailoverRecords, Phase};
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    let (confirmed, verified) = (
        failover_through(Phase::Confirmed),
        failover_through(Phase::Verified),
    );
    // Confirmed only: the primary is not fenced yet.
    bed.fence.put(&confirmed).await.expect("put");
    bed.backed_up(&tick("tick-1"), "req-1").await;
    let before = bed.entries().len();
    bed.fence.put(&verified).await.expect("put");
    let outcome = bed
        .function
        .handle(&tick("tick-2"), "req-2", deadline())
        .await
        .expect("an answer, not an error");
    let BackupOutcome::Fenced(fence) = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(fence.last_phase, "verified");
    assert_eq!(bed.entries().len(), before, "no snapshot taken");
    // The failback archived the record: backups again.
    let record = bed.fence.current().await.expect("read").expect("kept");
    bed.fence.archive(&record).await.expect("archived");
    bed.backed_up(&tick("tick-3"), "req-3").await;
    assert_eq!(bed.entries().len(), before + 1);
}
