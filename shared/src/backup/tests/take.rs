//! A snapshot taken from the fake cluster's active node: stored, checked, tagged and
//! catalogued; or refused, with nothing stored, catalogued or remembered.

use super::*;
use crate::{snapshots::take::snapshot_key, testing::capture_logs};

/// The one version in `bucket`, as `(key, version)`.
fn only_version(bed: &Bed, bucket: &str) -> (String, String) {
    let versions = bed.s3.versions(bucket);
    assert_eq!(versions.len(), 1, "{bucket}: {versions:?}");
    versions.into_iter().next().expect("one version")
}

#[tokio::test]
async fn a_tick_stores_the_active_nodes_snapshot_checked_and_catalogued() {
    let logs = capture_logs();
    let cluster = FakeCluster::healthy(&["i-1", "i-2", "i-3"]);
    // The active node is listed last: the snapshot must come from it, not a standby.
    let bed = Bed::over(cluster, &["i-3", "i-2", "i-1"]);
    let data = bed.cluster().state().data.clone();
    let outcome = bed
        .function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect("an outcome");
    let BackupOutcome::BackedUp(report) = outcome else {
        panic!("expected a backup, got {outcome:?}");
    };
    assert!(!report.redelivered);
    let entry = report.snapshot.clone();

    // The object is the node's snapshot, byte for byte, under its index.
    let (key, version) = only_version(&bed, PRIMARY);
    let cluster_name = "prod".parse().expect("name");
    let unique = key
        .rsplit('-')
        .nth(1)
        .and_then(|u| u32::from_str_radix(u, 16).ok())
        .expect("a unique part");
    assert_eq!(
        key,
        snapshot_key("vault-lifecycle", &cluster_name, &entry.taken_at, unique, 1)
    );
    assert_eq!(bed.s3.get(PRIMARY, &key, &version), Some(data.clone()));
    let id = (PRIMARY.to_owned(), key.clone(), version.clone());
    let tags = bed.s3.tags.lock().expect("lock").get(&id).cloned();
    assert_eq!(
        tags.and_then(|t| t.get("sha256").cloned()),
        Some(sha256_hex(&data))
    );
    let metadata = bed.s3.metadata.lock().expect("lock").get(&id).cloned();
    let metadata = metadata.expect("metadata");
    for (name, value) in [
        ("cluster", "prod"),
        ("cluster-id", "c-1"),
        ("server-version", "2.7.2"),
        ("raft-index", "1"),
        ("raft-term", "2"),
        ("kind", "scheduled"),
    ] {
        assert_eq!(
            metadata.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }

    // The catalog records it with the checksum of what was stored, and its DR copy.
    let object = Location {
        region: "eu-west-1".into(),
        bucket: PRIMARY.into(),
        key: key.clone(),
        version_id: Some(version),
    };
    assert_eq!(entry.object, object);
    assert_eq!(entry.sha256, sha256_hex(&data));
    assert_eq!(entry.bytes, data.len() as u64);
    assert_eq!((entry.index, entry.term, entry.state_size), (1, 2, 1024));
    assert_eq!(entry.cluster_id, "c-1");
    assert_eq!(entry.kind, BackupKind::Scheduled);
    assert_eq!(entry.reason.as_deref(), Some("scheduled"));
    assert_eq!(bed.entries(), vec![entry.clone()]);
    let (dr_key, dr_version) = only_version(&bed, DR);
    assert_eq!(bed.s3.get(DR, &dr_key, &dr_version), Some(data.clone()));
    assert_eq!(
        entry.dr_copy.as_ref().and_then(|c| c.version_id.clone()),
        Some(dr_version)
    );
    assert_eq!(report.dr_copies.len(), 1);

    // The delivery is remembered, the lock released, the run's metrics published.
    let delivered = bed.catalog.deliveries.lock().expect("lock").clone();
    assert_eq!(
        delivered.get(&("prod".to_owned(), "tick-1".to_owned())),
        Some(&object)
    );
    assert!(bed.locks.held.lock().expect("lock").is_empty());
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(1.0));
    assert_eq!(
        bed.metrics.value("BackupSizeBytes", None),
        Some(data.len() as f64)
    );
    assert_eq!(bed.cluster().calls("GET i-1"), 1, "one snapshot, from i-1");
    assert_eq!(
        bed.cluster().calls("GET i-2") + bed.cluster().calls("GET i-3"),
        0
    );
    let logged = logs.contents();
    for secret in [ROLE_ID, SECRET_ID, "fake-token-1"] {
        assert!(!logged.contains(secret), "{secret} leaked: {logged}");
        assert!(!format!("{report:?}").contains(secret));
    }
}

#[tokio::test]
async fn a_direct_request_is_a_manual_snapshot_with_its_reason() {
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    let request = serde_json::json!({"reason": "before upgrade to 2.8"});
    let outcome = bed
        .function
        .handle(&request, "req-7", deadline())
        .await
        .expect("an outcome");
    let BackupOutcome::BackedUp(report) = outcome else {
        panic!("expected a backup, got {outcome:?}");
    };
    assert_eq!(report.snapshot.kind, BackupKind::Manual);
    assert_eq!(
        report.snapshot.reason.as_deref(),
        Some("before upgrade to 2.8")
    );
    assert_eq!(bed.entries(), vec![report.snapshot.clone()]);
    // The invocation's request id names the delivery: a retried invocation stores none.
    let again = bed
        .function
        .handle(&request, "req-7", deadline())
        .await
        .expect("an outcome");
    assert!(
        matches!(&again, BackupOutcome::BackedUp(r) if r.redelivered && r.snapshot.object == report.snapshot.object),
        "{again:?}"
    );
    assert_eq!(bed.s3.versions(PRIMARY).len(), 1);
}

#[tokio::test]
async fn with_no_active_node_nothing_is_taken() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    cluster.seal("i-1");
    let bed = Bed::over(cluster, &["i-1"]);
    let err = bed
        .function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect_err("no active node");
    assert_eq!(err.error_type, "Transient.NoActiveNode", "{}", err.message);
    assert!(err.message.contains("asked 1 nodes"), "{}", err.message);
    assert!(bed.stored_nothing());
    assert_eq!(bed.cluster().calls("login") + bed.cluster().calls("GET"), 0);
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(0.0));
}

#[tokio::test]
async fn a_refused_login_takes_nothing_and_leaks_no_credential() {
    let logs = capture_logs();
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]).refusing_logins(), &["i-1"]);
    let err = bed
        .function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect_err("login refused");
    assert_eq!(err.error_type, "Permanent.LoginRefused", "{}", err.message);
    assert!(err.message.contains("i-1"), "{}", err.message);
    assert!(bed.stored_nothing());
    assert_eq!(bed.cluster().calls("GET"), 0, "no snapshot was asked for");
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(0.0));
    for text in [logs.contents(), err.message] {
        assert!(
            !text.contains(ROLE_ID) && !text.contains(SECRET_ID),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_that_breaks_midway_is_aborted_and_nothing_is_stored() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    {
        let mut s = cluster.state();
        // Six MiB of state: the first 5 MiB part is uploaded before the stream breaks.
        s.data = good_snapshot(9, 6 << 20);
        s.snapshot_breaks_after = Some(11 << 19);
    }
    let mut bed = Bed::over(cluster, &["i-1"]);
    bed.function.settings.part_size = 5 << 20;
    let err = bed
        .function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect_err("the stream broke");
    assert_eq!(
        err.error_type, "Transient.SnapshotNotStored",
        "{}",
        err.message
    );
    assert!(
        err.message.contains("reading the snapshot failed"),
        "{}",
        err.message
    );
    let aborted = bed.s3.aborted.lock().expect("lock").clone();
    assert_eq!(aborted.len(), 1, "the upload begun is aborted: {aborted:?}");
    assert!(
        aborted[0].starts_with("vault-lifecycle/prod/"),
        "{aborted:?}"
    );
    assert!(bed.stored_nothing());
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(0.0));
}

#[tokio::test]
async fn a_truncated_snapshot_fails_its_check_and_nothing_is_stored() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    {
        let mut s = cluster.state();
        // Past the first 5 MiB part, then the trailing entries (SHA256SUMS and its seal)
        // never arrive.
        s.data = good_snapshot(9, 6 << 20);
        let cut = s.data.len() - 300;
        s.data.truncate(cut);
    }
    let mut bed = Bed::over(cluster, &["i-1"]);
    bed.function.settings.part_size = 5 << 20;
    let err = bed
        .function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect_err("truncated");
    assert_eq!(
        err.error_type, "Transient.SnapshotInvalid",
        "{}",
        err.message
    );
    assert!(err.message.contains("truncated"), "{}", err.message);
    assert_eq!(bed.s3.aborted.lock().expect("lock").len(), 1);
    assert!(bed.stored_nothing());
}

#[tokio::test]
async fn a_malformed_request_is_refused_before_anything_is_done() {
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    let alarm = serde_json::json!({
        "version": "0", "id": "e-1", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-23T03:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": {}
    });
    let cases = [
        (
            serde_json::json!({"reason": "x", "colour": "red"}),
            "Permanent.InvalidEvent",
            "colour",
        ),
        (
            serde_json::json!({"reason": 7}),
            "Permanent.InvalidEvent",
            "invalid type",
        ),
        (alarm, "Permanent.UnrecognisedEvent", "snapshot-backup"),
    ];
    for (request, error_type, says) in cases {
        let err = bed
            .function
            .handle(&request, "req-1", deadline())
            .await
            .expect_err("refused");
        assert_eq!(err.error_type, error_type, "{request}: {}", err.message);
        assert!(err.message.contains(says), "{request}: {}", err.message);
    }
    assert!(bed.stored_nothing());
    assert!(
        bed.cluster().state().calls.is_empty(),
        "the cluster was not asked"
    );
}

#[tokio::test]
async fn a_token_revoked_by_a_restore_is_replaced_and_the_backup_taken() {
    let bed = Bed::over(FakeCluster::healthy(&["i-1"]), &["i-1"]);
    bed.function
        .handle(&tick("tick-1"), "req-1", deadline())
        .await
        .expect("first backup");
    // A restore brings back data without the token this function has cached.
    bed.cluster().state().tokens.clear();
    let outcome = bed
        .function
        .handle(&tick("tick-2"), "req-2", deadline())
        .await
        .expect("the second backup logs in again");
    assert!(
        matches!(&outcome, BackupOutcome::BackedUp(r) if !r.redelivered),
        "{outcome:?}"
    );
    assert_eq!(bed.cluster().logins(), 2);
    assert_eq!(bed.entries().len(), 2);
    assert_eq!(bed.metrics.value("BackupSucceeded", None), Some(1.0));
}

#[tokio::test]
async fn two_backups_in_one_second_at_one_index_get_keys_of_their_own() {
    let cluster = FakeCluster::healthy(&["i-1", "i-2", "i-3"]);
    let bed = Bed::over(cluster, &["i-1", "i-2", "i-3"]);
    let mut keys = Vec::new();
    for request in ["req-1", "req-2"] {
        let outcome = bed
            .function
            .handle(
                &serde_json::json!({"reason": "by hand"}),
                request,
                deadline(),
            )
            .await
            .expect("a backup");
        let BackupOutcome::BackedUp(report) = outcome else {
            panic!("expected a backup, got {outcome:?}");
        };
        keys.push((report.snapshot.object.key.clone(), report.snapshot.index));
    }
    assert_eq!(keys[0].1, keys[1].1, "the same raft index");
    assert_ne!(keys[0].0, keys[1].0, "{keys:?}");
    let versions = bed.s3.versions(PRIMARY);
    assert_eq!(versions.len(), 2, "{versions:?}");
    let distinct: std::collections::BTreeSet<&String> = versions.iter().map(|(k, _)| k).collect();
    assert_eq!(
        distinct.len(),
        2,
        "each snapshot is the only version of its key: {versions:?}"
    );
}
