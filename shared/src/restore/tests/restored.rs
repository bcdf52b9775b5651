//! Restores carried out: the safety snapshot of the cluster as it was is stored and
//! catalogued first, the cluster then holds the snapshot's data, and the restore is
//! recorded; what a failure after the safety snapshot leaves behind.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;

use super::*;
use crate::{
    snapshots::{
        catalog::RestoreRecord,
        store::{ObjectBody, ObjectInfo, PartUpload, SnapshotStore, StoreError, StoredObject},
    },
    testing::{capture_logs, FakeBucket},
};

/// The catalog entry of the safety snapshot at `location`, after checking that the
/// bucket holds `was` there, tagged with its checksum.
fn safety_entry(bed: &Bed, location: &Location, was: &[u8]) -> CatalogEntry {
    let version = location.version_id.clone().expect("version");
    assert!(
        location.key.starts_with("vault-lifecycle/prod/"),
        "{location}"
    );
    assert_eq!(
        bed.s3.get(BUCKET, &location.key, &version).as_deref(),
        Some(was),
        "the safety snapshot holds the cluster as it was"
    );
    let tags = bed.s3.tags.lock().expect("lock").clone();
    assert_eq!(
        tags.get(&(BUCKET.to_owned(), location.key.clone(), version))
            .and_then(|t| t.get("sha256")),
        Some(&sha256_hex(was))
    );
    let entries = bed.catalog.entries.lock().expect("lock").clone();
    let entry = entries
        .into_iter()
        .find(|e| e.object == *location)
        .expect("the safety snapshot is catalogued");
    assert_eq!(entry.kind, BackupKind::PreRestore);
    assert_eq!(entry.sha256, sha256_hex(was));
    entry
}

fn records(bed: &Bed) -> Vec<(String, RestoreRecord)> {
    bed.catalog.restores.lock().expect("lock").clone()
}

#[tokio::test(start_paused = true)]
async fn latest_is_restored_after_a_safety_snapshot_of_the_cluster_as_it_was() {
    let logs = capture_logs();
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let (newest, bytes) = &snapshots[2];
    let was = bed.cluster().state().data.clone();
    let report = restored(
        bed.restore(json!({"snapshot": "latest", "reason": "bad deploy"}))
            .await,
    );

    assert_eq!(report.plan.snapshot, newest.object);
    assert_eq!(report.plan.checked.sha256, newest.sha256);
    assert_eq!(report.plan.checked.index, 30);
    // The cluster holds the snapshot's data, sent once, unforced, and is healthy again.
    {
        let cluster = bed.cluster().state();
        assert_eq!(cluster.data, *bytes);
        assert_eq!(cluster.restores, vec![(bytes.clone(), false)]);
        assert!(cluster.nodes.values().all(|n| !n.sealed));
    }
    assert_eq!(bed.cluster().active().as_deref(), Some("i-1"));
    assert_eq!(report.active_node, bed.cluster().addr("i-1").to_string());
    assert!(report.unsealed.is_empty(), "{:?}", report.unsealed);
    assert!(report.autopilot_healthy);
    assert_eq!(report.failure_tolerance, Some(1));

    // The safety snapshot was taken before the send: it holds the data the restore
    // replaced, and is catalogued as the way back.
    let safety = safety_entry(&bed, &report.safety_snapshot, &was);
    assert_eq!(
        safety.reason,
        Some(format!("before restoring {}", newest.object))
    );
    assert_eq!(
        records(&bed),
        vec![(
            "prod".to_owned(),
            RestoreRecord {
                restored_at: records(&bed)[0].1.restored_at,
                source: newest.object.clone(),
                source_cluster: "prod".into(),
                index: 30,
                term: 2,
                safety_snapshot: report.safety_snapshot.clone(),
                forced: false,
                reason: Some("bad deploy".into()),
            }
        )]
    );
    assert!(bed.locks.held.lock().expect("lock").is_empty(), "released");
    let texts = [logs.contents(), format!("{report:?}")];
    for secret in [ROLE_ID, SECRET_ID, "fake-token"] {
        for text in &texts {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

/// A cluster `staging` with keys of its own, whose snapshot is catalogued in the bed's
/// catalog and known to the bed's cluster as another cluster's.
fn staging_snapshot(bed: &Bed) -> (CatalogEntry, Vec<u8>, crate::testing::Keyring) {
    let staging = FakeCluster::healthy(&["s-1"]).keyed("staging");
    let keyring = staging.keyring();
    let bytes = staging.state().data.clone();
    bed.cluster().knows_snapshot(&bytes, keyring.clone());
    let entry = bed.catalogued(("staging", &keyring.cluster_id), &bytes, 0, 1);
    (entry, bytes, keyring)
}

#[tokio::test(start_paused = true)]
async fn another_clusters_snapshot_is_restored_with_force_and_unsealed_with_its_shares() {
    let logs = capture_logs();
    let bed = Bed::healthy();
    let (entry, bytes, keyring) = staging_snapshot(&bed);
    bed.store_shares("staging", &keyring.shares[..3]);
    let was = bed.cluster().state().data.clone();
    let report = restored(
        bed.restore(json!({"snapshot": exact(&entry.object), "force": true}))
            .await,
    );

    assert!(report.plan.other_cluster);
    assert_eq!(report.plan.source_cluster, "staging");
    // Every node sealed on the restored keyring and was unsealed with staging's shares.
    let mut unsealed = report.unsealed.clone();
    unsealed.sort();
    let every: Vec<String> = NODES
        .iter()
        .map(|n| bed.cluster().addr(n).to_string())
        .collect();
    assert_eq!(unsealed, every);
    {
        let cluster = bed.cluster().state();
        assert_eq!(cluster.data, bytes);
        assert_eq!(cluster.restores, vec![(bytes.clone(), true)], "forced");
        assert_eq!(cluster.shares, keyring.shares, "staging's keys from now on");
        assert_eq!(cluster.cluster_id, "c-staging");
        assert!(cluster.nodes.values().all(|n| !n.sealed));
    }
    assert!(bed.cluster().active().is_some());
    assert!(report.autopilot_healthy);
    safety_entry(&bed, &report.safety_snapshot, &was);
    let records = records(&bed);
    assert_eq!(records.len(), 1);
    assert!(records[0].1.forced);
    assert_eq!(records[0].1.source_cluster, "staging");
    let texts = [logs.contents(), format!("{report:?}")];
    for share in &keyring.shares {
        for text in &texts {
            assert!(!text.contains(share.as_str()), "a share leaked: {text}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shares_that_do_not_open_the_restored_keyring_are_reported_and_the_way_back_kept() {
    let logs = capture_logs();
    let bed = Bed::healthy();
    let (entry, bytes, _) = staging_snapshot(&bed);
    // This cluster's own shares, stored where staging's belong.
    let own = bed.cluster().state().shares.clone();
    bed.store_shares("staging", &own[..3]);
    let was = bed.cluster().state().data.clone();
    let err = bed
        .restore(json!({"snapshot": exact(&entry.object), "force": true}))
        .await
        .expect_err("the shares are not staging's");
    assert_eq!(
        err.error_type, "Permanent.SharesRejected",
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("refused the 3 shares of the source cluster"),
        "{}",
        err.message
    );
    // The snapshot is in force and the cluster sealed: the safety snapshot is the way
    // back, and no restore is recorded as done.
    {
        let cluster = bed.cluster().state();
        assert_eq!(cluster.restores, vec![(bytes.clone(), true)]);
        assert!(cluster.nodes.values().all(|n| n.sealed));
    }
    let safeties: Vec<Location> = bed
        .catalog
        .entries
        .lock()
        .expect("lock")
        .iter()
        .filter(|e| e.kind == BackupKind::PreRestore)
        .map(|e| e.object.clone())
        .collect();
    assert_eq!(safeties.len(), 1);
    safety_entry(&bed, &safeties[0], &was);
    assert!(
        err.message.contains(&safeties[0].to_string()),
        "the error names the way back: {}",
        err.message
    );
    assert!(records(&bed).is_empty());
    assert!(bed.locks.held.lock().expect("lock").is_empty(), "released");
    for text in [logs.contents(), err.message] {
        for share in &own {
            assert!(!text.contains(share.as_str()), "a share leaked: {text}");
        }
    }
}

/// The bed's bucket, except that the version `rots` reads back as `rotten` from its
/// second read on: an object that changed between the check and the send.
struct RottingBucket {
    inner: FakeBucket,
    rots: StoredObject,
    rotten: FakeBucket,
    reads: AtomicUsize,
}

#[async_trait]
impl SnapshotStore for RottingBucket {
    async fn begin(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Box<dyn PartUpload>, StoreError> {
        self.inner.begin(key, metadata).await
    }
}

#[async_trait]
impl SnapshotObjects for RottingBucket {
    fn location_of(&self, object: &StoredObject) -> Location {
        self.inner.location_of(object)
    }
    async fn head(&self, object: &StoredObject) -> Result<Option<ObjectInfo>, StoreError> {
        self.inner.head(object).await
    }
    async fn open(&self, object: &StoredObject) -> Result<Box<ObjectBody>, StoreError> {
        if *object == self.rots && self.reads.fetch_add(1, Ordering::SeqCst) > 0 {
            return self.rotten.open(object).await;
        }
        self.inner.open(object).await
    }
    async fn tag(
        &self,
        object: &StoredObject,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.inner.tag(object, tags).await
    }
    async fn copy_in(
        &self,
        source: &Location,
        size: u64,
        multipart_above: u64,
    ) -> Result<StoredObject, StoreError> {
        self.inner.copy_in(source, size, multipart_above).await
    }
    async fn delete_versions(&self, objects: &[StoredObject]) -> Result<(), StoreError> {
        self.inner.delete_versions(objects).await
    }
}

#[tokio::test(start_paused = true)]
async fn an_object_that_changes_after_its_check_is_cut_off_before_the_node_installs_it() {
    let mut bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let newest = &snapshots[2].0;
    let rots = crate::snapshots::verify::stored(&newest.object);
    // The second read gives another snapshot, whole and good: only the check as it
    // streams into the node can tell.
    let rotten = FakeS3::default();
    rotten.objects.lock().expect("lock").insert(
        (
            BUCKET.to_owned(),
            rots.key.clone(),
            rots.version_id.clone().expect("version"),
        ),
        good_snapshot(99, 2000),
    );
    bed.function.store = Box::new(RottingBucket {
        inner: bed.s3.bucket(REGION, BUCKET),
        rots,
        rotten: rotten.bucket(REGION, BUCKET),
        reads: AtomicUsize::new(0),
    });
    let was = bed.cluster().state().data.clone();
    let err = bed
        .restore(json!({"snapshot": "latest"}))
        .await
        .expect_err("cut off");
    assert_eq!(err.error_type, "Permanent.RestoreFailed", "{}", err.message);
    assert!(
        err.message.contains("the whole object (SHA-256"),
        "{}",
        err.message
    );
    {
        let cluster = bed.cluster().state();
        assert_eq!(cluster.data, was, "the node installed nothing");
        assert!(cluster.restores.is_empty());
    }
    // The message names the safety snapshot, which holds the cluster as it is.
    let safety = bed
        .catalog
        .entries
        .lock()
        .expect("lock")
        .iter()
        .find(|e| e.kind == BackupKind::PreRestore)
        .map(|e| e.object.clone())
        .expect("a safety snapshot");
    assert!(err.message.contains(&safety.to_string()), "{}", err.message);
    safety_entry(&bed, &safety, &was);
    assert!(records(&bed).is_empty());
    assert!(bed.locks.held.lock().expect("lock").is_empty(), "released");
}

#[tokio::test(start_paused = true)]
async fn a_cached_token_revoked_since_is_replaced_and_the_restore_runs_once() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    restored(bed.restore(json!({"snapshot": "latest"})).await);
    let logins = bed.cluster().logins();
    // Someone else's restore since: the token this function cached no longer exists.
    bed.cluster().state().tokens.clear();
    let report = restored(
        bed.restore(json!({"snapshot": exact(&snapshots[0].0.object)}))
            .await,
    );
    assert_eq!(report.plan.snapshot, snapshots[0].0.object);
    assert_eq!(
        bed.cluster().state().restores.len(),
        2,
        "one restore per request, the refused attempt changed nothing"
    );
    assert!(bed.cluster().logins() > logins);
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_from_before_a_database_root_rotation_is_restored_and_its_stale_root_passwords_named(
) {
    let bed = Bed::healthy();
    let mut entry = bed.catalogued(("prod", "c-1"), &good_snapshot(60, 2000), 60, 1);
    entry.database_generation = Some(1);
    futures::executor::block_on(bed.catalog.put(&entry)).expect("put");
    let request = json!({"snapshot": exact(&entry.object), "dry_run": true});
    let RestoreOutcome::WouldRestore(plan) = bed.restore(request.clone()).await.expect("a plan")
    else {
        panic!("a plan");
    };
    assert_eq!(plan.stale_database_credentials, None, "no rotation since");
    // database-root rotated one connection since the snapshot.
    bed.function.parameters.values.lock().expect("lock").insert(
        KeyLayout::new("/vault-lifecycle", "prod").database_generation(),
        "2".into(),
    );
    let RestoreOutcome::WouldRestore(plan) = bed.restore(request).await.expect("a plan") else {
        panic!("a plan");
    };
    let stale = plan
        .stale_database_credentials
        .expect("named in the dry run");
    assert_eq!((stale.snapshot_generation, stale.generation_now), (1, 2));
    let report = restored(bed.restore(json!({"snapshot": exact(&entry.object)})).await);
    assert_eq!(
        report
            .plan
            .stale_database_credentials
            .map(|s| s.what_to_do.contains("database/config")),
        Some(true),
        "the restore goes ahead and says what to do"
    );
    assert_eq!(bed.cluster().state().data, good_snapshot(60, 2000));
}

/// The newest of the three snapshots, its entry recording `canary`, and its data
/// holding `holds`.
fn newest_with_canary(bed: &Bed, canary: &str, holds: &str) -> CatalogEntry {
    let snapshots = bed.three_snapshots();
    let (newest, bytes) = &snapshots[2];
    let mut entry = newest.clone();
    entry.canary = Some(canary.into());
    futures::executor::block_on(bed.catalog.put(&entry)).expect("put");
    bed.cluster().holds_canary(bytes, holds);
    entry
}

#[tokio::test(start_paused = true)]
async fn a_restore_reads_the_snapshots_canary_back() {
    let bed = Bed::healthy();
    let entry = newest_with_canary(&bed, "canary-30", "canary-30");
    let report = restored(bed.restore(json!({"snapshot": exact(&entry.object)})).await);
    assert_eq!(
        report.canary,
        crate::restore::CanaryCheck::Matched {
            value: "canary-30".into()
        }
    );
    assert_eq!(bed.cluster().state().canary.as_deref(), Some("canary-30"));
}

#[tokio::test(start_paused = true)]
async fn a_restore_whose_data_holds_another_canary_says_so() {
    let logs = capture_logs();
    let bed = Bed::healthy();
    let entry = newest_with_canary(&bed, "canary-30", "something-else");
    let report = restored(bed.restore(json!({"snapshot": exact(&entry.object)})).await);
    assert_eq!(
        report.canary,
        crate::restore::CanaryCheck::Different {
            expected: "canary-30".into(),
            found: Some("something-else".into()),
        }
    );
    assert!(
        logs.contents()
            .contains("does not hold the snapshot's canary"),
        "{}",
        logs.contents()
    );
}

#[tokio::test(start_paused = true)]
async fn a_restore_of_a_snapshot_without_a_canary_says_none_was_recorded() {
    let bed = Bed::healthy();
    let snapshots = bed.three_snapshots();
    let report = restored(
        bed.restore(json!({"snapshot": exact(&snapshots[2].0.object)}))
            .await,
    );
    assert_eq!(report.canary, crate::restore::CanaryCheck::NotRecorded);
}
