//! moto server as AWS, and the fixtures a cluster needs in each region (a failover's
//! hosted zone and topic are in `moto/dr.rs`).
//!
//! moto is started through `tests/moto_server.py`, which adds CompleteLifecycleAction and
//! RecordLifecycleActionHeartbeat, holds instances in `Pending:Wait`/`Terminating:Wait`
//! while a hook is pending, and lists lifecycle actions at `/_testbed/lifecycle-actions`
//! so tests can build the events AWS would send and assert what the functions completed.

use std::{net::IpAddr, process::Command, time::Duration};

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, LifecycleState};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_ec2::types::{RequestLaunchTemplateData, Tag};
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::{poll_until, process::Managed, repo_root, venv};

mod dr;

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _process: Option<Managed>,
    _dir: Option<tempfile::TempDir>,
}

static SHARED: OnceCell<Moto> = OnceCell::const_new();

impl Moto {
    /// The moto of this test run: `TESTBED_MOTO_URL` when `cargo xtask test` started one
    /// for every test process, else one started by this process on first use. Tests keep
    /// apart through unique names, never by resetting moto.
    pub async fn shared() -> Result<&'static Moto> {
        SHARED
            .get_or_try_init(|| async {
                match std::env::var("TESTBED_MOTO_URL") {
                    Ok(url) if !url.is_empty() => Ok(Moto {
                        url,
                        _process: None,
                        _dir: None,
                    }),
                    _ => Moto::start().await,
                }
            })
            .await
    }

    /// Starts a private moto server. It exits by itself when this process dies.
    pub async fn start() -> Result<Moto> {
        let dir = tempfile::Builder::new().prefix("moto-").tempdir()?;
        let log = dir.path().join("moto.log");
        let mut command = Command::new(venv().join("bin/python"));
        command.arg(repo_root().join("tests/moto_server.py")).args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]);
        let process = Managed::spawn("moto", command, &log)?;
        let url = poll_until(
            "moto to print its ready line",
            Duration::from_secs(60),
            || {
                let log = log.clone();
                async move {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    Ok(text
                        .lines()
                        .find_map(|l| l.strip_prefix("moto ready "))
                        .map(|u| u.trim().to_owned()))
                }
            },
        )
        .await?;
        Ok(Moto {
            url,
            _process: Some(process),
            _dir: Some(dir),
        })
    }

    /// SDK configuration for `region` pointing at this server, with dummy credentials.
    pub async fn sdk(&self, region: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "testbed",
            ))
            .load()
            .await
    }

    /// The environment variables a function needs to reach this moto in `region`.
    pub fn env(&self, region: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_REGION", region),
            ("AWS_DEFAULT_REGION", region),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Every lifecycle action moto has seen, oldest first (all regions).
    pub async fn lifecycle_actions(&self) -> Result<Vec<LifecycleActionRecord>> {
        #[derive(Deserialize)]
        struct Answer {
            actions: Vec<LifecycleActionRecord>,
        }
        let answer: Answer = reqwest::get(format!("{}/_testbed/lifecycle-actions", self.url))
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer.actions)
    }

    /// Puts `instance` of `group` in the wait state `state` for `transition`
    /// (`autoscaling:EC2_INSTANCE_LAUNCHING` or `..._TERMINATING`), as Auto Scaling does
    /// with a warm pool (which moto lacks); returns the new pending actions, one per hook.
    pub async fn put_in_wait(
        &self,
        region: &str,
        group: &str,
        instance: &str,
        transition: &str,
        state: &str,
        (origin, destination): (&str, &str),
    ) -> Result<Vec<LifecycleActionRecord>> {
        #[derive(Deserialize)]
        struct Answer {
            actions: Vec<LifecycleActionRecord>,
        }
        let body = serde_json::json!({
            "region": region, "group": group, "instance_id": instance,
            "transition": transition, "state": state,
            "origin": origin, "destination": destination,
        });
        let answer: Answer = reqwest::Client::new()
            .post(format!("{}/_testbed/lifecycle-wait", self.url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer.actions)
    }
}

/// One lifecycle action as the moto launcher recorded it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LifecycleActionRecord {
    /// The region.
    pub region: String,
    /// The Auto Scaling group.
    pub group: String,
    /// The hook.
    pub hook: String,
    /// The instance.
    pub instance_id: String,
    /// `autoscaling:EC2_INSTANCE_LAUNCHING` or `..._TERMINATING`.
    pub transition: String,
    /// The action's token.
    pub token: String,
    /// `pending` or `completed`.
    pub state: String,
    /// `CONTINUE` or `ABANDON` once completed.
    pub result: Option<String>,
    /// Heartbeats recorded.
    pub heartbeats: u32,
    /// `Origin` of the event, for the warm pool's actions (`EC2`, `AutoScalingGroup`,
    /// `WarmPool`); absent for a group without a warm pool.
    #[serde(default)]
    pub origin: Option<String>,
    /// `Destination` of the event, for the warm pool's actions.
    #[serde(default)]
    pub destination: Option<String>,
}

/// Everything one cluster has in one region: a versioned bucket, the table, a KMS key,
/// and an Auto Scaling group.
pub struct RegionFixture {
    /// The region.
    pub region: String,
    /// SDK configuration for it.
    pub sdk: SdkConfig,
    /// The snapshot bucket (versioned).
    pub bucket: String,
    /// The state table.
    pub table: String,
    /// The KMS key's id.
    pub kms_key: String,
    /// The Auto Scaling group.
    pub asg: String,
}

impl RegionFixture {
    /// Creates bucket, table and key named after `name` in `region`; the group is created
    /// by [`RegionFixture::create_asg`].
    pub async fn create(moto: &Moto, region: &str, name: &str) -> Result<Self> {
        let sdk = moto.sdk(region).await;
        let fixture = Self {
            region: region.to_owned(),
            bucket: format!("{name}-snapshots-{region}"),
            table: format!("{name}-state"),
            kms_key: create_kms_key(moto, region).await?,
            asg: format!("{name}-asg"),
            sdk,
        };
        fixture.create_bucket().await?;
        fixture.create_table().await?;
        Ok(fixture)
    }

    async fn create_bucket(&self) -> Result<()> {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        );
        let mut create = s3.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            let location = aws_sdk_s3::types::BucketLocationConstraint::from(self.region.as_str());
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(location)
                    .build(),
            );
        }
        create.send().await.context("create bucket")?;
        s3.put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .context("enable versioning")?;
        Ok(())
    }

    async fn create_table(&self) -> Result<()> {
        let dynamo = aws_sdk_dynamodb::Client::new(&self.sdk);
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        dynamo
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .send()
            .await
            .context("create table")?;
        dynamo
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await
            .context("enable TTL")?;
        Ok(())
    }

    /// Creates the group with `size` instances from a launch template, with launch and
    /// terminate lifecycle hooks when `hooks`; returns the instance ids, sorted.
    ///
    /// The group launches into a subnet of its own inside 127.0.0.0/8, so moto hands its
    /// instances loopback private IPs (127.a.b.4, .5, ...): a node started on its
    /// instance's private IP is reached at the very address the functions build from
    /// DescribeInstances, and production code needs to know nothing of the test bed.
    pub async fn create_asg(&self, size: i32, hooks: bool) -> Result<Vec<String>> {
        let ec2 = aws_sdk_ec2::Client::new(&self.sdk);
        let subnet = self.create_loopback_subnet(&ec2).await?;
        let image = ec2
            .describe_images()
            .send()
            .await?
            .images()
            .first()
            .and_then(|i| i.image_id().map(str::to_owned))
            .context("moto lists no AMI")?;
        let template = format!("{}-template", self.asg);
        ec2.create_launch_template()
            .launch_template_name(&template)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(image)
                    .instance_type("t3.small".into())
                    .build(),
            )
            .send()
            .await
            .context("create launch template")?;
        let autoscaling = aws_sdk_autoscaling::Client::new(&self.sdk);
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&self.asg)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(&template)
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size(10)
            .desired_capacity(if hooks { 0 } else { size })
            .vpc_zone_identifier(subnet)
            .send()
            .await
            .context("create auto scaling group")?;
        if hooks {
            for (name, transition, default) in [
                ("launch", "autoscaling:EC2_INSTANCE_LAUNCHING", "ABANDON"),
                (
                    "terminate",
                    "autoscaling:EC2_INSTANCE_TERMINATING",
                    "CONTINUE",
                ),
            ] {
                autoscaling
                    .put_lifecycle_hook()
                    .auto_scaling_group_name(&self.asg)
                    .lifecycle_hook_name(format!("{}-{name}", self.asg))
                    .lifecycle_transition(transition)
                    .heartbeat_timeout(300)
                    .default_result(default)
                    .send()
                    .await
                    .with_context(|| format!("put {name} hook"))?;
            }
            autoscaling
                .set_desired_capacity()
                .auto_scaling_group_name(&self.asg)
                .desired_capacity(size)
                .send()
                .await?;
        }
        self.instances(None).await
    }

    /// A VPC 127.a.0.0/16 and its subnet 127.a.b.0/24, with `a` and `b` drawn at random
    /// so that parallel test beds sharing one moto do not share addresses (their nodes'
    /// ports differ too). Returns the subnet's id.
    async fn create_loopback_subnet(&self, ec2: &aws_sdk_ec2::Client) -> Result<String> {
        let (a, b) = (fastrand::u8(1..=254), fastrand::u8(..));
        let vpc = ec2
            .create_vpc()
            .cidr_block(format!("127.{a}.0.0/16"))
            .send()
            .await
            .context("create a VPC in 127.0.0.0/8")?;
        let vpc = vpc
            .vpc()
            .and_then(|v| v.vpc_id())
            .context("CreateVpc returned no id")?;
        let subnet = ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(format!("127.{a}.{b}.0/24"))
            .availability_zone(format!("{}a", self.region))
            .send()
            .await
            .context("create a subnet in 127.0.0.0/8")?;
        Ok(subnet
            .subnet()
            .and_then(|s| s.subnet_id())
            .context("CreateSubnet returned no id")?
            .to_owned())
    }

    /// Each instance with its private IP from DescribeInstances, in the order given.
    pub async fn private_ips(&self, ids: &[String]) -> Result<Vec<(String, IpAddr)>> {
        let described = aws_sdk_ec2::Client::new(&self.sdk)
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .context("describe instances")?;
        let known: Vec<(String, IpAddr)> = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                let ip = i.private_ip_address()?.parse().ok()?;
                Some((i.instance_id()?.to_owned(), ip))
            })
            .collect();
        ids.iter()
            .map(|id| {
                known
                    .iter()
                    .find(|(k, _)| k == id)
                    .cloned()
                    .with_context(|| format!("no private IP for {id} in {known:?}"))
            })
            .collect()
    }

    /// The group's instance ids, sorted; only those in `state` when given.
    pub async fn instances(&self, state: Option<LifecycleState>) -> Result<Vec<String>> {
        let autoscaling = aws_sdk_autoscaling::Client::new(&self.sdk);
        let out = autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.asg)
            .send()
            .await?;
        let group = out
            .auto_scaling_groups()
            .first()
            .with_context(|| format!("no group {}", self.asg))?;
        let mut ids: Vec<String> = group
            .instances()
            .iter()
            .filter(|i| {
                state
                    .as_ref()
                    .is_none_or(|s| i.lifecycle_state() == Some(s))
            })
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Tags `instance` with `key` = `value`.
    pub async fn tag(&self, instance: &str, key: &str, value: &str) -> Result<()> {
        aws_sdk_ec2::Client::new(&self.sdk)
            .create_tags()
            .resources(instance)
            .tags(Tag::builder().key(key).value(value).build())
            .send()
            .await
            .context("create tags")?;
        Ok(())
    }

    /// Writes a SecureString parameter under this region's KMS key.
    pub async fn put_secret_parameter(&self, name: &str, value: &str) -> Result<()> {
        aws_sdk_ssm::Client::new(&self.sdk)
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .key_id(&self.kms_key)
            .overwrite(true)
            .send()
            .await
            .with_context(|| format!("put parameter {name}"))?;
        Ok(())
    }
}

/// Creates a symmetric KMS key through moto's JSON API (the product itself never calls
/// KMS directly, so the SDK's KMS crate is not worth its build time here).
async fn create_kms_key(moto: &Moto, region: &str) -> Result<String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(&moto.url)
        .header("X-Amz-Target", "TrentService.CreateKey")
        .header("Content-Type", "application/x-amz-json-1.1")
        // moto reads the region from the credential scope; the signature is not checked.
        .header("Authorization", format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/kms/aws4_request, SignedHeaders=host, Signature=0"))
        .body(r#"{"Description":"testbed","KeyUsage":"ENCRYPT_DECRYPT"}"#)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    match answer["KeyMetadata"]["KeyId"].as_str() {
        Some(id) => Ok(id.to_owned()),
        None => bail!("CreateKey answered {answer}"),
    }
}
