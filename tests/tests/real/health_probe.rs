//! health-probe against a real 3-node OpenBao cluster and moto: what it publishes is read
//! back from moto's CloudWatch, through the API the alarms use. Then in the DR region:
//! the probe of a standby cluster watching a second, primary cluster.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use serde_json::json;
use shared::{
    aws::{AsgFleet, CloudWatchMetrics, SsmParameters},
    cluster::{auth::VaultLogin, policies},
    config::{AuthSettings, CaSource, ClusterSettings, Env, VaultSettings},
    probe::{HealthProbe, ProbeConfig},
    vault::VaultClient,
};
use testbed::{
    lambda::{Invocation, LambdaEmulator},
    moto::{Moto, RegionFixture},
    openbao::{BaoCluster, Seal},
    poll_until,
    snapshots::SnapshotBed,
    unique_name,
};

const REGION: &str = "eu-west-1";
const NAMESPACE: &str = "VaultLifecycle";

/// A healthy 3-node cluster whose nodes are the instances of an ASG in moto, with the
/// probe's AppRole credentials in SSM.
struct Bed {
    name: String,
    aws: RegionFixture,
    bao: BaoCluster,
    secrets: Vec<String>,
}

async fn bed() -> Result<Bed> {
    let moto = Moto::shared().await?;
    let name = unique_name("hp");
    let aws = RegionFixture::create(moto, REGION, &name).await?;
    let ids = aws.create_asg(3, false).await?;
    let mut bao =
        BaoCluster::start_on_instances(&aws.private_ips(&ids).await?, Seal::Shamir).await?;
    let keys = bao.bootstrap().await?;
    let (role_id, secret_id) = bao.approle("health-probe", policies::HEALTH_PROBE).await?;
    let base = format!("/vault-lifecycle/{name}/approle/health-probe");
    aws.put_secret_parameter(&format!("{base}/role-id"), &role_id)
        .await?;
    aws.put_secret_parameter(&format!("{base}/secret-id"), &secret_id)
        .await?;
    let mut secrets = keys.keys.clone();
    secrets.extend([keys.root_token.clone(), role_id, secret_id]);
    Ok(Bed {
        name,
        aws,
        bao,
        secrets,
    })
}

impl Bed {
    fn env(&self) -> Env {
        let port = self.port();
        Env::from_pairs([
            ("CLUSTER_NAME", self.name.as_str()),
            ("ASG_NAME", self.aws.asg.as_str()),
            ("VAULT_PORT", port.as_str()),
        ])
    }

    /// `VAULT_PORT`: the port every node listens on, at its instance's private IP.
    fn port(&self) -> String {
        self.bao.port().unwrap_or_default().to_string()
    }

    /// A probe of this cluster that publishes under the dimension `Cluster=<label>`, so
    /// each phase of a test reads back its own data points, whatever moto's time windows.
    fn probe(
        &self,
        label: &str,
    ) -> Result<HealthProbe<AsgFleet, VaultClient, SsmParameters, CloudWatchMetrics>> {
        let env = self.env();
        let cluster = ClusterSettings::from_env(&env)?;
        let settings = VaultSettings {
            ca: CaSource::Pem(self.bao.ca.ca_pem.clone()),
            request_timeout: Duration::from_secs(5),
            max_retries: 1,
            init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
        };
        Ok(HealthProbe {
            cluster: label.parse().map_err(anyhow::Error::msg)?,
            login: VaultLogin::new(
                AuthSettings::from_env(&env, &cluster.cluster, "health-probe")?,
                SsmParameters::from_sdk(&self.aws.sdk),
            ),
            fleet: AsgFleet::from_sdk(&self.aws.sdk, cluster),
            api: VaultClient::new(&settings)?,
            metrics: CloudWatchMetrics::from_sdk(&self.aws.sdk, NAMESPACE.into()),
            catalog: None,
            primary: None,
        })
    }

    /// The one data point of `metric` under `Cluster=<label>`: `None` when there is none;
    /// an error when there is more than one (a probe publishes each metric once).
    async fn metric(&self, label: &str, metric: &str, node: Option<&str>) -> Result<Option<f64>> {
        match self.stats(label, metric, node).await? {
            None => Ok(None),
            Some((1, min, max)) if min == max => Ok(Some(max)),
            Some(other) => anyhow::bail!(
                "{metric} {node:?}: expected one data point, got (count, min, max) = {other:?}"
            ),
        }
    }

    /// Count, minimum and maximum of the data points of `metric` under `Cluster=<label>`
    /// in the last hour (every label is unique to one test).
    async fn stats(
        &self,
        label: &str,
        metric: &str,
        node: Option<&str>,
    ) -> Result<Option<(u32, f64, f64)>> {
        stats(&self.aws.sdk, label, metric, node).await
    }

    /// Waits until autopilot, asked directly, judges `unhealthy` unhealthy and every other
    /// server healthy: the precondition the probe is then asked to report.
    async fn wait_until_only_unhealthy(&self, unhealthy: &str) -> Result<()> {
        poll_until(
            &format!("autopilot to judge only {unhealthy} unhealthy"),
            Duration::from_secs(60),
            || async move {
                let servers = self.bao.autopilot_servers().await?;
                Ok(servers
                    .iter()
                    .all(|(id, s)| s["healthy"] == json!(id != unhealthy))
                    .then_some(()))
            },
        )
        .await
    }
}

/// Count, minimum and maximum of the data points of `metric` under `Cluster=<label>` in
/// the last hour, as CloudWatch in `sdk`'s region holds them.
async fn stats(
    sdk: &SdkConfig,
    label: &str,
    metric: &str,
    node: Option<&str>,
) -> Result<Option<(u32, f64, f64)>> {
    let mut dimensions = vec![Dimension::builder().name("Cluster").value(label).build()];
    if let Some(node) = node {
        dimensions.push(Dimension::builder().name("Node").value(node).build());
    }
    let out = aws_sdk_cloudwatch::Client::new(sdk)
        .get_metric_statistics()
        .namespace(NAMESPACE)
        .metric_name(metric)
        .set_dimensions(Some(dimensions))
        .start_time((SystemTime::now() - Duration::from_secs(3600)).into())
        .end_time((SystemTime::now() + Duration::from_secs(5)).into())
        .period(3600)
        .statistics(Statistic::Maximum)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::SampleCount)
        .send()
        .await?;
    match out.datapoints() {
        [] => Ok(None),
        [point] => Ok(Some((
            point.sample_count().context("no count")? as u32,
            point.minimum().context("no minimum")?,
            point.maximum().context("no maximum")?,
        ))),
        points => anyhow::bail!("{metric} {node:?}: expected one period, got {points:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_publishes_what_a_sealed_and_a_killed_node_do_to_the_cluster() -> Result<()> {
    let mut bed = bed().await?;
    let ids: Vec<String> = bed.bao.nodes.iter().map(|n| n.node_id.clone()).collect();
    // Each phase publishes under its own Cluster dimension (see `Bed::probe`).
    let phase = |name: &str| format!("{}-{name}", bed.name);

    // Healthy: three unsealed voters, one leader, one failure tolerated.
    let healthy = phase("healthy");
    let report = bed.probe(&healthy)?.run().await?;
    assert_eq!(report.nodes.len(), 3);
    for (metric, node, value) in [
        ("NodesInService", None, 3.0),
        ("NodesUnsealed", None, 3.0),
        ("HealthyVoters", None, 3.0),
        ("FailureTolerance", None, 1.0),
        ("LeaderPresent", None, 1.0),
        ("ClusterHealthy", None, 1.0),
        ("RaftPeersWithoutInstance", None, 0.0),
        ("NodeActive", Some(ids[0].as_str()), 1.0),
        ("NodeVoter", Some(ids[2].as_str()), 1.0),
    ] {
        assert_eq!(
            bed.metric(&healthy, metric, node).await?,
            Some(value),
            "{metric} {node:?} when healthy"
        );
    }

    // One standby sealed: still a leader and quorum, but no failure left to tolerate.
    let active = bed.bao.active_index().await?;
    let sealed = (active + 1) % 3;
    let killed = (active + 2) % 3;
    bed.bao.seal(sealed).await?;
    bed.wait_until_only_unhealthy(&ids[sealed]).await?;
    let one_sealed = phase("one-sealed");
    bed.probe(&one_sealed)?.run().await?;
    for (metric, node, value) in [
        ("NodesReachable", None, Some(3.0)),
        ("NodesUnsealed", None, Some(2.0)),
        ("LeaderPresent", None, Some(1.0)),
        ("HealthyVoters", None, Some(2.0)),
        ("FailureTolerance", None, Some(0.0)),
        ("ClusterHealthy", None, Some(0.0)),
        ("NodeSealed", Some(ids[sealed].as_str()), Some(1.0)),
        ("NodeHealthy", Some(ids[sealed].as_str()), Some(0.0)),
        ("NodeSealed", Some(ids[killed].as_str()), Some(0.0)),
    ] {
        assert_eq!(
            bed.metric(&one_sealed, metric, node).await?,
            value,
            "{metric} {node:?} with one node sealed"
        );
    }

    // And another killed: quorum is lost, the leader steps down; the probe still reports.
    bed.bao.kill(killed);
    poll_until(
        "the last node to step down",
        Duration::from_secs(60),
        || async { Ok((bed.bao.health_code(active).await? != 200).then_some(())) },
    )
    .await?;
    let quorum_lost = phase("quorum-lost");
    let report = bed
        .probe(&quorum_lost)?
        .run()
        .await
        .context("a dead cluster is reported, not a failed probe")?;
    for (metric, node, value) in [
        ("NodesInService", None, Some(3.0)),
        ("NodesReachable", None, Some(2.0)),
        ("NodesUnsealed", None, Some(1.0)),
        ("LeaderPresent", None, Some(0.0)),
        ("AutopilotReadable", None, Some(0.0)),
        ("ClusterHealthy", None, Some(0.0)),
        ("FailureTolerance", None, None),
        ("NodeReachable", Some(ids[killed].as_str()), Some(0.0)),
        ("NodeSealed", Some(ids[killed].as_str()), None),
        ("NodeSealed", Some(ids[sealed].as_str()), Some(1.0)),
        ("NodeReachable", Some(ids[active].as_str()), Some(1.0)),
    ] {
        assert_eq!(
            bed.metric(&quorum_lost, metric, node).await?,
            value,
            "{metric} {node:?} with quorum lost"
        );
    }
    let dead = &report.nodes[killed];
    assert!(
        dead.error
            .as_deref()
            .is_some_and(|e| e.contains("did not answer")),
        "{dead:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probe_runs_under_the_lambda_emulator_with_its_sample_events() -> Result<()> {
    let bed = bed().await?;
    let moto = Moto::shared().await?;
    let ca_file = bed.bao.ca.ca_file.display().to_string();
    let port = bed.port();
    let mut env = moto.env(REGION);
    env.extend(
        [
            ("CLUSTER_NAME", bed.name.as_str()),
            ("ASG_NAME", bed.aws.asg.as_str()),
            ("VAULT_PORT", port.as_str()),
            ("VAULT_CACERT", ca_file.as_str()),
            ("RUST_LOG", "trace"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let mut emulator = LambdaEmulator::start(&env).await?;

    for (count, sample) in [
        (1, "health-probe/schedule.json"),
        (2, "health-probe/scheduler.json"),
    ] {
        let Invocation::Ok(report) = emulator
            .invoke("health-probe", sample, Duration::from_secs(600))
            .await?
        else {
            anyhow::bail!("{sample} failed; emulator output:\n{}", emulator.output());
        };
        assert_eq!(report["summary"]["in_service"], json!(3), "{report}");
        assert_eq!(report["summary"]["failure_tolerance"], json!(1), "{report}");
        assert_eq!(report["summary"]["leader_present"], json!(true), "{report}");
        assert_eq!(
            bed.stats(&bed.name, "HealthyVoters", None).await?,
            Some((count, 3.0, 3.0)),
            "one data point per invocation: {sample}"
        );
    }

    // A misdirected event: a clear, permanent error, and nothing probed or published.
    let Invocation::Err(error) = emulator
        .invoke(
            "health-probe",
            "node-lifecycle/launch.json",
            Duration::from_secs(120),
        )
        .await?
    else {
        anyhow::bail!("a lifecycle event must not probe");
    };
    // cargo-lambda wraps the message across lines behind a frame: read it as one line.
    let error = error
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(error.contains("Permanent.UnrecognisedEvent"), "{error}");
    assert!(error.contains("health-probe does not take an EventBridge event \"EC2 Instance-launch Lifecycle Action\" from aws.autoscaling"), "{error}");
    assert_eq!(
        bed.stats(&bed.name, "NodesInService", None).await?,
        Some((2, 3.0, 3.0)),
        "nothing published for a bad event"
    );

    // Logged at TRACE, yet no share, token or secret ID appears in anything it printed.
    let output = emulator.output();
    assert!(
        output.contains("probed cluster"),
        "the function's logs are captured: {output}"
    );
    for secret in &bed.secrets {
        assert!(
            !output.contains(secret.as_str()),
            "a secret reached the function's output"
        );
    }

    // The probe's policy loses autopilot (Vault applies policy changes to live tokens):
    // a permanent, named error after one fresh login, and health is still published.
    bed.bao
        .root(
            0,
            reqwest::Method::PUT,
            "sys/policies/acl/health-probe",
            Some(json!({"policy": "path \"sys/health\" { capabilities = [\"read\"] }"})),
        )
        .await?;
    let Invocation::Err(denied) = emulator
        .invoke(
            "health-probe",
            "health-probe/schedule.json",
            Duration::from_secs(120),
        )
        .await?
    else {
        anyhow::bail!("a probe without autopilot's policy must fail");
    };
    let denied = denied
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(denied.contains("Permanent.PolicyDenied"), "{denied}");
    assert!(
        denied.contains("sys/storage/raft/autopilot/state"),
        "{denied}"
    );
    assert_eq!(
        bed.stats(&bed.name, "NodesInService", None).await?,
        Some((3, 3.0, 3.0)),
        "health still published"
    );
    assert_eq!(
        bed.stats(&bed.name, "HealthyVoters", None).await?,
        Some((2, 3.0, 3.0)),
        "no autopilot figure when denied"
    );

    // A missing setting stops the binary at start-up with the variable's name.
    let binary = testbed::lambda::function_binary("health-probe");
    let out = std::process::Command::new(&binary)
        .env_clear()
        .env("CLUSTER_NAME", "prod")
        .output()
        .with_context(|| binary.display().to_string())?;
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("ASG_NAME"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_dr_region_health_probe_publishes_whether_the_primary_answers() -> Result<()> {
    let (mut primary, standby) = tokio::try_join!(SnapshotBed::start(1), SnapshotBed::start(1))?;
    let primary_addr = primary.bed.bao.node_addrs()?.remove(0);
    // The standby's stack in the DR region: its CA bundle trusts the primary's
    // certificate too, as the DR stack's must.
    let bundle = format!("{}{}", standby.bed.bao.ca.ca_pem, primary.bed.bao.ca.ca_pem);
    let mut env = standby.bed.env();
    env.retain(|(name, _)| name != "VAULT_CACERT");
    env.extend(
        [
            ("VAULT_CACERT_PEM", bundle.as_str()),
            ("PRIMARY_CLUSTER", primary.bed.cluster.as_str()),
            ("PRIMARY_API_ADDR", primary_addr.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let config = ProbeConfig::from(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))?;
    let probe = shared::probe::from_sdk(&standby.bed.region.sdk, config)?;
    let sdk = &standby.bed.region.sdk;
    let reachable = || stats(sdk, &primary.bed.cluster, "PrimaryReachable", None);

    // The primary serves: 1, under its own cluster name, beside the standby's metrics.
    let report = probe.run().await?;
    let answer = report.primary.as_ref().context("the primary is reported")?;
    assert!(answer.reachable, "{answer:?}");
    assert_eq!(answer.health.as_ref().map(|h| h.code), Some(200));
    assert_eq!(reachable().await?, Some((1, 1.0, 1.0)));
    assert_eq!(
        stats(sdk, &standby.bed.cluster, "LeaderPresent", None).await?,
        Some((1, 1.0, 1.0)),
        "the standby's own metrics are published in the same run"
    );

    // The primary's node is killed: 0, and the probe still succeeds, without waiting on it.
    primary.bed.bao.kill(0);
    let started = std::time::Instant::now();
    let report = probe
        .run()
        .await
        .context("an unreachable primary is a metric, not a failed probe")?;
    let took = started.elapsed();
    let answer = report.primary.as_ref().context("the primary is reported")?;
    assert!(!answer.reachable && answer.health.is_none(), "{answer:?}");
    assert!(
        answer
            .error
            .as_deref()
            .is_some_and(|e| e.contains(primary_addr.as_str())),
        "{answer:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the primary held the probe for {took:?}"
    );
    // Two data points: the 1 before, the 0 now.
    assert_eq!(reachable().await?, Some((2, 0.0, 1.0)));

    let json = serde_json::to_string(&report)?;
    let mut secrets = standby.bed.stored_secret_values().await?;
    secrets.extend(primary.bed.stored_secret_values().await?);
    testbed::assert_no_secret(&secrets, &[&json]);
    Ok(())
}
