//! A primary cluster with its DR region and a standby, warm (one node) or pilot light (a
//! group at 0, launched when dr-failover raises it), and dr-failover as the DR region's
//! stack deploys it: what the failover tests and `bench failover` share.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use shared::{
    aws::{AsgCapacity, AsgFleet, Route53Records, SsmParameters},
    backup::BackupOutcome,
    cluster::{
        dr_ports::{DnsRecords, DnsTarget},
        ports::{ParameterStore, Stored},
    },
    config::{ClusterSettings, Env},
    failover::{DeployedFailover, FailoverConfig},
    lifecycle::launch::LaunchReport,
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

/// How the standby waits for a failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standby {
    /// One node, initialised and bootstrapped by the standby's node-lifecycle: active
    /// before any failover.
    Warm,
    /// A group at 0: no instance, no server, no init record, none of the standby's
    /// parameters. [`DrBed::launch_standby`] plays Auto Scaling and the standby's
    /// node-lifecycle when dr-failover raises the group.
    PilotLight,
}

/// A primary with its DR region, a standby, and dr-failover as the DR region's stack
/// deploys it (the standby's group in the test bed's first region, where moto keeps both
/// beds' groups).
pub struct DrBed {
    /// The primary, with its DR region's bucket, table and key.
    pub primary: SnapshotBed,
    /// The standby (its group in the first region, with the primary's).
    pub standby: SnapshotBed,
    /// The DNS record, pointing at the primary until a failover.
    pub records: Route53Records,
    /// The operators' SNS topic.
    pub topic: String,
    /// The transit seal both clusters auto-unseal with ([`DrBed::start_auto_unseal`]):
    /// in AWS, a KMS key and its replica in the DR region.
    pub seal: Option<crate::openbao::SealServer>,
}

/// What [`DrBed::launch_standby`] did, with its times from the instance found waiting.
#[derive(Debug)]
pub struct StandbyLaunched {
    /// The instances it launched.
    pub instances: Vec<String>,
    /// node-lifecycle's report of each launch.
    pub launches: Vec<LaunchReport>,
    /// The parameters copied to the DR region.
    pub copied: Vec<String>,
    /// Until each instance's server answered.
    pub server_started: Duration,
    /// Until node-lifecycle completed each launch.
    pub launched: Duration,
    /// Until the parameters were in the DR region.
    pub copied_by: Duration,
}

impl DrBed {
    /// Both clusters, the standby warm: see [`DrBed::start_with`].
    pub async fn start() -> Result<Self> {
        Self::start_with(Standby::Warm).await
    }

    /// Both clusters, the primary's shares and AppRole credentials copied to the DR
    /// region by its reconcile, the standby's own parameters there (none yet for a
    /// pilot light), the record and the topic.
    pub async fn start_with(standby: Standby) -> Result<Self> {
        let standby = async {
            match standby {
                Standby::Warm => SnapshotBed::start(1).await,
                Standby::PilotLight => SnapshotBed::unlaunched(0).await,
            }
        };
        let (primary, standby) = tokio::try_join!(SnapshotBed::start(1), standby)?;
        Self::over(primary, standby, None).await
    }

    /// The primary auto-unsealed by a transit key (its DR region then holds recovery
    /// shares, not unseal shares) and a warm standby: with `standby_too`, auto-unsealed
    /// by the same key (in AWS: a multi-region KMS key, the standby's seal its replica in
    /// the DR region); else Shamir.
    pub async fn start_auto_unseal(standby_too: bool) -> Result<Self> {
        let seal = crate::openbao::SealServer::start().await?;
        let standby_seal = if standby_too {
            seal.seal_for()
        } else {
            crate::openbao::Seal::Shamir
        };
        let (primary, standby) = tokio::try_join!(
            SnapshotBed::start_sealed(1, seal.seal_for()),
            SnapshotBed::start_sealed(1, standby_seal)
        )?;
        Self::over(primary, standby, Some(seal)).await
    }

    async fn over(
        primary: SnapshotBed,
        standby: SnapshotBed,
        seal: Option<crate::openbao::SealServer>,
    ) -> Result<Self> {
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
        let zone = primary.dr.create_hosted_zone("example.com").await?;
        let records = Route53Records::from_sdk(&primary.dr.sdk, zone, RECORD);
        records
            .point_at(&DnsTarget::cname("vault-primary.example.com", 60)?)
            .await?;
        let topic = primary.dr.create_topic(&crate::unique_name("ops")).await?;
        let this = Self {
            primary,
            standby,
            records,
            topic,
            seal,
        };
        this.copy_standby_parameters_to_dr().await?;
        Ok(this)
    }

    /// The standby's shares and dr-failover's AppRole credentials, as the standby's
    /// stack in the DR region holds them: the test bed's node-lifecycle stored them in
    /// the group's region. A parameter already copied is left as it is. The names
    /// copied now.
    async fn copy_standby_parameters_to_dr(&self) -> Result<Vec<String>> {
        let dr_ssm = SsmParameters::from_sdk(&self.primary.dr.sdk);
        let mut copied = Vec::new();
        for (name, value) in self.standby.bed.stored_secrets().await? {
            if name.contains("/unseal/")
                || name.contains("/recovery/")
                || name.contains("/approle/dr-failover/")
            {
                let stored = dr_ssm
                    .put_new_secret(
                        &name,
                        &shared::secret::Secret::new(value),
                        &self.primary.dr.kms_key,
                    )
                    .await?;
                if stored == Stored::Written {
                    copied.push(name);
                }
            }
        }
        Ok(copied)
    }

    /// What Auto Scaling and the standby's stack do once dr-failover has raised a
    /// pilot-light standby's group: waits (up to `timeout`) until an instance of the
    /// group waits in Pending:Wait for its launch action, starts its OpenBao server on
    /// the instance's private IP at once (an instance's EC2 boot is not played), hands
    /// the standby's node-lifecycle the launch event (its first node ever: it
    /// initialises the cluster, stores the shares, bootstraps, completes CONTINUE), then
    /// copies the standby's new shares and dr-failover's AppRole credentials to the DR
    /// region's SSM. (In AWS the standby's node-lifecycle writes them there itself,
    /// before its CONTINUE; here the copy follows it by a few SSM calls.) What it
    /// launched and copied.
    pub async fn launch_standby(&mut self, timeout: Duration) -> Result<StandbyLaunched> {
        let bed = &self.standby.bed;
        let instances = crate::poll_until(
            "an instance of the standby's group waiting for its launch",
            timeout,
            || async {
                let waiting: Vec<String> = bed
                    .pending_launches()
                    .await?
                    .into_iter()
                    .map(|a| a.instance_id)
                    .collect();
                Ok((!waiting.is_empty()).then_some(waiting))
            },
        )
        .await?;
        let started = Instant::now();
        for (id, ip) in bed.region.private_ips(&instances).await? {
            self.standby.bed.bao.add_instance_node(&id, ip).await?;
        }
        let server_started = started.elapsed();
        // As the standby's stack deploys it: a DR standby, whose node launched into a
        // group emptied after its first use is left uninitialised for dr-failover.
        let primary = self.primary.bed.cluster.to_string();
        let launches = self
            .standby
            .launch_pending_with(&[("PRIMARY_CLUSTER", primary.as_str())])
            .await?;
        let launched = started.elapsed();
        let copied = self.copy_standby_parameters_to_dr().await?;
        Ok(StandbyLaunched {
            instances,
            launches,
            copied,
            server_started,
            launched,
            copied_by: started.elapsed(),
        })
    }

    /// The standby's node-lifecycle as its stack in the DR region runs it: its shares
    /// and AppRole credentials read from the DR region's SSM (where a failover adopts
    /// the primary's), its group, records and lifecycle actions where the test bed
    /// keeps them.
    pub fn standby_lifecycle(
        &self,
    ) -> Result<shared::lifecycle::NodeLifecycle<shared::vault::VaultClient, SsmParameters>> {
        let env = self.standby.bed.env();
        let config = shared::lifecycle::LifecycleConfig::from(&Env::from_pairs(
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))?;
        let mut lifecycle =
            shared::lifecycle::from_sdk(&self.standby.bed.region.sdk, config.clone())?;
        let dr_ssm = SsmParameters::from_sdk(&self.primary.dr.sdk);
        lifecycle.login = shared::cluster::auth::VaultLogin::new(config.auth, dr_ssm.clone());
        lifecycle.parameters = dr_ssm;
        Ok(lifecycle)
    }

    /// Plays Auto Scaling and the standby's node-lifecycle ([`Self::standby_lifecycle`])
    /// for the instances a failover's `scaled` phase asked for: waits (at most
    /// `timeout`) until `count` launches are pending, starts each one's server, and runs
    /// node-lifecycle on each launch event. What each launch reported.
    pub async fn launch_scaled_standby(
        &mut self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<LaunchReport>> {
        let lifecycle = self.standby_lifecycle()?;
        launch_in(&mut self.standby.bed, &lifecycle, count, timeout).await
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

    /// The primary's node-lifecycle as its stack runs it with a DR region: its shares
    /// copied there, and its failover record (the fence) read from the DR table.
    pub fn primary_lifecycle(
        &self,
    ) -> Result<shared::lifecycle::NodeLifecycle<shared::vault::VaultClient, SsmParameters>> {
        let primary = &self.primary;
        self.primary.bed.function(&[
            ("DR_REGION", DR_REGION),
            ("DR_KMS_KEY_ID", primary.dr.kms_key.as_str()),
            ("DR_STATE_TABLE", primary.dr.table.as_str()),
            ("APPROLE_FUNCTIONS", crate::snapshots::APPROLE_FUNCTIONS),
        ])
    }

    /// The primary region is back: its node restarts sealed, and its node-lifecycle's
    /// reconcile runs once. What the reconcile reported (while a failover has the
    /// primary fenced and no failback is asked for, it leaves the node sealed).
    pub async fn primary_back(&mut self) -> Result<shared::lifecycle::reconcile::ReconcileReport> {
        self.primary.bed.bao.restart(0).await?;
        Ok(self.primary_lifecycle()?.reconcile(deadline()).await?)
    }

    /// The primary's node-lifecycle reconciles until the primary's node is unsealed and
    /// active.
    pub async fn primary_unsealed(&self) -> Result<()> {
        let lifecycle = self.primary_lifecycle()?;
        let bao = &self.primary.bed.bao;
        crate::poll_until("the primary unsealed", Duration::from_secs(60), || async {
            lifecycle.reconcile(deadline()).await?;
            Ok((bao.health_code(0).await? == 200).then_some(()))
        })
        .await
    }

    /// What Auto Scaling and the primary's node-lifecycle do once a failback has given
    /// the primary's emptied group a node again: waits (up to `timeout`) until an
    /// instance waits in Pending:Wait for its launch, starts its server (fresh data) on
    /// the instance's private IP, and hands the primary's node-lifecycle
    /// ([`Self::primary_lifecycle`], which reads the fence) the launch event. What it
    /// reported.
    pub async fn launch_primary(&mut self, timeout: Duration) -> Result<LaunchReport> {
        let lifecycle = self.primary_lifecycle()?;
        launch_in(&mut self.primary.bed, &lifecycle, 1, timeout)
            .await?
            .pop()
            .context("one launch")
    }

    /// Panics if a secret of either cluster (every SSM parameter both beds hold: shares,
    /// root tokens, AppRole credentials) appears in any of `texts`.
    pub async fn assert_no_secret_in(&self, texts: &[&str]) -> Result<()> {
        let mut secrets = self.standby.bed.stored_secret_values().await?;
        secrets.extend(self.primary.bed.stored_secret_values().await?);
        crate::assert_no_secret(&secrets, texts);
        Ok(())
    }

    /// The primary's failover record in the DR table, as dr-failover keeps it.
    pub async fn failover_record(
        &self,
    ) -> Result<Option<shared::failover::record::FailoverRecord>> {
        use shared::failover::record::FailoverRecords;
        let records = shared::aws::DynamoStateRecords::from_sdk(
            &self.primary.dr.sdk,
            self.primary.dr.table.clone(),
            self.primary
                .bed
                .cluster
                .parse()
                .map_err(anyhow::Error::msg)?,
        );
        Ok(records.current().await?)
    }

    /// The primary's group.
    pub fn primary_group(&self) -> AsgCapacity {
        AsgCapacity::from_sdk(
            &self.primary.bed.region.sdk,
            self.primary.bed.region.asg.clone(),
        )
    }

    /// One call to standby node `index` with the primary's root token: after a restore
    /// the standby holds the primary's data and tokens. Its status and body.
    pub async fn standby_api(
        &self,
        index: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        self.standby
            .bed
            .bao
            .api(index, method, path, Some(self.primary.root.expose()), body)
            .await
    }

    /// Writes `kv/app` on the standby (after a failover, it serves the primary's data).
    pub async fn standby_write(&self, value: &str) -> Result<()> {
        let (status, body) = self
            .standby_api(
                0,
                reqwest::Method::PUT,
                "kv/app",
                Some(json!({ "value": value })),
            )
            .await?;
        if status >= 300 {
            bail!("writing kv/app on the standby: {status} {body}");
        }
        Ok(())
    }

    /// What the standby holds at `kv/app`.
    pub async fn standby_kv(&self) -> Result<Option<String>> {
        let (status, body) = self
            .standby_api(0, reqwest::Method::GET, "kv/app", None)
            .await?;
        Ok((status == 200).then(|| {
            body["data"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }))
    }
}

/// Plays Auto Scaling and a group's node-lifecycle: waits (at most `timeout`) until
/// `count` launches of `bed`'s group are pending, starts each one's server on its
/// instance's private IP (fresh data; an instance's EC2 boot is not played), and hands
/// `lifecycle` each launch event in turn. What each launch reported.
async fn launch_in(
    bed: &mut crate::lifecycle::LifecycleBed,
    lifecycle: &shared::lifecycle::NodeLifecycle<shared::vault::VaultClient, SsmParameters>,
    count: usize,
    timeout: Duration,
) -> Result<Vec<LaunchReport>> {
    let waiting = crate::poll_until("the group's launches to be pending", timeout, || async {
        let waiting = bed.pending_launches().await?;
        Ok((waiting.len() >= count).then_some(waiting))
    })
    .await?;
    let instances: Vec<String> = waiting.iter().map(|a| a.instance_id.clone()).collect();
    for (id, ip) in bed.region.private_ips(&instances).await? {
        bed.bao.add_instance_node(&id, ip).await?;
    }
    let mut reports = Vec::new();
    for action in &waiting {
        let event = crate::lifecycle::LifecycleBed::event(action);
        match lifecycle.handle(&event, deadline()).await {
            Ok(shared::lifecycle::Outcome::Launched(report)) => reports.push(report),
            other => bail!("the launch of {} failed: {other:?}", action.instance_id),
        }
    }
    Ok(reports)
}
