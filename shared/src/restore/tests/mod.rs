//! snapshot-restore over the fakes, with tokio's clock paused: each selector choosing its
//! snapshot (`choose.rs`); each refusal leaving the cluster, the bucket, the catalog and
//! the lock as they were (`refusals.rs`); and restores carried out, with the safety
//! snapshot taken first, the cluster holding the snapshot's data after, and what a failure
//! after the send leaves behind (`restored.rs`).

mod choose;
mod rebuilt;
mod refusals;
mod restored;

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::*;
use crate::{
    config::{AuthSettings, Env},
    keys::{KeyLayout, ShareKind},
    snapshots::{catalog::CatalogEntry, store::Location},
    testing::{
        good_snapshot, sha256_hex, FakeCatalog, FakeCluster, FakeFleet, FakeLocks, FakeParameters,
        FakeS3,
    },
};

const BUCKET: &str = "snapshots";
const REGION: &str = "eu-west-1";
const ROLE_ID: &str = "role-canary";
const SECRET_ID: &str = "secret-canary";
const NODES: [&str; 3] = ["i-1", "i-2", "i-3"];

/// snapshot-restore over the fakes, and a handle on every port a test reads back. The
/// cluster is `FakeCluster::healthy` (cluster id `c-1`, `i-1` active) unless a test
/// builds another.
struct Bed {
    function: SnapshotRestore<FakeCluster, FakeParameters>,
    s3: FakeS3,
    catalog: FakeCatalog,
    locks: Arc<FakeLocks>,
}

impl Bed {
    /// `cluster`, whose nodes named in `members` are the group's in-service instances.
    fn over(cluster: FakeCluster, members: &[&str]) -> Self {
        let env = Env::from_pairs([
            ("CLUSTER_NAME", "prod"),
            ("ASG_NAME", "vault-prod"),
            ("STATE_TABLE", "state"),
            ("SNAPSHOT_BUCKET", BUCKET),
        ]);
        let config = RestoreConfig::from(&env).expect("config");
        let s3 = FakeS3::default();
        let catalog = FakeCatalog::default();
        let locks = Arc::new(FakeLocks::default());
        let function = SnapshotRestore {
            snapshots: config.backup.backup,
            fleet: Box::new(FakeFleet::of(&cluster, members)),
            vault: cluster,
            login: VaultLogin::new(
                AuthSettings::AppRole {
                    mount: "approle".into(),
                    role_id_parameter: "/r".into(),
                    secret_id_parameter: "/s".into(),
                },
                FakeParameters::with(&[("/r", ROLE_ID), ("/s", SECRET_ID)]),
            ),
            locks: Box::new(locks.clone()),
            catalog: Box::new(catalog.clone()),
            store: Box::new(s3.bucket(REGION, BUCKET)),
            parameters: FakeParameters::default(),
            settings: config.restore,
        };
        Self {
            function,
            s3,
            catalog,
            locks,
        }
    }

    /// A healthy cluster of three nodes, every one a member.
    fn healthy() -> Self {
        Self::over(FakeCluster::healthy(&NODES), &NODES)
    }

    fn cluster(&self) -> &FakeCluster {
        &self.function.vault
    }

    /// Stores `bytes` as a new version of `key` in the bucket; returns its location.
    fn put(&self, key: &str, bytes: &[u8]) -> Location {
        let version = self.s3.put(BUCKET, key, bytes.to_vec());
        Location {
            region: REGION.into(),
            bucket: BUCKET.into(),
            key: key.into(),
            version_id: Some(version),
        }
    }

    /// Stores `bytes` (a snapshot at Raft index `index`) under `cluster`'s folder and
    /// catalogues them as a snapshot of that cluster (cluster id `cluster_id`) taken
    /// `hours_ago`.
    fn catalogued(
        &self,
        (cluster, cluster_id): (&str, &str),
        bytes: &[u8],
        index: u64,
        hours_ago: i64,
    ) -> CatalogEntry {
        let key = format!("vault-lifecycle/{cluster}/{hours_ago}h-ago.snap");
        let entry = CatalogEntry {
            cluster: cluster.into(),
            taken_at: Utc::now() - chrono::Duration::hours(hours_ago),
            object: self.put(&key, bytes),
            dr_copy: None,
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
            index,
            term: 2,
            state_size: 2000,
            cluster_id: cluster_id.into(),
            server_version: "2.7.2".into(),
            kind: BackupKind::Scheduled,
            reason: None,
            share_generation: None,
            database_generation: None,
            canary: None,
            drill: None,
        };
        futures::executor::block_on(self.catalog.put(&entry)).expect("put");
        entry
    }

    /// Three snapshots of this cluster, at Raft index 10, 20 and 30, taken 30, 20 and 10
    /// hours ago (oldest first), with their bytes.
    fn three_snapshots(&self) -> Vec<(CatalogEntry, Vec<u8>)> {
        [(10, 30), (20, 20), (30, 10)]
            .into_iter()
            .map(|(index, hours_ago)| {
                let bytes = good_snapshot(index, 2000);
                let entry = self.catalogued(("prod", "c-1"), &bytes, index, hours_ago);
                (entry, bytes)
            })
            .collect()
    }

    /// Puts `shares` in SSM as `cluster`'s unseal shares 1, 2, ...
    fn store_shares(&self, cluster: &str, shares: &[String]) {
        let keys = KeyLayout::new("/vault-lifecycle", cluster);
        let mut values = self.function.parameters.values.lock().expect("lock");
        for (n, share) in shares.iter().enumerate() {
            values.insert(keys.share(ShareKind::Unseal, n + 1), share.clone());
        }
    }

    async fn restore(&self, request: Value) -> Result<RestoreOutcome, FunctionError> {
        self.function.handle(&request, "req-1", deadline()).await
    }

    /// What a refused request must leave as it was.
    fn state(&self) -> Observed {
        let mut versions = self.s3.versions(BUCKET);
        versions.sort();
        let cluster = self.cluster().state();
        Observed {
            versions,
            entries: self.catalog.entries.lock().expect("lock").clone(),
            restore_records: self.catalog.restores.lock().expect("lock").len(),
            data: cluster.data.clone(),
            installed: cluster.restores.len(),
            sealed: cluster.nodes.values().filter(|n| n.sealed).count(),
            locks: self.locks.held.lock().expect("lock").clone(),
        }
    }

    /// Nothing changed since `before`, and the cluster was asked for no snapshot, sent
    /// none, and saw no login.
    fn unchanged_since(&self, before: &Observed) {
        assert_eq!(&self.state(), before);
        let calls = self.cluster().state().calls.clone();
        assert!(
            !calls.iter().any(|c| ["GET", "POST", "login", "unseal"]
                .iter()
                .any(|call| c.starts_with(call))),
            "the cluster was reached: {calls:?}"
        );
    }
}

/// The state a refusal must not change.
#[derive(Debug, PartialEq)]
struct Observed {
    versions: Vec<(String, String)>,
    entries: Vec<CatalogEntry>,
    restore_records: usize,
    data: Vec<u8>,
    installed: usize,
    sealed: usize,
    locks: std::collections::BTreeMap<String, (String, std::time::SystemTime)>,
}

fn exact(location: &Location) -> Value {
    json!({"key": location.key, "version_id": location.version_id})
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(900)
}

/// The report of a restore, or a panic naming what came instead.
fn restored(outcome: Result<RestoreOutcome, FunctionError>) -> RestoreReport {
    match outcome {
        Ok(RestoreOutcome::Restored(report)) => *report,
        other => panic!("expected a restore, got {other:?}"),
    }
}
