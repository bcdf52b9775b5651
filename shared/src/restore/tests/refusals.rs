//! Every refusal comes before anything reaches the cluster: the cluster's data and seal,
//! the bucket, the catalog and the lock are as they were, and no safety snapshot is left.

use super::*;

/// Sends `request`, expects it refused with `error_type` and a message holding `says`,
/// and checks that nothing changed.
async fn refused(bed: &Bed, request: Value, error_type: &str, says: &str) -> String {
    let before = bed.state();
    let err = bed.restore(request.clone()).await.expect_err("refused");
    assert_eq!(err.error_type, error_type, "{request}: {}", err.message);
    assert!(err.message.contains(says), "{request}: {}", err.message);
    bed.unchanged_since(&before);
    err.message
}

#[tokio::test(start_paused = true)]
async fn a_request_that_is_not_a_restore_is_refused() {
    let bed = Bed::healthy();
    bed.three_snapshots();
    let schedule = json!({
        "version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-23T03:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {}
    });
    let cases = [
        (schedule, "Permanent.UnrecognisedEvent", "snapshot-restore"),
        (json!({}), "Permanent.UnrecognisedEvent", "latest"),
        (
            json!({"snapshot": "newest"}),
            "Permanent.InvalidEvent",
            "is not one of",
        ),
        (
            json!({"snapshot": "latest", "colour": "red"}),
            "Permanent.InvalidEvent",
            "snapshot",
        ),
        (
            json!({"snapshot": {"key": " ", "version_id": "v1"}}),
            "Permanent.InvalidEvent",
            "non-empty key",
        ),
    ];
    for (request, error_type, says) in cases {
        refused(&bed, request, error_type, says).await;
    }
}

#[tokio::test(start_paused = true)]
async fn latest_with_an_empty_catalog_is_refused() {
    let bed = Bed::healthy();
    refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.NoSnapshot",
        "catalog of cluster prod holds no snapshot",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn as_of_a_time_before_the_first_snapshot_is_refused_naming_the_first() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let first = snapshots[0].0.taken_at;
    let as_of = first - chrono::Duration::seconds(1);
    refused(
        &bed,
        json!({"snapshot": {"as_of": as_of.to_rfc3339()}}),
        "Permanent.NoSnapshotAsOf",
        &format!("the first was taken at {}", first.to_rfc3339()),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_key_outside_the_snapshot_prefix_is_refused() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    // A real version, under another prefix; and a key with no cluster folder.
    let elsewhere = bed.put("elsewhere/prod/x.snap", &snapshots[0].1);
    refused(
        &bed,
        json!({"snapshot": exact(&elsewhere)}),
        "Permanent.OutsidePrefix",
        "elsewhere/prod/x.snap is not under vault-lifecycle/<cluster>/",
    )
    .await;
    let loose = bed.put("vault-lifecycle/x.snap", &snapshots[0].1);
    refused(
        &bed,
        json!({"snapshot": exact(&loose)}),
        "Permanent.OutsidePrefix",
        "vault-lifecycle/x.snap",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_version_the_bucket_does_not_hold_is_refused() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let key = snapshots[0].0.object.key.clone();
    refused(
        &bed,
        json!({"snapshot": {"key": key, "version_id": "no-such-version"}}),
        "Permanent.NoSuchVersion",
        "does not exist",
    )
    .await;
    // The catalog's newest entry, whose version is gone from the bucket.
    let newest = &snapshots[2].0.object;
    let version = newest.version_id.clone().expect("version");
    bed.s3
        .objects
        .lock()
        .expect("lock")
        .remove(&(BUCKET.to_owned(), newest.key.clone(), version));
    refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.NoSuchVersion",
        &newest.to_string(),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_uncatalogued_version_without_force_is_refused_listing_the_catalogued_ones() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let (entry, bytes) = &snapshots[0];
    // Another version of a catalogued key, that no backup recorded.
    let stray = bed.put(&entry.object.key, bytes);
    let message = refused(
        &bed,
        json!({"snapshot": exact(&stray)}),
        "Permanent.NotCatalogued",
        "is not in the catalog of cluster prod",
    )
    .await;
    let catalogued = entry.object.version_id.as_deref().expect("version");
    assert!(
        message.contains(&format!("catalogued versions of this key: {catalogued})")),
        "{message}"
    );
    assert!(
        message.contains("Give force to restore it on the archive check alone"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_truncated_object_is_refused_before_anything_is_sent() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    // The newest entry's version, cut short in the bucket (bit rot, a bad copy).
    let newest = &snapshots[2];
    let version = newest.0.object.version_id.clone().expect("version");
    let id = (BUCKET.to_owned(), newest.0.object.key.clone(), version);
    let cut = newest.1[..newest.1.len() / 2].to_vec();
    bed.s3.objects.lock().expect("lock").insert(id, cut);
    refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.ChecksumMismatch",
        "truncated",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn latest_whose_object_is_gone_names_the_previous_snapshot() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let (newest, previous) = (&snapshots[2].0, &snapshots[1].0);
    let version = newest.object.version_id.clone().expect("version");
    let id = (BUCKET.to_owned(), newest.object.key.clone(), version);
    bed.s3.objects.lock().expect("lock").remove(&id);
    let message = refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.NoSuchVersion",
        "does not exist",
    )
    .await;
    assert!(
        message.contains(&format!(
            "The catalog's previous snapshot is {}",
            previous.object
        )),
        "{message}"
    );
    assert!(message.contains(&previous.object.key), "{message}");
    assert!(
        message.contains("This snapshot has no DR copy"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_length_object_with_one_byte_changed_is_refused_as_corrupt_not_truncated() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let newest = &snapshots[2];
    let version = newest.0.object.version_id.clone().expect("version");
    let id = (BUCKET.to_owned(), newest.0.object.key.clone(), version);
    let mut damaged = newest.1.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    bed.s3.objects.lock().expect("lock").insert(id, damaged);
    let message = refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.ChecksumMismatch",
        "is corrupt: it has the recorded",
    )
    .await;
    assert!(!message.contains("truncated"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_good_snapshot_that_is_not_the_one_catalogued_is_refused() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    // The newest entry's version holds another, whole and good, snapshot.
    let newest = &snapshots[2].0;
    let version = newest.object.version_id.clone().expect("version");
    let id = (BUCKET.to_owned(), newest.object.key.clone(), version);
    let other = good_snapshot(99, 2000);
    bed.s3
        .objects
        .lock()
        .expect("lock")
        .insert(id, other.clone());
    let message = refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.ChecksumMismatch",
        &format!("but the catalog recorded {}", newest.sha256),
    )
    .await;
    assert!(message.contains(&sha256_hex(&other)), "{message}");
}

#[tokio::test(start_paused = true)]
async fn another_clusters_snapshot_without_force_is_refused() {
    let bed = Bed::healthy();
    bed.three_snapshots();
    let staging = bed.catalogued(("staging", "c-9"), &good_snapshot(70, 2000), 70, 1);
    let message = refused(
        &bed,
        json!({"snapshot": exact(&staging.object)}),
        "Permanent.OtherCluster",
        "is a snapshot of cluster staging (cluster id c-9), and this is cluster prod (cluster id c-1)",
    )
    .await;
    assert!(message.contains("give force"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_of_a_rebuilt_cluster_of_the_same_name_is_another_clusters() {
    let bed = Bed::healthy();
    bed.three_snapshots();
    // Catalogued under this name, by the cluster that had it before a rebuild.
    bed.catalogued(
        ("prod", "c-before-rebuild"),
        &good_snapshot(80, 2000),
        80,
        0,
    );
    refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Permanent.OtherCluster",
        "cluster id c-before-rebuild",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn force_without_all_the_source_clusters_shares_is_refused() {
    let bed = Bed::healthy();
    let staging = bed.catalogued(("staging", "c-9"), &good_snapshot(70, 2000), 70, 1);
    // Two of the three shares the threshold needs.
    let shares = bed.cluster().state().shares.clone();
    bed.store_shares("staging", &shares[..2]);
    refused(
        &bed,
        json!({"snapshot": exact(&staging.object), "force": true}),
        "Permanent.SourceSharesMissing",
        "will need 3 of its shares, and /vault-lifecycle/staging/unseal holds 2",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_is_answered_busy_and_nothing_is_changed() {
    let bed = Bed::healthy();
    bed.three_snapshots();
    bed.locks
        .claim(
            crate::backup::BACKUP_LOCK,
            "backup tick-9 req-9",
            Duration::from_secs(600),
        )
        .await
        .expect("claim");
    let before = bed.state();
    let outcome = bed
        .restore(json!({"snapshot": "latest"}))
        .await
        .expect("an outcome");
    assert!(
        matches!(&outcome, RestoreOutcome::Busy { owner, .. } if owner == "backup tick-9 req-9"),
        "{outcome:?}"
    );
    bed.unchanged_since(&before);
}

#[tokio::test(start_paused = true)]
async fn with_no_active_node_nothing_is_changed() {
    let cluster = FakeCluster::healthy(&NODES);
    for node in NODES {
        cluster.seal(node);
    }
    let bed = Bed::over(cluster, &NODES);
    bed.three_snapshots();
    refused(
        &bed,
        json!({"snapshot": "latest"}),
        "Transient.NoActiveNode",
        "asked 3 nodes",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_login_sends_nothing_and_releases_the_lock() {
    let logs = crate::testing::capture_logs();
    let bed = Bed::over(FakeCluster::healthy(&NODES).refusing_logins(), &NODES);
    bed.three_snapshots();
    let before = bed.state();
    let err = bed
        .restore(json!({"snapshot": "latest"}))
        .await
        .expect_err("refused");
    assert_eq!(err.error_type, "Permanent.LoginRefused", "{}", err.message);
    assert_eq!(bed.state(), before, "no safety snapshot, nothing sent");
    assert_eq!(bed.cluster().calls("GET") + bed.cluster().calls("POST"), 0);
    for text in [logs.contents(), err.message] {
        assert!(
            !text.contains(ROLE_ID) && !text.contains(SECRET_ID),
            "{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_safety_snapshot_sends_nothing() {
    let bed = Bed::healthy();
    bed.three_snapshots();
    {
        let mut s = bed.cluster().state();
        // The node's snapshot stream breaks before its end.
        s.snapshot_breaks_after = Some(s.data.len() / 2);
    }
    let before = bed.state();
    let err = bed
        .restore(json!({"snapshot": "latest"}))
        .await
        .expect_err("no safety snapshot");
    assert_eq!(
        err.error_type, "Transient.SafetySnapshotFailed",
        "{}",
        err.message
    );
    assert!(err.message.contains("nothing was sent"), "{}", err.message);
    assert_eq!(bed.state(), before, "nothing stored, catalogued or sent");
    assert_eq!(bed.cluster().calls("POST"), 0);
}

#[tokio::test]
async fn a_snapshot_whose_share_generation_is_gone_is_refused_and_the_dry_run_names_it() {
    let bed = Bed::healthy();
    let mut entry = bed.catalogued(("prod", "c-1"), &good_snapshot(40, 2000), 40, 1);
    entry.share_generation = Some(2);
    futures::executor::block_on(bed.catalog.put(&entry)).expect("put");
    // Generation 2 is stored in part only: two shares of the three needed.
    let shares = bed.cluster().state().shares.clone();
    let keys = KeyLayout::new("/vault-lifecycle", "prod");
    for (n, share) in shares.iter().take(2).enumerate() {
        bed.function.parameters.values.lock().expect("lock").insert(
            keys.generation_share(ShareKind::Unseal, 2, n + 1),
            share.clone(),
        );
    }
    refused(
        &bed,
        json!({"snapshot": exact(&entry.object)}),
        "Permanent.GenerationSharesMissing",
        "share generation 2",
    )
    .await;
    // All of them: the dry run names the generation it will need.
    for (n, share) in shares.iter().enumerate().skip(2) {
        bed.function.parameters.values.lock().expect("lock").insert(
            keys.generation_share(ShareKind::Unseal, 2, n + 1),
            share.clone(),
        );
    }
    let plan = bed
        .restore(json!({"snapshot": exact(&entry.object), "dry_run": true}))
        .await
        .expect("a plan");
    let RestoreOutcome::WouldRestore(plan) = plan else {
        panic!("{plan:?}");
    };
    assert_eq!(plan.share_generation, Some(2));
}

#[tokio::test]
async fn a_snapshot_of_an_older_share_generation_is_sent_forced() {
    let bed = Bed::healthy();
    let mut entry = bed.catalogued(("prod", "c-1"), &good_snapshot(50, 2000), 50, 1);
    entry.share_generation = Some(1);
    futures::executor::block_on(bed.catalog.put(&entry)).expect("put");
    let shares = bed.cluster().state().shares.clone();
    bed.store_shares("prod", &shares);
    let request = json!({"snapshot": exact(&entry.object), "dry_run": true});
    let RestoreOutcome::WouldRestore(plan) = bed.restore(request.clone()).await.expect("a plan")
    else {
        panic!("a plan");
    };
    assert!(!plan.forced, "generation 1 is the one in force");
    // A rotation since: generation 2 is in force, the snapshot needs generation 1.
    bed.function.parameters.values.lock().expect("lock").insert(
        KeyLayout::new("/vault-lifecycle", "prod").generation_in_force(ShareKind::Unseal, 2),
        "2026-12-01T00:00:00Z".into(),
    );
    let RestoreOutcome::WouldRestore(plan) = bed.restore(request).await.expect("a plan") else {
        panic!("a plan");
    };
    assert!(plan.forced && !plan.other_cluster, "{plan:?}");
    assert_eq!(plan.share_generation, Some(1));
}
