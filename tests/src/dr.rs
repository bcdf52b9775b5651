//! A primary cluster with its DR region and a warm standby of one node, and dr-failover
//! as the DR region's stack deploys it: what the failover tests and `bench failover`
//! share.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use shared::{
    aws::{AsgCapacity, AsgFleet, Route53Records, SsmParameters},
    backup::BackupOutcome,
    cluster::{
        dr_ports::{DnsRecords, DnsTarget},
        ports::ParameterStore,
    },
    config::{ClusterSettings, Env},
    failover::{DeployedFailover, FailoverConfig},
    snapshots::catalog::CatalogEntry,
};
use tokio::time::Instant;

use crate::snapshots::{SnapshotBed, DR_REGION};

/// The alarms the failover acts on: those of the samples in `events/dr-failover/`.
pub const ALARMS: &str = "prod-vault-primary-down,prod-vault-cluster-unhealthy";
/// The DNS record clients use.
pub const RECORD: &str = "vault.example.com";

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// `events/dr-failover/<name>`, parsed.
pub fn sample(name: &str) -> Result<Value> {
    let path = format!(
        "{}/../events/dr-failover/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&path).context(path)?,
    )?)
}

/// A primary with its DR region, a warm standby of one node, and dr-failover as the DR
/// region's stack deploys it (the standby's group in the test bed's first region, where
/// moto keeps both beds' groups).
pub struct DrBed {
    /// The primary, with its DR region's bucket, table and key.
    pub primary: SnapshotBed,
    /// The standby (its group in the first region, with the primary's).
    pub standby: SnapshotBed,
    /// The DNS record, pointing at the primary until a failover.
    pub records: Route53Records,
    /// The operators' SNS topic.
    pub topic: String,
}

impl DrBed {
    /// Both clusters, the primary's shares and AppRole credentials copied to the DR
    /// region by its reconcile, the standby's own parameters there, the record and
    /// the topic.
    pub async fn start() -> Result<Self> {
        let (primary, standby) = tokio::try_join!(SnapshotBed::start(1), SnapshotBed::start(1))?;
        let dr_key = primary.dr.kms_key.clone();
        // The primary's shares and AppRole credentials in the DR region (reconcile).
        let lifecycle = primary.bed.function(&[
            ("DR_REGION", DR_REGION),
            ("DR_KMS_KEY_ID", dr_key.as_str()),
            // As the stack sets it with a DR region: dr-failover's AppRole too.
            ("APPROLE_FUNCTIONS", crate::snapshots::APPROLE_FUNCTIONS),
        ])?;
        let reconciled = lifecycle.reconcile(deadline()).await?;
        assert!(
            reconciled
                .dr_approles_copied
                .iter()
                .any(|name| name.contains("/approle/dr-failover/")),
            "{reconciled:?}"
        );
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
        let topic = primary.dr.create_topic(&crate::unique_name("ops")).await?;
        Ok(Self {
            primary,
            standby,
            records,
            topic,
        })
    }

    /// Writes `kv/app` on the primary and backs it up (with its DR copy); the entry.
    pub async fn backed_up(&self, value: &str) -> Result<CatalogEntry> {
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

    /// dr-failover, configured as the standby's stack configures it.
    pub fn failover(&self) -> Result<DeployedFailover> {
        let primary = &self.primary;
        let env = self.failover_env()?;
        let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let config = FailoverConfig::from(&env)?;
        let standby_cluster = ClusterSettings::from_env(&env)?;
        let standby_sdk = &self.standby.bed.region.sdk;
        let mut restorer = shared::restore::from_sdk(&primary.dr.sdk, config.restore.clone())?;
        restorer.fleet = Box::new(AsgFleet::from_sdk(standby_sdk, standby_cluster.clone()));
        let mut backup = shared::backup::from_sdk(&primary.dr.sdk, config.restore.backup.clone())?;
        backup.fleet = Box::new(AsgFleet::from_sdk(standby_sdk, standby_cluster.clone()));
        let mut failover = shared::failover::from_sdk(&primary.dr.sdk, config)?;
        failover.restorer = Box::new(restorer);
        failover.standby_backup = Box::new(backup);
        failover.standby_fleet = Box::new(AsgFleet::from_sdk(standby_sdk, standby_cluster));
        failover.standby_group = Box::new(AsgCapacity::from_sdk(
            standby_sdk,
            self.standby.bed.region.asg.clone(),
        ));
        failover.primary_group = Box::new(self.primary_group());
        Ok(failover)
    }

    /// dr-failover's environment, as the standby's stack sets it; the SDK's region is the
    /// DR region's (the standby's group is the one thing kept elsewhere by the test bed).
    pub fn failover_env(&self) -> Result<Vec<(String, String)>> {
        let primary = &self.primary;
        let dr_key = primary.dr.kms_key.as_str();
        let primary_addr = primary.bed.bao.node_addrs()?.remove(0);
        let zone = self.records.zone().to_owned();
        let primary_port = primary.bed.bao.port().unwrap_or_default().to_string();
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
            ("PRIMARY_VAULT_PORT", primary_port.as_str()),
            ("PRIMARY_PROBE_INTERVAL_SECS", "0"),
            ("FAILOVER_ALARMS", ALARMS),
            ("STANDBY_SIZE", "1"),
            ("DNS_ZONE_ID", zone.as_str()),
            ("DNS_RECORD_NAME", RECORD),
            ("DNS_FAILOVER_TARGET", "vault-dr.example.com"),
            ("DNS_PRIMARY_TARGET", "vault-primary.example.com"),
            ("NOTIFY_TOPIC_ARN", self.topic.as_str()),
        ] {
            env.retain(|(k, _)| k != name);
            if !value.is_empty() {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        // One bundle trusts both clusters: the standby's nodes and the primary it probes.
        let both = format!(
            "{}\n{}",
            self.standby.bed.bao.ca.ca_pem, primary.bed.bao.ca.ca_pem
        );
        env.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "AWS_REGION" | "AWS_DEFAULT_REGION" | "VAULT_CACERT" | "VAULT_CACERT_PEM"
            )
        });
        env.push(("VAULT_CACERT_PEM".to_owned(), both));
        env.push(("AWS_REGION".to_owned(), DR_REGION.to_owned()));
        Ok(env)
    }

    /// dr-failover as [`Self::failover`] builds it, in a region outage: the primary
    /// region's Auto Scaling API does not answer either, so the fence is only recorded
    /// and the primary's nodes survive it.
    pub fn failover_in_an_outage(&self) -> Result<DeployedFailover> {
        let mut failover = self.failover()?;
        let unreachable = self
            .primary
            .bed
            .region
            .sdk
            .to_builder()
            .endpoint_url("http://127.0.0.1:9")
            .build();
        failover.primary_group = Box::new(AsgCapacity::from_sdk(
            &unreachable,
            self.primary.bed.region.asg.clone(),
        ));
        Ok(failover)
    }

    /// The primary region is back: its node restarts sealed, and its node-lifecycle's
    /// reconcile unseals it.
    pub async fn primary_back(&mut self) -> Result<()> {
        self.primary.bed.bao.restart(0).await?;
        let lifecycle = self.primary.bed.function(&[])?;
        let bao = &self.primary.bed.bao;
        crate::poll_until("the primary unsealed", Duration::from_secs(60), || async {
            lifecycle.reconcile(deadline()).await?;
            Ok((bao.health_code(0).await? == 200).then_some(()))
        })
        .await
    }

    /// The primary's group.
    pub fn primary_group(&self) -> AsgCapacity {
        AsgCapacity::from_sdk(
            &self.primary.bed.region.sdk,
            self.primary.bed.region.asg.clone(),
        )
    }

    /// Writes `kv/app` on the standby with the primary's root token (after a failover,
    /// the standby serves the primary's data and tokens).
    pub async fn standby_write(&self, value: &str) -> Result<()> {
        let (status, body) = self
            .standby
            .bed
            .bao
            .api(
                0,
                reqwest::Method::PUT,
                "kv/app",
                Some(self.primary.root.expose()),
                Some(json!({ "value": value })),
            )
            .await?;
        if status >= 300 {
            bail!("writing kv/app on the standby: {status} {body}");
        }
        Ok(())
    }

    /// What the standby holds at `kv/app`, read with the primary's root token (after a
    /// restore the standby holds the primary's data and tokens).
    pub async fn standby_kv(&self) -> Result<Option<String>> {
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
