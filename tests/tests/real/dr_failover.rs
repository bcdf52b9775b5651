//! dr-failover against two real OpenBao clusters (TLS) and moto in two regions: the
//! primary's backups copied to the DR region, the primary down, an alarm delivered, and
//! the warm standby serving the primary's data with the DNS record switched, the primary
//! group fenced and the operators notified; the same alarm in the other delivery forms
//! changes nothing, an OK alarm does nothing. A drill proves a copy, marks a corrupted
//! one failed, and a failover then restores the copy before it.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use shared::{
    aws::{AsgCapacity, AsgFleet, DynamoCatalog, Route53Records, SsmParameters},
    backup::BackupOutcome,
    cluster::{
        dr_ports::{DnsRecords, DnsTarget, GroupCapacity},
        ports::ParameterStore,
    },
    config::{ClusterSettings, Env},
    failover::{record::Phase, DeployedFailover, FailoverConfig, FailoverOutcome},
    snapshots::catalog::{Catalog, CatalogEntry},
    testing::capture_logs,
};
use testbed::snapshots::{SnapshotBed, DR_REGION};
use tokio::time::Instant;

const ALARMS: &str = "prod-vault-primary-down,prod-vault-cluster-unhealthy";
const RECORD: &str = "vault.example.com";

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

fn sample(name: &str) -> Result<Value> {
    let path = format!(
        "{}/../events/dr-failover/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&path).context(path)?,
    )?)
}

/// Sends `event` to `failover`.
async fn send(failover: &DeployedFailover, event: Value) -> Result<FailoverOutcome> {
    failover
        .handle(&event, "req", deadline())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))
}

/// A primary with its DR region, a warm standby of one node, and dr-failover as the DR
/// region's stack deploys it (the standby's group in the test bed's first region, where
/// moto keeps both beds' groups).
struct DrBed {
    primary: SnapshotBed,
    standby: SnapshotBed,
    records: Route53Records,
    topic: String,
}

impl DrBed {
    async fn start() -> Result<Self> {
        let (primary, standby) = tokio::try_join!(SnapshotBed::start(1), SnapshotBed::start(1))?;
        let dr_key = primary.dr.kms_key.clone();
        // The primary's shares and AppRole credentials in the DR region (reconcile).
        let lifecycle = primary
            .bed
            .function(&[("DR_REGION", DR_REGION), ("DR_KMS_KEY_ID", dr_key.as_str())])?;
        let reconciled = lifecycle.reconcile(deadline()).await?;
        assert!(!reconciled.dr_approles_copied.is_empty(), "{reconciled:?}");
        // The standby's own parameters, as its stack in the DR region holds them.
        let dr_ssm = SsmParameters::from_sdk(&primary.dr.sdk);
        for (name, value) in standby.bed.stored_secrets().await? {
            if name.contains("/unseal/") || name.contains("/approle/dr-failover/") {
                dr_ssm
                    .put_new_secret(&name, &shared::secret::Secret::new(value), &dr_key)
                    .await?;
            }
        }
        let zone = primary.dr.create_hosted_zone("example.com").await?;
        let records = Route53Records::from_sdk(&primary.dr.sdk, zone, RECORD);
        records
            .point_at(&DnsTarget::cname("vault-primary.example.com", 60)?)
            .await?;
        let topic = primary
            .dr
            .create_topic(&testbed::unique_name("ops"))
            .await?;
        Ok(Self {
            primary,
            standby,
            records,
            topic,
        })
    }

    /// Writes `kv/app` on the primary and backs it up (with its DR copy); the entry.
    async fn backed_up(&self, value: &str) -> Result<CatalogEntry> {
        self.primary
            .write("kv/app", json!({"value": value}))
            .await?;
        let outcome = self
            .primary
            .backup(&[])?
            .handle(&json!({"reason": value}), value, deadline())
            .await;
        let Ok(BackupOutcome::BackedUp(report)) = &outcome else {
            bail!("expected a backup, got {outcome:?}");
        };
        Ok(report.snapshot.clone())
    }

    /// dr-failover, the primary at `primary_api`.
    fn failover(&self) -> Result<DeployedFailover> {
        let primary = &self.primary;
        let dr_key = primary.dr.kms_key.as_str();
        let primary_addr = primary.bed.bao.node_addrs()?.remove(0);
        let zone = self.records.zone().to_owned();
        let mut env = self.standby.env();
        for (name, value) in [
            ("SNAPSHOT_BUCKET", primary.dr.bucket.as_str()),
            ("SNAPSHOT_KMS_KEY_ID", dr_key),
            ("STATE_TABLE", primary.dr.table.as_str()),
            ("KMS_KEY_ID", dr_key),
            ("DR_REGION", ""),
            ("DR_BUCKET", ""),
            ("DR_KMS_KEY_ID", ""),
            ("DR_STATE_TABLE", ""),
            ("PRIMARY_CLUSTER", primary.bed.cluster.as_str()),
            ("PRIMARY_API_ADDR", primary_addr.as_str()),
            ("PRIMARY_REGION", primary.bed.region.region.as_str()),
            ("PRIMARY_ASG_NAME", primary.bed.region.asg.as_str()),
            ("PRIMARY_PROBE_INTERVAL_SECS", "0"),
            ("FAILOVER_ALARMS", ALARMS),
            ("STANDBY_SIZE", "1"),
            ("DNS_ZONE_ID", zone.as_str()),
            ("DNS_RECORD_NAME", RECORD),
            ("DNS_FAILOVER_TARGET", "vault-dr.example.com"),
            ("NOTIFY_TOPIC_ARN", self.topic.as_str()),
        ] {
            env.retain(|(k, _)| k != name);
            if !value.is_empty() {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let config = FailoverConfig::from(&env)?;
        let standby_cluster = ClusterSettings::from_env(&env)?;
        let standby_sdk = &self.standby.bed.region.sdk;
        let mut restorer = shared::restore::from_sdk(&primary.dr.sdk, config.restore.clone())?;
        restorer.fleet = Box::new(AsgFleet::from_sdk(standby_sdk, standby_cluster.clone()));
        let mut failover = shared::failover::from_sdk(&primary.dr.sdk, config)?;
        failover.restorer = Box::new(restorer);
        failover.standby_fleet = Box::new(AsgFleet::from_sdk(standby_sdk, standby_cluster));
        failover.standby_group = Box::new(AsgCapacity::from_sdk(
            standby_sdk,
            self.standby.bed.region.asg.clone(),
        ));
        failover.primary_group = Box::new(self.primary_group());
        Ok(failover)
    }

    fn primary_group(&self) -> AsgCapacity {
        AsgCapacity::from_sdk(
            &self.primary.bed.region.sdk,
            self.primary.bed.region.asg.clone(),
        )
    }

    /// What the standby holds at `kv/app`, read with the primary's root token (after a
    /// restore the standby holds the primary's data and tokens).
    async fn standby_kv(&self) -> Result<Option<String>> {
        let (status, body) = self
            .standby
            .bed
            .bao
            .api(
                0,
                reqwest::Method::GET,
                "kv/app",
                Some(self.primary.root.expose()),
                None,
            )
            .await?;
        Ok((status == 200).then(|| {
            body["data"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }))
    }
}

#[tokio::test]
async fn an_alarm_fails_the_primary_over_to_the_warm_standby_once() -> Result<()> {
    let logs = capture_logs();
    let mut dr = DrBed::start().await?;
    let copy = dr
        .backed_up("from-primary")
        .await?
        .dr_copy
        .context("a DR copy")?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);

    // The plan first: it names the DR copy and changes nothing.
    let FailoverOutcome::Planned(plan) = send(&failover, sample("plan.json")?).await? else {
        bail!("expected a plan");
    };
    assert_eq!(plan.snapshot.map(|s| s.object), Some(copy.clone()));
    assert!(!plan.primary.healthy, "{:?}", plan.primary);
    assert!(plan.blocking.is_empty(), "{:?}", plan.blocking);
    assert_eq!(dr.primary_group().capacity().await?.desired, 1);

    let started = std::time::Instant::now();
    let outcome = send(&failover, sample("eventbridge-composite.json")?).await;
    let took = started.elapsed();
    let Ok(FailoverOutcome::FailedOver(record)) = &outcome else {
        bail!("expected a failover, got {outcome:?}");
    };
    eprintln!("failover from the alarm to DNS switched: {took:?}");
    for phase in &record.phases {
        eprintln!("  {} {} ms: {}", phase.phase, phase.took_ms, phase.detail);
    }
    assert_eq!(
        record.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
        Phase::ALL
    );
    assert_eq!(record.snapshot, copy);
    assert_eq!(dr.standby_kv().await?.as_deref(), Some("from-primary"));
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-dr.example.com", 60)?)
    );
    let fenced = dr.primary_group().capacity().await?;
    assert_eq!((fenced.min, fenced.desired), (0, 0));
    // SNS took the notification (what a topic receives is read back in the notifier's
    // contract test: moto's state dump fails once a test's buckets hold snapshots).
    assert_eq!(
        record.phases.last().map(|p| p.detail.as_str()),
        Some("the operators' topic was told")
    );

    // The same alarm in the other forms: nothing more. An OK alarm: nothing.
    for form in ["alarm-action-metric.json", "sns-metric.json"] {
        let again = send(&failover, sample(form)?).await?;
        assert!(
            matches!(again, FailoverOutcome::AlreadyFailedOver(_)),
            "{form}: {again:?}"
        );
    }
    let ok = send(&failover, sample("sns-ok.json")?).await?;
    assert!(matches!(ok, FailoverOutcome::Ignored { .. }), "{ok:?}");

    let mut secrets = dr.standby.bed.stored_secret_values().await?;
    secrets.extend(dr.primary.bed.stored_secret_values().await?);
    testbed::assert_no_secret(&secrets, &[&logs.contents(), &format!("{outcome:?}")]);
    Ok(())
}

#[tokio::test]
async fn a_corrupted_copy_fails_its_drill_and_the_failover_restores_the_copy_before_it(
) -> Result<()> {
    let mut dr = DrBed::start().await?;
    let older = dr.backed_up("older").await?.dr_copy.context("a DR copy")?;
    let newer = dr.backed_up("newer").await?.dr_copy.context("a DR copy")?;
    let failover = dr.failover()?;

    // The newer copy's bytes no longer match its catalog entry (as if the object had
    // rotted): its drill fails, and it is marked so.
    let catalog = DynamoCatalog::from_sdk(&dr.primary.dr.sdk, dr.primary.dr.table.clone());
    let cluster: shared::ids::ClusterName = dr
        .primary
        .bed
        .cluster
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let mut entry = catalog
        .entries(&cluster)
        .await?
        .into_iter()
        .find(|e| e.object == newer)
        .context("the newer copy's entry")?;
    entry.sha256 = "0".repeat(64);
    catalog.put(&entry).await?;
    let FailoverOutcome::Drilled(drilled) = send(&failover, json!({"action": "drill"})).await?
    else {
        bail!("expected a drill");
    };
    assert_eq!(drilled.snapshot, newer);
    assert!(!drilled.passed, "{drilled:?}");
    assert!(
        drilled.detail.contains("ChecksumMismatch"),
        "{}",
        drilled.detail
    );

    // The next drill proves the older copy (and restores it into the standby).
    let FailoverOutcome::Drilled(drilled) = send(&failover, json!({"action": "drill"})).await?
    else {
        bail!("expected a drill");
    };
    assert_eq!(drilled.snapshot, older);
    assert!(drilled.passed, "{drilled:?}");
    assert!(drilled.last_proven_age_seconds.is_some());
    let marks: Vec<(bool, bool)> = catalog
        .entries(&cluster)
        .await?
        .iter()
        .filter(|e| e.object == older || e.object == newer)
        .map(|e| (e.drill_proven(), e.drill_failed()))
        .collect();
    assert_eq!(
        marks,
        [(true, false), (false, true)],
        "older proven, newer failed"
    );

    // A failover now restores the older copy, not the corrupted newer one.
    dr.primary.bed.bao.kill(0);
    let outcome = send(&failover, sample("alarm-action-composite.json")?).await?;
    let FailoverOutcome::FailedOver(record) = outcome else {
        bail!("expected a failover, got {outcome:?}");
    };
    assert_eq!(record.snapshot, older);
    assert_eq!(dr.standby_kv().await?.as_deref(), Some("older"));
    Ok(())
}
