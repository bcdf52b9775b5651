//! A cluster for node-lifecycle's tests: an Auto Scaling group in moto with launch and
//! terminate hooks, one OpenBao server per instance (node_id = instance id, listening on
//! the instance's private IP and the bed's port), nothing initialised, and the events
//! Auto Scaling would send.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use shared::{
    aws::SsmParameters,
    cluster::ports::{ParameterError, ParameterStore},
    config::Env,
    lambda::FunctionError,
    lifecycle::{launch::LaunchReport, LifecycleConfig, NodeLifecycle, Outcome},
    vault::VaultClient,
};

use crate::{
    moto::{LifecycleActionRecord, Moto, RegionFixture},
    openbao::{BaoCluster, Seal},
    unique_name,
};

/// The region node-lifecycle's tests run in.
pub const REGION: &str = "eu-west-1";

/// An empty cluster waiting for its launch events.
pub struct LifecycleBed {
    /// moto.
    pub moto: &'static Moto,
    /// Bucket, table, key and group.
    pub region: RegionFixture,
    /// One server per instance, none initialised.
    pub bao: BaoCluster,
    /// The cluster's name (also the SSM path's last part).
    pub cluster: String,
}

impl LifecycleBed {
    /// A group of `size` instances waiting in Pending:Wait, each with its server.
    pub async fn start(size: i32, seal: Seal) -> Result<Self> {
        let moto = Moto::shared().await?;
        let cluster = unique_name("lc");
        let region = RegionFixture::create(moto, REGION, &cluster).await?;
        let ids = region.create_asg(size, true).await?;
        let bao = BaoCluster::start_on_instances(&region.private_ips(&ids).await?, seal).await?;
        Ok(Self {
            moto,
            region,
            bao,
            cluster,
        })
    }

    /// The function's environment: moto, the cluster, short waits for a test.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.env(REGION);
        let port = self.bao.port().unwrap_or_default().to_string();
        env.extend(
            [
                ("CLUSTER_NAME", self.cluster.as_str()),
                ("VAULT_PORT", port.as_str()),
                ("ASG_NAME", self.region.asg.as_str()),
                (
                    "VAULT_CACERT",
                    self.bao.ca.ca_file.to_str().unwrap_or_default(),
                ),
                ("STATE_TABLE", self.region.table.as_str()),
                ("KMS_KEY_ID", self.region.kms_key.as_str()),
                ("HEARTBEAT_INTERVAL_SECS", "2"),
                ("VOTER_TIMEOUT_SECS", "90"),
                ("NODE_API_TIMEOUT_SECS", "30"),
                ("REPLACEMENT_TIMEOUT_SECS", "60"),
                ("DEPARTED_PEER_GRACE_SECS", "2"),
                // The functions run on loopback: every login comes from there.
                ("APPROLE_BOUND_CIDRS", "127.0.0.0/8"),
                ("APPROLE_SECRET_ID_TTL_HOURS", "720"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    }

    /// node-lifecycle built in this process against moto and the servers, as its `main`
    /// builds it, with `overrides` on top of [`LifecycleBed::env`].
    pub fn function(
        &self,
        overrides: &[(&str, &str)],
    ) -> Result<NodeLifecycle<VaultClient, SsmParameters>> {
        let mut env = self.env();
        for (k, v) in overrides {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let config = LifecycleConfig::from(&Env::from_pairs(
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))?;
        Ok(shared::lifecycle::from_sdk(&self.region.sdk, config)?)
    }

    /// The lifecycle actions of this group, oldest first.
    pub async fn actions(&self) -> Result<Vec<LifecycleActionRecord>> {
        Ok(self
            .moto
            .lifecycle_actions()
            .await?
            .into_iter()
            .filter(|a| a.group == self.region.asg)
            .collect())
    }

    /// The launch actions waiting (Pending:Wait) for their completion, oldest first.
    pub async fn pending_launches(&self) -> Result<Vec<LifecycleActionRecord>> {
        Ok(self
            .actions()
            .await?
            .into_iter()
            .filter(|a| a.transition.contains("LAUNCHING") && a.state == "pending")
            .collect())
    }

    /// The latest action of `instance` for `transition` (`launch` or `terminate`).
    pub async fn pending(&self, instance: &str, transition: &str) -> Result<LifecycleActionRecord> {
        let stated = match transition {
            "launch" => "LAUNCHING",
            _ => "TERMINATING",
        };
        let actions = self.actions().await?;
        actions
            .iter()
            .rev()
            .find(|a| a.instance_id == instance && a.transition.contains(stated))
            .cloned()
            .with_context(|| format!("no {transition} action for {instance} among {actions:?}"))
    }

    /// The EventBridge event Auto Scaling sends for `action`, with `Origin` and
    /// `Destination` when it is a warm pool's.
    pub fn event(action: &LifecycleActionRecord) -> Value {
        let launching = action.transition.contains("LAUNCHING");
        let mut event = json!({
            "version": "0",
            "id": unique_name("event"),
            "detail-type": if launching { "EC2 Instance-launch Lifecycle Action" } else { "EC2 Instance-terminate Lifecycle Action" },
            "source": "aws.autoscaling",
            "account": "123456789012",
            "time": "2026-11-23T10:00:00Z",
            "region": action.region,
            "resources": [],
            "detail": {
                "LifecycleActionToken": action.token,
                "AutoScalingGroupName": action.group,
                "LifecycleHookName": action.hook,
                "EC2InstanceId": action.instance_id,
                "LifecycleTransition": action.transition,
            }
        });
        for (name, place) in [
            ("Origin", &action.origin),
            ("Destination", &action.destination),
        ] {
            if let Some(place) = place {
                event["detail"][name] = json!(place);
            }
        }
        event
    }

    /// Moves `instance` as a group with a warm pool would, and returns the event of its
    /// launch action (`launch`: into the pool when `destination` is `WarmPool`, out of it
    /// when `origin` is) or terminate action (`terminate`, back into the pool).
    pub async fn warm_pool_event(
        &self,
        instance: &str,
        transition: &str,
        (origin, destination): (&str, &str),
    ) -> Result<Value> {
        let (stated, state) = match (transition, destination) {
            ("launch", "WarmPool") => ("autoscaling:EC2_INSTANCE_LAUNCHING", "Warmed:Pending:Wait"),
            ("launch", _) => ("autoscaling:EC2_INSTANCE_LAUNCHING", "Pending:Wait"),
            // A scale-in that returns the instance to the pool waits in Warmed:Pending:Wait.
            _ => (
                "autoscaling:EC2_INSTANCE_TERMINATING",
                "Warmed:Pending:Wait",
            ),
        };
        let actions = self
            .moto
            .put_in_wait(
                REGION,
                &self.region.asg,
                instance,
                stated,
                state,
                (origin, destination),
            )
            .await?;
        let action = actions.first().context("no hook for the transition")?;
        Ok(Self::event(action))
    }

    /// Adds `count` instances to the group and a server for each; returns their ids.
    pub async fn scale_out(&mut self, count: i32) -> Result<Vec<String>> {
        let before = self.region.instances(None).await?;
        let autoscaling = aws_sdk_autoscaling::Client::new(&self.region.sdk);
        // From the desired capacity, not the instance count: an instance terminating
        // with capacity decremented is still listed, and is not replaced.
        let desired = autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.region.asg)
            .send()
            .await?
            .auto_scaling_groups()
            .first()
            .and_then(|g| g.desired_capacity())
            .context("the group's desired capacity")?;
        autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(&self.region.asg)
            .desired_capacity(desired + count)
            .send()
            .await?;
        let added: Vec<String> = self
            .region
            .instances(None)
            .await?
            .into_iter()
            .filter(|i| !before.contains(i))
            .collect();
        if added.len() != count as usize {
            bail!("expected {count} new instances, got {added:?}");
        }
        for (id, ip) in self.region.private_ips(&added).await? {
            self.bao.add_instance_node(&id, ip).await?;
        }
        Ok(added)
    }

    /// Terminates `instance` through the group (capacity decremented): it waits in
    /// Terminating:Wait for its action.
    pub async fn terminate(&self, instance: &str) -> Result<()> {
        aws_sdk_autoscaling::Client::new(&self.region.sdk)
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(true)
            .send()
            .await?;
        Ok(())
    }

    /// The value of a SecureString parameter, if it exists.
    pub async fn parameter(&self, name: &str) -> Result<Option<String>> {
        let ssm = SsmParameters::from_sdk(&self.region.sdk);
        match ssm.secret(name).await {
            Ok(v) => Ok(Some(v.expose().to_owned())),
            Err(ParameterError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `<SSM_PREFIX>/<cluster>`.
    pub fn ssm_path(&self) -> String {
        format!("/vault-lifecycle/{}", self.cluster)
    }

    /// The values of [`Self::stored_secrets`]: what a leak check looks for.
    pub async fn stored_secret_values(&self) -> Result<Vec<String>> {
        Ok(self
            .stored_secrets()
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every SecureString under the cluster's path, with its value: the canaries a leak
    /// check looks for.
    ///
    /// The marks kept beside the secrets (a generation's in-force time, the root key's
    /// rotation time, the count of database root rotations) are left out: they are
    /// not secret, and a number such as `2` is in every log.
    pub async fn stored_secrets(&self) -> Result<Vec<(String, String)>> {
        let ssm = aws_sdk_ssm::Client::new(&self.region.sdk);
        let mut found = Vec::new();
        let mut pages = ssm
            .get_parameters_by_path()
            .path(self.ssm_path())
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for p in page?.parameters() {
                if let (Some(n), Some(v)) = (p.name(), p.value()) {
                    if !NOT_SECRET.iter().any(|mark| n.ends_with(mark)) {
                        found.push((n.to_owned(), v.to_owned()));
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// Parameters under a cluster's path whose values are not secrets.
const NOT_SECRET: [&str; 3] = [
    "/in-force",
    "/root-key/rotated-at",
    "/database-root/generation",
];

/// node-lifecycle as its `main` builds it against the test bed.
pub type Function = NodeLifecycle<VaultClient, SsmParameters>;

/// Hands `event` to `function` with ten minutes left, as a Lambda invocation would.
pub async fn handle(function: &Function, event: &Value) -> Result<Outcome, FunctionError> {
    function
        .handle(
            event,
            tokio::time::Instant::now() + Duration::from_secs(600),
        )
        .await
}

/// The launch report of `outcome`, or an error saying what came instead.
pub fn launched(outcome: &Result<Outcome, FunctionError>) -> Result<&LaunchReport> {
    match outcome {
        Ok(Outcome::Launched(report)) => Ok(report),
        other => bail!("expected a launch, got {other:?}"),
    }
}

/// Moves the expiry of every lock of `bed`'s cluster to now, as if the invocation that
/// held them had been cut off long enough ago for them to lapse: the tests of a cut-off
/// run need not wait out the deadline and margin a real lock is held for.
pub async fn lapse_locks(bed: &LifecycleBed) -> Result<usize> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .saturating_sub(1);
    let dynamo = aws_sdk_dynamodb::Client::new(&bed.region.sdk);
    let pk = AttributeValue::S(format!("lock#{}", bed.cluster));
    let locks = dynamo
        .query()
        .table_name(&bed.region.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", pk.clone())
        .send()
        .await
        .context("list the cluster's locks")?;
    for lock in locks.items() {
        let sk = lock.get("sk").context("a lock without its name")?;
        dynamo
            .update_item()
            .table_name(&bed.region.table)
            .key("pk", pk.clone())
            .key("sk", sk.clone())
            .update_expression("SET expires_at = :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await
            .context("lapse a lock")?;
    }
    Ok(locks.items().len())
}

/// The state table's records of `bed`'s cluster.
pub fn records(bed: &LifecycleBed) -> Result<shared::aws::DynamoStateRecords> {
    Ok(shared::aws::DynamoStateRecords::new(
        aws_sdk_dynamodb::Client::new(&bed.region.sdk),
        bed.region.table.clone(),
        bed.cluster.parse().map_err(anyhow::Error::msg)?,
    ))
}
