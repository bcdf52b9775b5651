//! The sandbox (`cargo xtask sandbox` builds the workspace and runs this): the product's
//! story on loopback, driven by the functions.
//!
//! moto as AWS in two regions, a 3-node OpenBao Raft cluster with TLS whose nodes are the
//! instances of an Auto Scaling group, and the functions under `cargo lambda watch`.
//! health-probe then shows its view of every node, read back from CloudWatch as the
//! alarms would. It stays up until Ctrl-C (or exits after the story with `--once`).

use std::{
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use serde_json::Value;
use testbed::{
    lambda::{Invocation, LambdaEmulator},
    moto::{Moto, RegionFixture},
    openbao::{BaoCluster, Seal},
};

const PRIMARY: &str = "eu-west-1";
const DR: &str = "eu-central-1";
const CLUSTER: &str = "sandbox";

fn say(step: &str, start: Instant) {
    println!("[{:>6.1}s] {step}", start.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() -> Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    story(once, Instant::now()).await
}

async fn story(once: bool, start: Instant) -> Result<()> {
    let moto = Moto::start().await?;
    say(
        &format!("moto is AWS at {} (regions {PRIMARY} and {DR})", moto.url),
        start,
    );
    let primary = RegionFixture::create(&moto, PRIMARY, CLUSTER).await?;
    let dr = RegionFixture::create(&moto, DR, CLUSTER).await?;
    for region in [&primary, &dr] {
        say(
            &format!(
                "{}: versioned bucket {}, table {}, KMS key {}",
                region.region, region.bucket, region.table, region.kms_key
            ),
            start,
        );
    }
    let ids = primary.create_asg(3, false).await?;
    say(
        &format!(
            "{PRIMARY}: auto scaling group {} with instances {}",
            primary.asg,
            ids.join(", ")
        ),
        start,
    );

    let mut bao = BaoCluster::start(&ids, Seal::Shamir).await?;
    say(
        "OpenBao: 3 servers started with TLS from a fresh CA (node_id = instance id)",
        start,
    );
    let keys = bao.bootstrap().await?;
    say(
        "OpenBao: initialised (5 shares, threshold 3), unsealed, joined; 3 healthy voters",
        start,
    );
    for (id, node) in ids.iter().zip(&bao.nodes) {
        primary.tag(id, "vault-api-addr", &node.api_addr).await?;
    }
    let (role_id, secret_id) = bao
        .approle("health-probe", shared::cluster::policies::HEALTH_PROBE)
        .await?;
    let base = format!("/vault-lifecycle/{CLUSTER}/approle/health-probe");
    primary
        .put_secret_parameter(&format!("{base}/role-id"), &role_id)
        .await?;
    primary
        .put_secret_parameter(&format!("{base}/secret-id"), &secret_id)
        .await?;
    say(
        &format!("health-probe's AppRole created; its credentials are in SSM under {base}"),
        start,
    );
    let root_file = bao.dir().join("root-token");
    std::fs::write(&root_file, &keys.root_token)?;
    std::fs::set_permissions(&root_file, std::fs::Permissions::from_mode(0o600))?;

    let ca_file = bao.ca.ca_file.display().to_string();
    let mut env = moto.env(PRIMARY);
    env.extend(
        [
            ("CLUSTER_NAME", CLUSTER),
            ("ASG_NAME", primary.asg.as_str()),
            ("VAULT_CACERT", ca_file.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let mut emulator = LambdaEmulator::start(&env).await?;
    say(
        &format!(
            "Lambda runtime emulator (cargo lambda watch) on 127.0.0.1:{}",
            emulator.port
        ),
        start,
    );

    let since = SystemTime::now();
    let report = match emulator
        .invoke(
            "health-probe",
            "health-probe/schedule.json",
            Duration::from_secs(600),
        )
        .await?
    {
        Invocation::Ok(report) => report,
        Invocation::Err(e) => bail!("health-probe failed: {e}"),
    };
    say(
        "health-probe ran (events/health-probe/schedule.json); its view of the cluster:",
        start,
    );
    print_report(&report);
    print_metrics(&primary, since).await?;

    println!("\nTry it yourself (in another terminal, from the repository root):");
    println!("  export PATH=\"$PWD/.tools/venv/bin:$PATH\"");
    println!("  cargo lambda invoke health-probe --data-file events/health-probe/schedule.json --invoke-port {}", emulator.port);
    println!("  cargo lambda invoke health-probe --data-file events/node-lifecycle/launch.json --invoke-port {}   # refused: not its event", emulator.port);
    println!("Talk to the cluster with the bao CLI:");
    println!(
        "  export BAO_ADDR={} BAO_CACERT={ca_file}",
        bao.nodes[0].api_addr
    );
    println!(
        "  export BAO_TOKEN=$(cat {})   # the root token, kept in a 0600 file",
        root_file.display()
    );
    println!("  bao operator raft list-peers");
    println!("Every sample event is listed in events/README.md. node-lifecycle, snapshot-backup, snapshot-restore,");
    println!("credential-rotation and dr-failover join this story as they are built.");
    if once {
        say("--once: stopping and cleaning up", start);
        return Ok(());
    }
    println!("\nUp until Ctrl-C.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    say(
        "stopping the emulator, OpenBao and moto; removing their data",
        start,
    );
    drop(emulator);
    drop(bao);
    Ok(())
}

fn print_report(report: &Value) {
    println!(
        "  {:<22} {:<24} {:>6} {:>7} {:>8} {:>9} {:>8} {:>9}",
        "instance", "address", "health", "sealed", "active", "autopilot", "voter", "contact"
    );
    for node in report["nodes"].as_array().into_iter().flatten() {
        let h = &node["health"];
        let a = &node["autopilot"];
        let show = |v: &Value| {
            if v.is_null() {
                "-".to_owned()
            } else {
                v.to_string().trim_matches('"').to_owned()
            }
        };
        println!(
            "  {:<22} {:<24} {:>6} {:>7} {:>8} {:>9} {:>8} {:>7}ms",
            show(&node["instance"]),
            show(&node["addr"]).trim_start_matches("https://"),
            show(&h["code"]),
            show(&h["sealed"]),
            show(&Value::Bool(h["code"] == 200)),
            if a["healthy"] == Value::Bool(true) {
                "healthy".to_owned()
            } else {
                show(&a["healthy"])
            },
            show(&a["status"]),
            show(&a["last_contact_ms"]),
        );
    }
    let s = &report["summary"];
    println!(
        "  cluster: {} in service, {} unsealed, leader present: {}, healthy voters: {}, failure tolerance: {}",
        s["in_service"], s["unsealed"], s["leader_present"], s["healthy_voters"], s["failure_tolerance"]
    );
}

async fn print_metrics(region: &RegionFixture, since: SystemTime) -> Result<()> {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&region.sdk);
    println!("  CloudWatch (namespace VaultLifecycle, Cluster={CLUSTER}), read back as the alarms see it:");
    let mut line = Vec::new();
    for metric in [
        "NodesInService",
        "NodesUnsealed",
        "HealthyVoters",
        "FailureTolerance",
        "LeaderPresent",
        "ClusterHealthy",
    ] {
        let out = cloudwatch
            .get_metric_statistics()
            .namespace("VaultLifecycle")
            .metric_name(metric)
            .dimensions(Dimension::builder().name("Cluster").value(CLUSTER).build())
            .start_time(since.into())
            .end_time((SystemTime::now() + Duration::from_secs(5)).into())
            .period(3600)
            .statistics(Statistic::Maximum)
            .send()
            .await?;
        let value = out
            .datapoints()
            .first()
            .and_then(|d| d.maximum())
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into());
        line.push(format!("{metric}={value}"));
    }
    println!("    {}", line.join("  "));
    Ok(())
}
