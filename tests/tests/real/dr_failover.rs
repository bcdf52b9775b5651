//! dr-failover against two real OpenBao clusters (TLS) and moto in two regions: the
//! primary's backup copied to the DR region, the primary down, an alarm delivered, and
//! the warm standby serving the primary's data with the DNS record switched, the primary
//! group fenced and the operators notified; the same alarm in the other delivery forms
//! changes nothing, an OK alarm does nothing.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use shared::{
    aws::{AsgCapacity, AsgFleet, Route53Records, SsmParameters},
    backup::BackupOutcome,
    cluster::{
        dr_ports::{DnsRecords, DnsTarget, GroupCapacity},
        ports::ParameterStore,
    },
    config::{ClusterSettings, Env},
    failover::{record::Phase, FailoverConfig, FailoverOutcome},
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

/// Sends `events/dr-failover/<name>` to `failover`.
async fn send(
    failover: &shared::failover::DeployedFailover,
    name: &str,
) -> Result<FailoverOutcome> {
    failover
        .handle(&sample(name)?, name, deadline())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))
}

#[tokio::test]
async fn an_alarm_fails_the_primary_over_to_the_warm_standby_once() -> Result<()> {
    let logs = capture_logs();
    let (mut primary, standby) = tokio::try_join!(SnapshotBed::start(1), SnapshotBed::start(1))?;
    let dr_key = primary.dr.kms_key.clone();

    // The primary's shares in the DR region (node-lifecycle's reconcile), then a backup
    // with its DR copy catalogued in the DR table.
    let lifecycle = primary
        .bed
        .function(&[("DR_REGION", DR_REGION), ("DR_KMS_KEY_ID", dr_key.as_str())])?;
    lifecycle.reconcile(deadline()).await?;
    primary
        .write("kv/app", json!({"value": "from-primary"}))
        .await?;
    let outcome = primary
        .backup(&[])?
        .handle(&json!({"reason": "before the outage"}), "req-1", deadline())
        .await;
    let Ok(BackupOutcome::BackedUp(report)) = &outcome else {
        bail!("expected a backup, got {outcome:?}");
    };
    let copy = report.snapshot.dr_copy.clone().context("a DR copy")?;

    // The standby's own parameters as its stack in the DR region holds them: its shares
    // and dr-failover's AppRole credentials.
    let dr_ssm = SsmParameters::from_sdk(&primary.dr.sdk);
    for (name, value) in standby.bed.stored_secrets().await? {
        let wanted = name.contains("/unseal/") || name.contains("/approle/dr-failover/");
        if wanted {
            dr_ssm
                .put_new_secret(&name, &shared::secret::Secret::new(value), &dr_key)
                .await?;
        }
    }

    // The DNS record points at the primary; the operators' topic exists.
    let zone = primary.dr.create_hosted_zone("example.com").await?;
    let records = Route53Records::from_sdk(&primary.dr.sdk, zone.clone(), RECORD);
    records
        .point_at(&DnsTarget::cname("vault-primary.example.com", 60)?)
        .await?;
    let topic = primary
        .dr
        .create_topic(&testbed::unique_name("ops"))
        .await?;

    // The primary is down.
    let primary_addr = primary.bed.bao.node_addrs()?.remove(0);
    primary.bed.bao.kill(0);

    let mut env = standby.env();
    for (name, value) in [
        ("SNAPSHOT_BUCKET", primary.dr.bucket.as_str()),
        ("SNAPSHOT_KMS_KEY_ID", dr_key.as_str()),
        ("STATE_TABLE", primary.dr.table.as_str()),
        ("KMS_KEY_ID", dr_key.as_str()),
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
        ("NOTIFY_TOPIC_ARN", topic.as_str()),
    ] {
        env.retain(|(k, _)| k != name);
        if !value.is_empty() {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = FailoverConfig::from(&env)?;
    // The standby's group lives in the test bed's first region (moto keeps both beds'
    // groups there); everything else is the DR region's.
    let standby_cluster = ClusterSettings::from_env(&env)?;
    let mut restorer = shared::restore::from_sdk(&primary.dr.sdk, config.restore.clone())?;
    restorer.fleet = Box::new(AsgFleet::from_sdk(
        &standby.bed.region.sdk,
        standby_cluster.clone(),
    ));
    let mut failover = shared::failover::from_sdk(&primary.dr.sdk, config)?;
    failover.restorer = Box::new(restorer);
    failover.standby_fleet = Box::new(AsgFleet::from_sdk(&standby.bed.region.sdk, standby_cluster));
    failover.standby_group = Box::new(AsgCapacity::from_sdk(
        &standby.bed.region.sdk,
        standby.bed.region.asg.clone(),
    ));
    failover.primary_group = Box::new(AsgCapacity::from_sdk(
        &primary.bed.region.sdk,
        primary.bed.region.asg.clone(),
    ));

    // The plan first: it names the DR copy and changes nothing.
    let plan = send(&failover, "plan.json").await?;
    let FailoverOutcome::Planned(plan) = plan else {
        bail!("expected a plan, got {plan:?}");
    };
    assert_eq!(plan.snapshot.map(|s| s.object), Some(copy.clone()));
    assert!(!plan.primary.healthy, "{:?}", plan.primary);
    assert!(plan.blocking.is_empty(), "{:?}", plan.blocking);

    let started = std::time::Instant::now();
    let outcome = failover
        .handle(&sample("eventbridge-composite.json")?, "req-2", deadline())
        .await;
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
    // The standby holds the primary's data, under the primary's keys.
    let as_primary = SnapshotBed {
        root: primary.root.clone(),
        ..standby
    };
    assert_eq!(as_primary.kv("app").await?.as_deref(), Some("from-primary"));
    // DNS switched, the primary's group asked to be empty.
    assert_eq!(
        records.current().await?,
        Some(DnsTarget::cname("vault-dr.example.com", 60)?)
    );
    let fenced = AsgCapacity::from_sdk(&primary.bed.region.sdk, primary.bed.region.asg.clone())
        .capacity()
        .await?;
    assert_eq!((fenced.min, fenced.desired), (0, 0));

    // SNS took the notification (what the topic received is read back in the
    // notifier's own contract test: moto's state dump fails once this test's buckets
    // hold snapshots).
    assert_eq!(
        record.phases.last().map(|p| p.detail.as_str()),
        Some("the operators' topic was told")
    );

    // The same alarm in the other forms: nothing more. An OK alarm: nothing.
    for form in ["alarm-action-metric.json", "sns-metric.json"] {
        let again = send(&failover, form).await?;
        assert!(
            matches!(again, FailoverOutcome::AlreadyFailedOver(_)),
            "{form}: {again:?}"
        );
    }
    let ok = send(&failover, "sns-ok.json").await?;
    assert!(matches!(ok, FailoverOutcome::Ignored { .. }), "{ok:?}");

    let mut secrets = as_primary.bed.stored_secret_values().await?;
    secrets.extend(primary.bed.stored_secret_values().await?);
    testbed::assert_no_secret(&secrets, &[&logs.contents(), &format!("{outcome:?}")]);
    Ok(())
}
