//! dr-failover on fakes: a warm standby of one node, the primary's DR copies in the DR
//! catalog and its shares in the DR region's SSM.

mod canaries;
mod drills;
mod failbacks;
mod runs;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::*;
use crate::{
    cluster::dr_ports::DnsTarget,
    ids::{ClusterName, NodeAddr},
    keys::{KeyLayout, ShareKind},
    snapshots::{
        catalog::{BackupKind, CatalogEntry, DrillResult},
        store::Location,
    },
    testing::{
        FailingNode, FakeCatalog, FakeCluster, FakeClusterRestore, FakeDns, FakeFailoverRecords,
        FakeFleet, FakeGroup, FakeLocks, FakeMetrics, FakeNotifier, FakeParameters, FakePrimary,
        FakeStandbyBackup,
    },
};

const ALARM: &str = "prod-vault-down";

type Failover = DrFailover<FailingNode<FakeCluster>, FakeParameters>;

/// The failover and handles on its fakes.
struct Bed {
    failover: Failover,
    standby: Arc<FakeCluster>,
    primary_group: Arc<FakeGroup>,
    standby_group: Arc<FakeGroup>,
    dns: Arc<FakeDns>,
    notifier: Arc<FakeNotifier>,
    records: Arc<FakeFailoverRecords>,
    restores: Arc<FakeClusterRestore>,
    catalog: FakeCatalog,
    metrics: Arc<FakeMetrics>,
    /// Restores into the primary (a failback).
    primary_restores: Arc<FakeClusterRestore>,
    /// Snapshots of the DR cluster (a failback).
    backups: Arc<FakeStandbyBackup>,
}

fn settings() -> FailoverSettings {
    FailoverSettings {
        primary: "prod".parse::<ClusterName>().expect("name"),
        primary_api: "https://vault.prod.internal:8200"
            .parse::<NodeAddr>()
            .expect("addr"),
        primary_region: "eu-west-1".into(),
        primary_group: "prod-vault".into(),
        probes: 3,
        require_proven: false,
        probe_interval: Duration::from_secs(2),
        alarms: vec![ALARM.into()],
        standby_size: 3,
        lock_ttl: Duration::from_secs(900),
        standby_timeout: Duration::from_secs(600),
        dns: Some(DnsSettings {
            zone_id: "Z1".into(),
            record_name: "vault.example.com".into(),
            target: dr_target(),
            primary_target: Some(primary_target()),
        }),
        topic: Some("arn:aws:sns:eu-central-1:1:ops".into()),
        standby_keys: KeyLayout::new("/vault-lifecycle", "prod-dr"),
        primary_keys: KeyLayout::new("/vault-lifecycle", "prod"),
        kms_key: "dr-key".into(),
        key_counts: (5, 3),
    }
}

fn primary_target() -> DnsTarget {
    DnsTarget::cname("vault-primary.example.com", 60).expect("a host name")
}

fn dr_target() -> DnsTarget {
    DnsTarget::cname("vault-dr.example.com", 60).expect("a host name")
}

/// Shares of the primary, as the DR region keeps them.
fn primary_shares() -> Vec<String> {
    (1..=5).map(|n| format!("primary-share-{n}")).collect()
}

/// A DR copy of the primary's snapshot taken `hours_ago`, at `index`.
fn dr_copy(hours_ago: i64, index: u64) -> CatalogEntry {
    CatalogEntry {
        cluster: "prod".into(),
        taken_at: Utc::now() - chrono::Duration::hours(hours_ago),
        object: Location {
            region: "eu-central-1".into(),
            bucket: "dr-snapshots".into(),
            key: format!("vault-lifecycle/prod/{hours_ago}h.snap"),
            version_id: Some(format!("v{hours_ago}")),
        },
        dr_copy: None,
        sha256: "00".into(),
        bytes: 2000,
        index,
        term: 2,
        state_size: 2000,
        cluster_id: "c-primary".into(),
        server_version: "2.7.2".into(),
        kind: BackupKind::Scheduled,
        reason: None,
        share_generation: Some(1),
        database_generation: None,
        canary: Some(canary_of(hours_ago)),
        drill: None,
    }
}

/// The canary of the snapshot taken `hours_ago`.
fn canary_of(hours_ago: i64) -> String {
    format!("canary-{hours_ago}h")
}

/// What restoring each of the bed's snapshots brings: its canary.
fn canaries() -> Mutex<BTreeMap<String, String>> {
    let mut canaries: BTreeMap<String, String> = [5, 1, 0]
        .into_iter()
        .map(|hours| (dr_copy(hours, 1).object.key, canary_of(hours)))
        .collect();
    canaries.insert(FAILBACK_KEY.into(), canary_of(0));
    Mutex::new(canaries)
}

/// The key of the DR cluster's snapshot a failback takes.
const FAILBACK_KEY: &str = "vault-lifecycle/prod-dr/failback.snap";

impl Bed {
    fn with(primary: FakePrimary) -> Self {
        let standby = Arc::new(FakeCluster::healthy(&["d-1"]).keyed("standby"));
        let catalog = FakeCatalog::default();
        for entry in [dr_copy(5, 40), dr_copy(1, 60)] {
            futures::executor::block_on(crate::snapshots::catalog::Catalog::put(&catalog, &entry))
                .expect("put");
        }
        let keys = KeyLayout::new("/vault-lifecycle", "prod");
        let mut parameters: Vec<(String, String)> = primary_shares()
            .into_iter()
            .enumerate()
            .map(|(n, share)| (keys.generation_share(ShareKind::Unseal, 1, n + 1), share))
            .collect();
        for which in ["role-id", "secret-id"] {
            parameters.push((
                keys.approle("dr-failover", which),
                format!("primary-dr-failover-{which}"),
            ));
        }
        let standby_keys = KeyLayout::new("/vault-lifecycle", "prod-dr");
        for which in ["role-id", "secret-id"] {
            parameters.push((
                standby_keys.approle("dr-failover", which),
                format!("standby-dr-failover-{which}"),
            ));
        }
        for (n, share) in standby.state().shares.clone().into_iter().enumerate() {
            parameters.push((
                standby_keys.generation_share(ShareKind::Unseal, 1, n + 1),
                share,
            ));
        }
        let pairs: Vec<(&str, &str)> = parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let primary_group = Arc::new(FakeGroup::new("prod-vault", 3, 5, 3));
        let standby_group = Arc::new(FakeGroup::new("prod-dr-vault", 0, 5, 1));
        let dns = Arc::new(FakeDns::pointing_at(primary_target()));
        let notifier = Arc::new(FakeNotifier::default());
        let records = Arc::new(FakeFailoverRecords::default());
        let metrics = Arc::new(FakeMetrics::default());
        let restores = Arc::new(FakeClusterRestore {
            standby: standby.clone(),
            cluster_id: "c-primary".into(),
            restored: Default::default(),
            fail_next: Default::default(),
            fail_as: Default::default(),
            applied_index: None,
            canaries: canaries(),
            rebuilds: Default::default(),
        });
        // The fake's one cluster plays the primary too once it serves again: what a
        // failback needs of it is an active node that has applied the DR snapshot.
        let primary_restores = Arc::new(FakeClusterRestore {
            standby: standby.clone(),
            cluster_id: "c-primary".into(),
            restored: Default::default(),
            fail_next: Default::default(),
            fail_as: Default::default(),
            applied_index: Some(150),
            canaries: canaries(),
            rebuilds: Default::default(),
        });
        let backups = Arc::new(FakeStandbyBackup {
            entry: CatalogEntry {
                cluster: "prod-dr".into(),
                object: Location {
                    key: FAILBACK_KEY.into(),
                    ..dr_copy(0, 80).object
                },
                ..dr_copy(0, 120)
            },
            requests: Default::default(),
        });
        let failover = DrFailover {
            primary_fleet: Box::new(FakeFleet::of(&standby, &["d-1"])),
            primary_restorer: Box::new(primary_restores.clone()),
            standby_backup: Box::new(backups.clone()),
            settings: settings(),
            standby_fleet: Box::new(FakeFleet::of(&standby, &["d-1"])),
            vault: FailingNode::shared(standby.clone()),
            standby_group: Box::new(standby_group.clone()),
            primary_group: Box::new(primary_group.clone()),
            primary: Box::new(primary),
            restorer: Box::new(restores.clone()),
            catalog: Box::new(catalog.clone()),
            records: Box::new(records.clone()),
            locks: Box::new(FakeLocks::default()),
            parameters: FakeParameters::with(&pairs),
            dns: Some(Box::new(dns.clone())),
            notifier: Some(Box::new(notifier.clone())),
            metrics: Box::new(metrics.clone()),
        };
        Self {
            failover,
            standby,
            primary_group,
            standby_group,
            dns,
            notifier,
            records,
            restores,
            catalog,
            metrics,
            primary_restores,
            backups,
        }
    }

    fn down() -> Self {
        Self::with(FakePrimary::down())
    }

    async fn send(&self, event: Value) -> Result<FailoverOutcome, FunctionError> {
        self.failover
            .handle(&event, "req-1", Instant::now() + Duration::from_secs(900))
            .await
    }

    fn record(&self) -> Option<FailoverRecord> {
        self.records.record.lock().expect("lock").clone()
    }

    /// The standby as a pilot light raised again after its first use: its one node in
    /// service, answering uninitialised (its node-lifecycle left it so).
    fn standby_emptied(&self) {
        let mut state = self.standby.state();
        for node in state.nodes.values_mut() {
            node.initialised = false;
            node.sealed = true;
        }
        state.leader = None;
    }

    /// A failback asked for, run to its end: the record it archived.
    async fn failed_back(&self) -> FailoverRecord {
        match self
            .send(json!({"action": "failback"}))
            .await
            .expect("failed back")
        {
            FailoverOutcome::FailedBack(record) => record,
            other => panic!("{other:?}"),
        }
    }

    fn restored(&self) -> Vec<Location> {
        self.restores.restored.lock().expect("lock").clone()
    }

    fn dns_points_at_dr(&self) -> bool {
        self.dns.record.lock().expect("lock").as_ref() == Some(&dr_target())
    }
}

/// A CloudWatch alarm action of `alarm` entering `state`.
fn alarm(name: &str, state: &str) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": format!("arn:aws:cloudwatch:eu-central-1:1:alarm:{name}"),
        "accountId": "1",
        "time": "2026-12-01T10:00:00.000+0000",
        "region": "eu-central-1",
        "alarmData": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold Crossed"},
            "previousState": {"value": "OK"},
            "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {"namespace": "VaultLifecycle", "name": "ClusterHealthy"}}}]}
        }
    })
}
