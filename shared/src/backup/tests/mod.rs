//! snapshot-backup over the fakes: its settings (`config.rs`), a snapshot taken from the
//! fake cluster's active node, or refused, with what each run leaves in the bucket, the
//! catalog, the lock and the metrics (`take.rs`), and the runs that find the lock held, a
//! redelivered request, a DR copy to make or retention to apply (`runs.rs`).

mod config;
mod runs;
mod take;

use std::{sync::Arc, time::Duration};

use super::*;
use crate::{
    config::{AuthSettings, Env},
    snapshots::retention::RetentionPolicy,
    testing::{
        good_snapshot, sha256_hex, FakeCatalog, FakeCluster, FakeFleet, FakeLocks, FakeMetrics,
        FakeParameters, FakeS3,
    },
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

const PRIMARY: &str = "primary";
const DR: &str = "dr";
const ROLE_ID: &str = "role-canary";
const SECRET_ID: &str = "secret-canary";

/// snapshot-backup over the fakes, and a handle on every port a test reads back.
struct Bed {
    function: SnapshotBackup<FakeCluster, FakeParameters>,
    s3: FakeS3,
    catalog: FakeCatalog,
    /// The DR region's catalog.
    dr_catalog: FakeCatalog,
    locks: Arc<FakeLocks>,
    metrics: Arc<FakeMetrics>,
    /// This cluster's failover record in the DR region.
    fence: Arc<crate::testing::FakeFailoverRecords>,
}

impl Bed {
    /// `cluster`, whose nodes named in `members` are the group's in-service instances.
    fn over(cluster: FakeCluster, members: &[&str]) -> Self {
        let s3 = FakeS3::default();
        let catalog = FakeCatalog::default();
        let dr_catalog = FakeCatalog::default();
        let locks = Arc::new(FakeLocks::default());
        let metrics = Arc::new(FakeMetrics::default());
        let fence = Arc::new(crate::testing::FakeFailoverRecords::default());
        let function = SnapshotBackup {
            settings: BackupConfig::from(&env(&[]), "snapshot-backup")
                .expect("config")
                .backup,
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
            store: Box::new(s3.bucket("eu-west-1", PRIMARY)),
            dr: Some(Box::new(s3.bucket("eu-central-1", DR))),
            dr_catalog: Some(Box::new(dr_catalog.clone())),
            fence: Some(Box::new(fence.clone())),
            metrics: Box::new(metrics.clone()),
        };
        Self {
            function,
            fence,
            s3,
            catalog,
            dr_catalog,
            locks,
            metrics,
        }
    }

    /// A healthy cluster of which no node is a member: a run that reached the cluster
    /// would fail with `NoActiveNode`.
    fn without_members() -> Self {
        Self::over(FakeCluster::healthy(&["i-1"]), &[])
    }

    /// Copies into the DR bucket lose their second half.
    fn corrupting_dr_copies(mut self) -> Self {
        let mut dr = self.s3.bucket("eu-central-1", DR);
        dr.corrupt_copies = true;
        self.function.dr = Some(Box::new(dr));
        self
    }

    fn cluster(&self) -> &FakeCluster {
        &self.function.vault
    }

    fn entries(&self) -> Vec<CatalogEntry> {
        self.catalog.entries.lock().expect("lock").clone()
    }

    /// A good snapshot stored in the primary bucket and catalogued, taken `hours_ago`.
    fn catalogued(&self, hours_ago: i64) -> CatalogEntry {
        let bytes = good_snapshot(100 + hours_ago as u64, 2000);
        let key = format!("vault-lifecycle/prod/old-{hours_ago}.snap");
        let version = self.s3.put(PRIMARY, &key, bytes.clone());
        let entry = CatalogEntry {
            cluster: "prod".into(),
            taken_at: Utc::now() - chrono::Duration::hours(hours_ago),
            object: Location {
                region: "eu-west-1".into(),
                bucket: PRIMARY.into(),
                key,
                version_id: Some(version),
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
            share_generation: None,
            database_generation: None,
            canary: None,
            drill: None,
        };
        futures::executor::block_on(self.catalog.put(&entry)).expect("put");
        entry
    }

    /// Records that the delivery `id` stored `entry`.
    /// Runs `event` as invocation `request` and expects a backup.
    async fn backed_up(&self, event: &serde_json::Value, request: &str) -> BackupReport {
        match self.function.handle(event, request, deadline()).await {
            Ok(BackupOutcome::BackedUp(report)) => *report,
            other => panic!("expected a backup, got {other:?}"),
        }
    }

    async fn delivered(&self, id: &str, entry: &CatalogEntry) {
        self.catalog
            .put_delivery(&"prod".parse().expect("name"), id, &entry.object)
            .await
            .expect("delivery");
    }

    /// Nothing is stored in either bucket, catalogued or remembered as delivered, and
    /// the lock is free.
    fn stored_nothing(&self) -> bool {
        self.s3.versions(PRIMARY).is_empty()
            && self.s3.versions(DR).is_empty()
            && self.entries().is_empty()
            && self.catalog.deliveries.lock().expect("lock").is_empty()
            && self.locks.held.lock().expect("lock").is_empty()
    }
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
