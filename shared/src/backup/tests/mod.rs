//! snapshot-backup's settings and its runs over fakes (no node is reached: each run
//! here is answered before a snapshot would be taken).
use chrono::TimeZone;

use std::time::Duration;

use super::*;
use crate::{
    config::{AuthSettings, Env},
    restore::RestoreConfig,
    snapshots::{retention::RetentionPolicy, take::snapshot_key},
};

const MINIMAL: [(&str, &str); 4] = [
    ("CLUSTER_NAME", "prod"),
    ("ASG_NAME", "vault-prod"),
    ("STATE_TABLE", "state"),
    ("SNAPSHOT_BUCKET", "snapshots"),
];

fn env(extra: &[(&'static str, &'static str)]) -> Env {
    Env::from_pairs(MINIMAL.iter().chain(extra).copied())
}

#[test]
fn defaults_fit_a_standard_cluster() {
    let config = BackupConfig::from(&env(&[]), "snapshot-backup").expect("minimal config");
    assert_eq!(config.backup.prefix, "vault-lifecycle");
    assert_eq!(config.backup.part_size, 8 << 20);
    assert_eq!(config.backup.retention, RetentionPolicy::default());
    assert_eq!(config.backup.lock_ttl, Duration::from_secs(900));
    assert_eq!(config.dr, None);
    assert_eq!(config.kms_key, None);
    assert!(
        matches!(&config.auth, AuthSettings::AppRole { role_id_parameter, .. }
        if role_id_parameter == "/vault-lifecycle/prod/approle/snapshot-backup/role-id")
    );
    let restore = RestoreConfig::from(&env(&[])).expect("minimal config");
    assert_eq!(restore.restore.ssm_prefix, "/vault-lifecycle");
    assert!(
        matches!(&restore.backup.auth, AuthSettings::AppRole { role_id_parameter, .. }
        if role_id_parameter == "/vault-lifecycle/prod/approle/snapshot-restore/role-id")
    );
    let taken = Utc
        .with_ymd_and_hms(2026, 11, 20, 3, 0, 0)
        .single()
        .expect("time");
    assert_eq!(
        snapshot_key(
            &config.backup.prefix,
            &config.backup.cluster,
            &taken,
            184467
        ),
        "vault-lifecycle/prod/20261120T030000Z-184467.snap"
    );
}

#[test]
fn every_error_names_its_variable() {
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("RETAIN_LAST", "0")], "RETAIN_LAST"),
        (&[("RETAIN_DAILY", "-1")], "RETAIN_DAILY"),
        (&[("SNAPSHOT_PART_SIZE_MIB", "4")], "SNAPSHOT_PART_SIZE_MIB"),
        (&[("DR_REGION", "us-west-2")], "DR_BUCKET"),
        (&[("DR_BUCKET", "dr")], "DR_REGION"),
        (
            &[("SNAPSHOT_TIMEOUT_SECS", "soon")],
            "SNAPSHOT_TIMEOUT_SECS",
        ),
        (&[("BACKUP_LOCK_TTL_SECS", "1.5")], "BACKUP_LOCK_TTL_SECS"),
    ];
    for (extra, name) in cases {
        let e = BackupConfig::from(&env(extra), "snapshot-backup").expect_err(name);
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    for name in ["STATE_TABLE", "SNAPSHOT_BUCKET"] {
        let pairs: Vec<_> = MINIMAL
            .iter()
            .filter(|(k, _)| *k != name)
            .copied()
            .collect();
        let e = BackupConfig::from(&Env::from_pairs(pairs), "snapshot-backup").expect_err(name);
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    let e = RestoreConfig::from(&env(&[("RESTORE_HEALTHY_TIMEOUT_SECS", "x")]))
        .expect_err("bad timeout");
    assert!(
        e.to_string().contains("RESTORE_HEALTHY_TIMEOUT_SECS"),
        "{e}"
    );
}

use std::sync::Arc;

use crate::testing::{
    capture_logs, good_snapshot, sha256_hex, FakeCatalog, FakeCluster, FakeFleet, FakeLocks,
    FakeMetrics, FakeParameters, FakeS3,
};

const PRIMARY: &str = "primary";
const DR: &str = "dr";

/// snapshot-backup over fakes; no node is a member, so a run that reached the
/// cluster would fail with `NoActiveNode`.
fn function(
    s3: &FakeS3,
    catalog: &FakeCatalog,
    locks: Arc<FakeLocks>,
    corrupt_copies: bool,
) -> SnapshotBackup<FakeCluster, FakeParameters> {
    let mut dr = s3.bucket("eu-central-1", DR);
    dr.corrupt_copies = corrupt_copies;
    SnapshotBackup {
        settings: BackupConfig::from(&env(&[]), "snapshot-backup")
            .expect("config")
            .backup,
        fleet: Box::new(FakeFleet::default()),
        vault: FakeCluster::healthy(&["i-1"]),
        login: VaultLogin::new(
            AuthSettings::AppRole {
                mount: "approle".into(),
                role_id_parameter: "/r".into(),
                secret_id_parameter: "/s".into(),
            },
            FakeParameters::with(&[("/r", "role-canary"), ("/s", "secret-canary")]),
        ),
        locks: Box::new(locks),
        catalog: Box::new(catalog.clone()),
        store: Box::new(s3.bucket("eu-west-1", PRIMARY)),
        dr: Some(Box::new(dr)),
        metrics: Box::new(FakeMetrics::default()),
    }
}

/// A good snapshot stored in the primary bucket and catalogued, taken `hours_ago`.
fn catalogued(s3: &FakeS3, catalog: &FakeCatalog, hours_ago: i64) -> CatalogEntry {
    let bytes = good_snapshot(100 + hours_ago as u64, 2000);
    let key = format!("vault-lifecycle/prod/old-{hours_ago}.snap");
    let entry = CatalogEntry {
        cluster: "prod".into(),
        taken_at: Utc::now() - chrono::Duration::hours(hours_ago),
        object: Location {
            region: "eu-west-1".into(),
            bucket: PRIMARY.into(),
            key: key.clone(),
            version_id: None,
        },
        dr_copy: None,
        sha256: sha256_hex(&bytes),
        bytes: bytes.len() as u64,
        index: 100,
        term: 2,
        state_size: 2000,
        cluster_id: "id".into(),
        server_version: "2.7.2".into(),
        kind: BackupKind::Scheduled,
        reason: None,
    };
    let version = s3.put(PRIMARY, &key, bytes);
    let entry = CatalogEntry {
        object: Location {
            version_id: Some(version),
            ..entry.object
        },
        ..entry
    };
    futures::executor::block_on(catalog.put(&entry)).expect("put");
    entry
}

fn tick(id: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-23T03:00:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/prod-snapshot-backup"],
        "detail": {}
    })
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn a_held_lock_is_answered_busy_and_nothing_is_taken() {
    let s3 = FakeS3::default();
    let catalog = FakeCatalog::default();
    let locks = Arc::new(FakeLocks::default());
    locks
        .claim(BACKUP_LOCK, "restore r-1", Duration::from_secs(60))
        .await
        .expect("claim");
    let outcome = function(&s3, &catalog, locks.clone(), false)
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect("an outcome");
    assert!(
        matches!(&outcome, BackupOutcome::Busy { owner, .. } if owner == "restore r-1"),
        "{outcome:?}"
    );
    assert!(s3.versions(PRIMARY).is_empty());
    assert!(catalog.entries.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_redelivered_tick_stores_nothing_new_and_makes_the_missing_dr_copy() {
    let logs = capture_logs();
    let s3 = FakeS3::default();
    let catalog = FakeCatalog::default();
    let entry = catalogued(&s3, &catalog, 1);
    catalog
        .put_delivery(&"prod".parse().expect("name"), "tick-1", &entry.object)
        .await
        .expect("delivery");
    let outcome = function(&s3, &catalog, Arc::default(), false)
        .handle(&tick("tick-1"), "req-2", deadline())
        .await
        .expect("an outcome");
    let BackupOutcome::BackedUp(report) = outcome else {
        panic!("expected a backup, got {outcome:?}");
    };
    assert!(report.redelivered);
    assert_eq!(report.snapshot.object, entry.object);
    assert_eq!(s3.versions(PRIMARY).len(), 1, "no second snapshot");
    let copy = report.snapshot.dr_copy.clone().expect("a DR copy");
    assert_eq!(report.dr_copies, vec![copy.clone()]);
    let version = copy.version_id.clone().expect("version");
    assert_eq!(
        s3.get(DR, &copy.key, &version),
        s3.get(
            PRIMARY,
            &entry.object.key,
            entry.object.version_id.as_deref().expect("v")
        )
    );
    let tags = s3.tags.lock().expect("lock");
    assert_eq!(
        tags.get(&(DR.to_owned(), copy.key.clone(), version))
            .and_then(|t| t.get("sha256")),
        Some(&entry.sha256)
    );
    assert_eq!(catalog.entries.lock().expect("lock")[0].dr_copy, Some(copy));
    let logged = logs.contents();
    assert!(logged.contains("DR copy made and checked"));
    assert!(!logged.contains("secret-canary") && !logged.contains("role-canary"));
}

#[tokio::test]
async fn a_dr_copy_that_fails_its_check_is_deleted_and_reported() {
    let s3 = FakeS3::default();
    let catalog = FakeCatalog::default();
    let entry = catalogued(&s3, &catalog, 1);
    catalog
        .put_delivery(&"prod".parse().expect("name"), "tick-1", &entry.object)
        .await
        .expect("delivery");
    let err = function(&s3, &catalog, Arc::default(), true)
        .handle(&tick("tick-1"), "req-2", deadline())
        .await
        .expect_err("the copy is bad");
    assert_eq!(err.error_type, "Transient.DrCopyFailed", "{}", err.message);
    assert!(err.message.contains(&entry.object.key), "{}", err.message);
    assert!(err.message.contains("truncated"), "{}", err.message);
    assert!(s3.versions(DR).is_empty(), "the bad copy is deleted");
    assert_eq!(s3.versions(PRIMARY).len(), 1, "the snapshot stays");
    assert_eq!(catalog.entries.lock().expect("lock")[0].dr_copy, None);
}

#[tokio::test]
async fn retention_deletes_exact_versions_and_their_entries_and_copies_only_the_kept() {
    let s3 = FakeS3::default();
    let catalog = FakeCatalog::default();
    let entries: Vec<_> = (0..30).map(|h| catalogued(&s3, &catalog, h)).collect();
    catalog
        .put_delivery(&"prod".parse().expect("name"), "tick-1", &entries[0].object)
        .await
        .expect("delivery");
    let mut backup = function(&s3, &catalog, Arc::default(), false);
    backup.settings.retention = RetentionPolicy {
        last: 3,
        daily: 0,
        weekly: 0,
        monthly: 0,
    };
    let outcome = backup
        .handle(&tick("tick-1"), "req-2", deadline())
        .await
        .expect("an outcome");
    let BackupOutcome::BackedUp(report) = outcome else {
        panic!("expected a backup, got {outcome:?}");
    };
    assert_eq!(report.retention.kept, 3);
    assert_eq!(report.retention.deleted.len(), 27);
    let kept: Vec<_> = entries[..3]
        .iter()
        .map(|e| {
            (
                e.object.key.clone(),
                e.object.version_id.clone().expect("v"),
            )
        })
        .collect();
    let mut left = s3.versions(PRIMARY);
    left.sort();
    let mut expected = kept.clone();
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(s3.versions(DR).len(), 3, "only the kept are copied");
    assert_eq!(catalog.entries.lock().expect("lock").len(), 3);
}

#[test]
fn a_dr_bucket_needs_its_region_and_takes_its_key() {
    let config = BackupConfig::from(
        &env(&[
            ("DR_REGION", "us-west-2"),
            ("DR_BUCKET", "dr"),
            ("DR_KMS_KEY_ID", "k"),
        ]),
        "snapshot-backup",
    )
    .expect("dr config");
    assert_eq!(
        config.dr,
        Some(DrSettings {
            region: "us-west-2".into(),
            bucket: "dr".into(),
            kms_key: Some("k".into()),
        })
    );
}
