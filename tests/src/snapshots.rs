//! A cluster for snapshot-backup's and snapshot-restore's tests: a cluster built by
//! node-lifecycle from its launch events (so every function's AppRole exists), the root
//! token kept so a test can write and read data as an operator would, and a second
//! region holding the DR bucket.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    aws::SsmParameters,
    backup::{BackupConfig, SnapshotBackup},
    config::{CaSource, Env, VaultSettings},
    ids::NodeAddr,
    lifecycle::{launch::LaunchReport, Outcome},
    restore::{RestoreConfig, SnapshotRestore},
    secret::Secret,
    vault::VaultClient,
};
use tokio::time::Instant;

use crate::{lifecycle::LifecycleBed, moto::RegionFixture, openbao::Seal};

/// The DR region of the snapshot tests.
pub const DR_REGION: &str = "us-west-2";

/// A running cluster with its primary and DR buckets.
pub struct SnapshotBed {
    /// The cluster, its group, bucket, table and key.
    pub bed: LifecycleBed,
    /// The DR region's bucket and key.
    pub dr: RegionFixture,
    /// A raw client for the nodes.
    pub vault: VaultClient,
    /// The root token (kept in SSM by `KEEP_ROOT_TOKEN`), for the operator's writes.
    pub root: Secret,
}

/// The functions a bed's bootstrap makes AppRoles for: every function, as a stack with a
/// DR region deploys them.
pub const APPROLE_FUNCTIONS: &str =
    "node-lifecycle,health-probe,snapshot-backup,snapshot-restore,credential-rotation,dr-failover";

impl SnapshotBed {
    /// A cluster of `size` nodes, initialised, unsealed and bootstrapped by
    /// node-lifecycle, with a `kv` mount (version 1).
    pub async fn start(size: i32) -> Result<Self> {
        Self::start_sealed(size, Seal::Shamir).await
    }

    /// [`Self::start`] with `seal` (a transit seal: auto-unseal, recovery shares).
    pub async fn start_sealed(size: i32, seal: Seal) -> Result<Self> {
        let mut this = Self::unlaunched_sealed(size, seal).await?;
        this.launch_pending().await?;
        this.write("sys/mounts/kv", json!({"type": "kv"})).await?;
        Ok(this)
    }

    /// A group of `size` instances waiting in Pending:Wait for their launch events, each
    /// with its server, nothing initialised and nothing in SSM. At 0 it is a pilot
    /// light: no instance, no server, no init record. The root token is empty until
    /// [`SnapshotBed::launch_pending`] has bootstrapped the cluster.
    pub async fn unlaunched(size: i32) -> Result<Self> {
        Self::unlaunched_sealed(size, Seal::Shamir).await
    }

    /// [`Self::unlaunched`] with `seal`.
    pub async fn unlaunched_sealed(size: i32, seal: Seal) -> Result<Self> {
        let bed = LifecycleBed::start(size, seal).await?;
        let dr = RegionFixture::create(bed.moto, DR_REGION, &bed.cluster).await?;
        let vault = VaultClient::new(&VaultSettings {
            ca: CaSource::Pem(bed.bao.ca.ca_pem.clone()),
            request_timeout: Duration::from_secs(10),
            max_retries: 2,
            init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
        })?;
        Ok(Self {
            bed,
            dr,
            vault,
            root: Secret::new(String::new()),
        })
    }

    /// node-lifecycle on the event of every launch action pending in the group, all at
    /// once as Auto Scaling sends them, as the stack deploys it with every function's
    /// AppRole and the root token kept; then the root token it kept. What each launch
    /// reported, in the order of the actions.
    pub async fn launch_pending(&mut self) -> Result<Vec<LaunchReport>> {
        self.launch_pending_with(&[]).await
    }

    /// [`Self::launch_pending`] with node-lifecycle given `extra` variables too.
    pub async fn launch_pending_with(
        &mut self,
        extra: &[(&str, &str)],
    ) -> Result<Vec<LaunchReport>> {
        let bed = &self.bed;
        let waiting: Vec<_> = bed.pending_launches().await?;
        let functions = waiting
            .iter()
            .map(|_| {
                let mut vars = vec![
                    ("KEEP_ROOT_TOKEN", "true"),
                    // credential-rotation's AppRole too, for the tests of backups
                    // across a rotation, and dr-failover's, for a bed that is a
                    // failover's standby.
                    ("APPROLE_FUNCTIONS", APPROLE_FUNCTIONS),
                ];
                vars.extend_from_slice(extra);
                bed.function(&vars)
            })
            .collect::<Result<Vec<_>>>()?;
        let events: Vec<Value> = waiting.iter().map(LifecycleBed::event).collect();
        let outcomes = join_all(
            functions
                .iter()
                .zip(&events)
                .map(|(f, e)| f.handle(e, Instant::now() + Duration::from_secs(600))),
        )
        .await;
        let mut reports = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Launched(report)) => reports.push(report),
                other => bail!("a launch failed: {other:?}"),
            }
        }
        let root = bed
            .parameter(&format!("{}/root-token", bed.ssm_path()))
            .await?
            .context("KEEP_ROOT_TOKEN keeps the root token")?;
        self.root = Secret::new(root);
        Ok(reports)
    }

    /// The functions' environment: the cluster's, plus both buckets.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.bed.env();
        env.extend(
            [
                ("SNAPSHOT_BUCKET", self.bed.region.bucket.as_str()),
                ("SNAPSHOT_KMS_KEY_ID", self.bed.region.kms_key.as_str()),
                ("DR_REGION", DR_REGION),
                ("DR_BUCKET", self.dr.bucket.as_str()),
                ("DR_KMS_KEY_ID", self.dr.kms_key.as_str()),
                ("DR_STATE_TABLE", self.dr.table.as_str()),
                ("RESTORE_HEALTHY_TIMEOUT_SECS", "120"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    }

    fn with(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env();
        for (k, v) in overrides {
            env.retain(|(name, _)| name != k);
            if !v.is_empty() {
                env.push((k.to_string(), v.to_string()));
            }
        }
        env
    }

    /// snapshot-backup as its `main` builds it, with `overrides` (an empty value unsets).
    pub fn backup(
        &self,
        overrides: &[(&str, &str)],
    ) -> Result<SnapshotBackup<VaultClient, SsmParameters>> {
        let env = self.with(overrides);
        let config = BackupConfig::from(
            &Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            "snapshot-backup",
        )?;
        Ok(shared::backup::from_sdk(&self.bed.region.sdk, config)?)
    }

    /// snapshot-restore as its `main` builds it, with `overrides`.
    pub fn restore(
        &self,
        overrides: &[(&str, &str)],
    ) -> Result<SnapshotRestore<VaultClient, SsmParameters>> {
        let env = self.with(overrides);
        let config = RestoreConfig::from(&Env::from_pairs(
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))?;
        Ok(shared::restore::from_sdk(&self.bed.region.sdk, config)?)
    }

    /// credential-rotation as its `main` builds it, with `overrides`.
    pub fn rotation(
        &self,
        overrides: &[(&str, &str)],
    ) -> Result<shared::rotation::DeployedRotation> {
        let env = self.with(overrides);
        let config = shared::rotation::RotationConfig::from(&Env::from_pairs(
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))?;
        Ok(shared::rotation::from_sdk(&self.bed.region.sdk, config)?)
    }

    /// The node that answers as active now.
    pub async fn active(&self) -> Result<NodeAddr> {
        for node in &self.bed.bao.nodes {
            let addr: NodeAddr = node.api_addr.parse().map_err(anyhow::Error::msg)?;
            if self.vault.health(&addr).await.is_ok_and(|h| h.is_active()) {
                return Ok(addr);
            }
        }
        bail!("no node is active")
    }

    /// Writes `body` at `path` with the root token, through the active node.
    pub async fn write(&self, path: &str, body: Value) -> Result<()> {
        let active = self.active().await?;
        self.raw(&active, Method::POST, path, Some(body)).await?;
        Ok(())
    }

    /// `kv/<key>`'s `value`, read through the active node; `None` when absent.
    pub async fn kv(&self, key: &str) -> Result<Option<String>> {
        let active = self.active().await?;
        let answer = self
            .raw(&active, Method::GET, &format!("kv/{key}"), None)
            .await?;
        Ok(answer.and_then(|v| v["data"]["value"].as_str().map(str::to_owned)))
    }

    async fn raw(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>> {
        let client = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(
                self.bed.bao.ca.ca_pem.as_bytes(),
            )?)
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut request = client
            .request(method, format!("{node}/v1/{path}"))
            .header("X-Vault-Token", self.root.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(if text.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text)?)
        })
    }

    /// An S3 client for `region`'s fixture (path style, as against moto).
    pub fn s3(region: &RegionFixture) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&region.sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Every (key, version id) in `region`'s bucket, paginated.
    pub async fn versions(region: &RegionFixture) -> Result<Vec<(String, String)>> {
        let s3 = Self::s3(region);
        let mut found = Vec::new();
        let mut key_marker = None;
        let mut version_marker = None;
        loop {
            let out = s3
                .list_object_versions()
                .bucket(&region.bucket)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await?;
            for v in out.versions() {
                found.push((
                    v.key().unwrap_or_default().to_owned(),
                    v.version_id().unwrap_or_default().to_owned(),
                ));
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            version_marker = out.next_version_id_marker().map(str::to_owned);
        }
        found.sort();
        Ok(found)
    }
}
