//! The sandbox (`cargo xtask sandbox` builds the workspace and runs this): the product's
//! story on loopback, driven by the functions.
//!
//! moto as AWS in two regions, three OpenBao servers with TLS whose nodes are the
//! instances of an Auto Scaling group with lifecycle hooks, and the functions' binaries
//! under cargo-lambda's emulator (`testbed::lambda`). The launch events build the cluster
//! through node-lifecycle (init, shares to SSM, bootstrap, join, unseal); then one node is
//! replaced (launch of the replacement, terminate of the old one) while health-probe shows
//! the failure tolerance. Then data is written, snapshot-backup streams a snapshot into S3
//! and copies it to the DR region, the data is changed, and snapshot-restore brings it
//! back (a dry run first). It stays up until Ctrl-C (or exits after the story with
//! `--once`).

use std::{
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use reqwest::Method;
use serde_json::{json, Value};
use testbed::{
    lambda::{Invocation, LambdaEmulator},
    lifecycle::LifecycleBed,
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
    let ids = primary.create_asg(3, true).await?;
    say(
        &format!(
            "{PRIMARY}: auto scaling group {} with launch and terminate hooks; instances {} wait in Pending:Wait",
            primary.asg,
            ids.join(", ")
        ),
        start,
    );
    let mut bao =
        BaoCluster::start_on_instances(&primary.private_ips(&ids).await?, Seal::Shamir).await?;
    let port = bao.port().unwrap_or_default().to_string();
    say(
        &format!("OpenBao: 3 servers started with TLS from a fresh CA, not initialised (node_id = instance id; each listens on its instance's private IP, which moto gives from a loopback subnet, and port {port}; each certificate names that IP)"),
        start,
    );

    let ca_file = bao.ca.ca_file.display().to_string();
    let mut env = moto.env(PRIMARY);
    env.extend(
        [
            ("CLUSTER_NAME", CLUSTER),
            ("VAULT_PORT", port.as_str()),
            ("ASG_NAME", primary.asg.as_str()),
            ("VAULT_CACERT", ca_file.as_str()),
            ("STATE_TABLE", primary.table.as_str()),
            ("KMS_KEY_ID", primary.kms_key.as_str()),
            ("HEARTBEAT_INTERVAL_SECS", "5"),
            // The sandbox keeps the root token in SSM so it can write data as an
            // operator would; a real cluster leaves KEEP_ROOT_TOKEN unset.
            ("KEEP_ROOT_TOKEN", "true"),
            // Bootstrap makes credential-rotation's AppRole too.
            (
                "APPROLE_FUNCTIONS",
                "node-lifecycle,health-probe,snapshot-backup,snapshot-restore,credential-rotation",
            ),
            ("SNAPSHOT_BUCKET", primary.bucket.as_str()),
            ("SNAPSHOT_KMS_KEY_ID", primary.kms_key.as_str()),
            ("DR_REGION", DR),
            ("DR_BUCKET", dr.bucket.as_str()),
            ("DR_KMS_KEY_ID", dr.kms_key.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let mut emulator = LambdaEmulator::start(&env).await?;
    say(
        &format!(
            "Lambda runtime emulator (cargo lambda watch --only-lambda-apis, the functions' binaries) on 127.0.0.1:{}",
            emulator.port
        ),
        start,
    );

    // The launch events Auto Scaling sends, one per instance, as EventBridge delivers them.
    let events = bao.dir().join("events");
    std::fs::create_dir_all(&events)?;
    for id in &ids {
        let outcome = deliver(&moto, &primary, &mut emulator, &events, id, "LAUNCHING").await?;
        say(
            &format!("node-lifecycle, launch of {id}: {}", summary(&outcome)),
            start,
        );
    }
    let since = SystemTime::now();
    probe(&mut emulator, "three launch events later", start).await?;
    print_metrics(&primary, since).await?;

    // Replace one standby: Auto Scaling terminates it and launches a replacement.
    let leaving = ids[2].clone();
    aws_sdk_autoscaling::Client::new(&primary.sdk)
        .terminate_instance_in_auto_scaling_group()
        .instance_id(&leaving)
        .should_decrement_desired_capacity(false)
        .send()
        .await?;
    let replacement = primary
        .instances(None)
        .await?
        .into_iter()
        .find(|i| !ids.contains(i))
        .context("a replacement instance")?;
    for (id, ip) in primary
        .private_ips(std::slice::from_ref(&replacement))
        .await?
    {
        bao.add_instance_node(&id, ip).await?;
    }
    say(
        &format!("Auto Scaling replaces {leaving}: it waits in Terminating:Wait, {replacement} in Pending:Wait"),
        start,
    );
    let outcome = deliver(
        &moto,
        &primary,
        &mut emulator,
        &events,
        &replacement,
        "LAUNCHING",
    )
    .await?;
    say(
        &format!(
            "node-lifecycle, launch of {replacement}: {}",
            summary(&outcome)
        ),
        start,
    );
    probe(
        &mut emulator,
        "four voters while the old node is still leaving",
        start,
    )
    .await?;
    let outcome = deliver(
        &moto,
        &primary,
        &mut emulator,
        &events,
        &leaving,
        "TERMINATING",
    )
    .await?;
    say(
        &format!(
            "node-lifecycle, terminate of {leaving}: {}",
            summary(&outcome)
        ),
        start,
    );
    bao.kill(bao.index_of(&leaving)?);
    // Autopilot forgets a removed server a moment after the removal.
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe(
        &mut emulator,
        "the replacement in, the old node gone",
        start,
    )
    .await?
        != 3
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Backup, change, restore: the data comes back as it was.
    let root = root_token(&primary).await?;
    let leader = bao.active_index().await?;
    kv(
        &bao,
        leader,
        &root,
        Method::POST,
        "sys/mounts/kv",
        Some(json!({"type": "kv"})),
    )
    .await?;
    kv(
        &bao,
        leader,
        &root,
        Method::POST,
        "kv/greeting",
        Some(json!({"value": "hello"})),
    )
    .await?;
    say("operator: kv/greeting = hello", start);
    let outcome = invoke(
        &mut emulator,
        "snapshot-backup",
        "snapshot-backup/direct.json",
    )
    .await?;
    let snapshot = &outcome["snapshot"];
    say(
        &format!(
            "snapshot-backup: {} ({} bytes, raft index {}, sha256 {}…, canary {}), copied to {} and checked",
            snapshot["object"]["key"].as_str().unwrap_or("?"),
            snapshot["bytes"],
            snapshot["index"],
            &snapshot["sha256"].as_str().unwrap_or("?")[..12],
            snapshot["canary"].as_str().unwrap_or("none"),
            snapshot["dr_copy"]["bucket"].as_str().unwrap_or("?"),
        ),
        start,
    );
    kv(
        &bao,
        leader,
        &root,
        Method::POST,
        "kv/greeting",
        Some(json!({"value": "changed"})),
    )
    .await?;
    say("operator: kv/greeting = changed", start);
    let outcome = invoke(
        &mut emulator,
        "snapshot-restore",
        "snapshot-restore/dry-run.json",
    )
    .await?;
    say(
        &format!(
            "snapshot-restore, dry run: would restore {} (checked whole: sha256 matches the catalog); nothing changed",
            outcome["snapshot"]["key"].as_str().unwrap_or("?")
        ),
        start,
    );
    let outcome = invoke(
        &mut emulator,
        "snapshot-restore",
        "snapshot-restore/latest.json",
    )
    .await?;
    say(
        &format!(
            "snapshot-restore, latest: restored raft index {}; autopilot healthy again: {}; safety snapshot {}",
            outcome["plan"]["checked"]["index"],
            outcome["autopilot_healthy"],
            outcome["safety_snapshot"]["key"].as_str().unwrap_or("?")
        ),
        start,
    );
    let leader = bao.active_index().await?;
    let (_, read) = bao
        .api(leader, Method::GET, "kv/greeting", Some(&root), None)
        .await?;
    say(
        &format!("operator: kv/greeting = {} again", read["data"]["value"]),
        start,
    );
    probe(&mut emulator, "after the restore", start).await?;

    // Rotate the unseal shares, then restart a standby: node-lifecycle unseals it with the
    // new generation.
    let outcome = invoke(
        &mut emulator,
        "credential-rotation",
        "credential-rotation/unseal-shares.json",
    )
    .await?;
    let shares = &outcome["unseal_shares"];
    say(
        &format!(
            "credential-rotation, unseal-shares: generation {} in force ({} shares, threshold {}), stored in {PRIMARY} and {DR} before the server verified it; generation {} kept for older snapshots",
            shares["generation"], shares["shares"], shares["threshold"], shares["previous_generation"]
        ),
        start,
    );
    let mut standby = None;
    for i in 0..bao.nodes.len() {
        if bao.health_code(i).await.ok() == Some(429) {
            standby = Some(i);
            break;
        }
    }
    let standby = standby.context("a standby node")?;
    let restarted = bao.nodes[standby].node_id.clone();
    bao.restart(standby).await?;
    say(
        &format!(
            "operator: {restarted} restarted; it is sealed (health {})",
            bao.health_code(standby).await?
        ),
        start,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = invoke(
            &mut emulator,
            "node-lifecycle",
            "node-lifecycle/reconcile.json",
        )
        .await?;
        if bao.health_code(standby).await? != 503 || Instant::now() > deadline {
            say(
                &format!(
                    "node-lifecycle, reconcile: unsealed {} with generation {} of the shares",
                    outcome["unsealed"], shares["generation"]
                ),
                start,
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    probe(
        &mut emulator,
        "after the share rotation and a restart",
        start,
    )
    .await?;

    let dr_pair = disaster_recovery(start).await?;

    let token_file = bao.dir().join("root-token");
    std::fs::write(&token_file, &root)?;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))?;

    println!("\nTry it yourself (in another terminal, from the repository root):");
    println!("  export PATH=\"$PWD/.tools/venv/bin:$PATH\"");
    println!("  cargo lambda invoke health-probe --data-file events/health-probe/schedule.json --invoke-address 127.0.0.1 --invoke-port {}", emulator.port);
    println!("  cargo lambda invoke node-lifecycle --data-file events/node-lifecycle/reconcile.json --invoke-address 127.0.0.1 --invoke-port {}", emulator.port);
    println!("  cargo lambda invoke node-lifecycle --data-file events/node-lifecycle/launch.json --invoke-address 127.0.0.1 --invoke-port {}   # refused: another group", emulator.port);
    println!("  cargo lambda invoke snapshot-backup --data-file events/snapshot-backup/direct.json --invoke-address 127.0.0.1 --invoke-port {}", emulator.port);
    println!("  cargo lambda invoke snapshot-restore --data-file events/snapshot-restore/dry-run.json --invoke-address 127.0.0.1 --invoke-port {}", emulator.port);
    println!("  cargo lambda invoke credential-rotation --data-file events/credential-rotation/keyring.json --invoke-address 127.0.0.1 --invoke-port {}", emulator.port);
    println!("  cargo lambda invoke credential-rotation --data-file events/credential-rotation/unseal-shares-force.json --invoke-address 127.0.0.1 --invoke-port {}", emulator.port);
    println!("Talk to the cluster with the bao CLI (the sandbox kept the root token; a real cluster revokes it at bootstrap):");
    println!(
        "  export BAO_ADDR={} BAO_CACERT={ca_file}",
        bao.nodes[0].api_addr
    );
    println!(
        "  export BAO_TOKEN=$(cat {})   # the root token, kept in a 0600 file",
        token_file.display()
    );
    println!("  bao operator raft list-peers");
    println!("  bao kv get kv/greeting");
    println!("Every sample event is listed in events/README.md.");
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
    drop(dr_pair);
    Ok(())
}

/// The DR chapter, on a pair of its own: a primary whose backup is copied to the DR
/// region, a warm standby there, the primary down, an alarm, and dr-failover bringing
/// the standby up with the primary's data and the DNS record switched. Returns the pair,
/// which stays up with the rest.
async fn disaster_recovery(start: Instant) -> Result<testbed::dr::DrBed> {
    say(
        "DR: a primary cluster and a warm standby (one node) in the DR region, a pair of their own",
        start,
    );
    let mut dr = testbed::dr::DrBed::start().await?;
    let entry = dr.backed_up("written before the outage").await?;
    say(
        &format!(
            "snapshot-backup on the primary: {} (DR copy catalogued in the DR region)",
            entry
                .dr_copy
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        start,
    );
    // A region outage: the primary region's Auto Scaling API does not answer either, so
    // the fence is only recorded, and the primary's node comes back when the region does.
    let failover = dr.failover_in_an_outage()?;
    let send = |event: Value| {
        let failover = &failover;
        async move {
            failover
                .handle(
                    &event,
                    "sandbox",
                    tokio::time::Instant::now() + Duration::from_secs(600),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))
        }
    };
    let plan = serde_json::to_value(send(json!({"action": "plan"})).await?)?;
    say(
        &format!(
            "dr-failover, plan: would restore {} ({} s old); blocking: {}",
            plan["snapshot"]["object"]["key"], plan["snapshot"]["age_seconds"], plan["blocking"]
        ),
        start,
    );
    dr.primary.bed.bao.kill(0);
    say(
        "operator: the primary's node is killed (the region is down)",
        start,
    );
    let outcome =
        serde_json::to_value(send(testbed::dr::sample("eventbridge-composite.json")?).await?)?;
    say(
        &format!(
            "dr-failover, alarm {} (EventBridge): {}",
            "prod-vault-primary-down", outcome["outcome"]
        ),
        start,
    );
    for phase in outcome["phases"].as_array().into_iter().flatten() {
        println!(
            "           {:<15} {:>6} ms  {}",
            phase["phase"].as_str().unwrap_or_default(),
            phase["took_ms"],
            phase["detail"].as_str().unwrap_or_default()
        );
    }
    say(
        &format!(
            "the standby serves the primary's data: kv/app = {:?}; the same alarm again: {}",
            dr.standby_kv().await?,
            serde_json::to_value(send(testbed::dr::sample("sns-metric.json")?).await?)?["outcome"]
        ),
        start,
    );
    dr.standby_write("written in the DR region").await?;
    say(
        "operator: kv/app = \"written in the DR region\" on the DR cluster",
        start,
    );
    let reconciled = dr.primary_back().await?;
    say(
        &format!(
            "the primary region is back: its node restarted sealed; node-lifecycle's reconcile left it sealed ({})",
            if reconciled.fenced.is_some() {
                "fenced by the DR region's failover"
            } else {
                "not fenced?"
            }
        ),
        start,
    );
    let fenced = dr
        .primary
        .backup(&[])?
        .handle(
            &json!({"reason": "while fenced"}),
            "sandbox-fenced",
            tokio::time::Instant::now() + Duration::from_secs(600),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))?;
    say(
        &format!(
            "snapshot-backup on the primary while the failover is recorded: {} (the fence: no snapshot, no DR copy)",
            serde_json::to_value(&fenced)?["outcome"]
        ),
        start,
    );
    let first = send(json!({"action": "failback"})).await;
    say(
        &format!(
            "dr-failover, failback: recorded; {}",
            match &first {
                Ok(outcome) => format!("{outcome:?}"),
                Err(e) => e.to_string(),
            }
        ),
        start,
    );
    dr.primary_unsealed().await?;
    say(
        "the primary's node-lifecycle reconcile: a failback is asked for, the node unsealed",
        start,
    );
    let outcome = serde_json::to_value(send(json!({"action": "failback"})).await?)?;
    say(
        &format!("dr-failover, failback again: {}", outcome["outcome"]),
        start,
    );
    for phase in outcome["failback"]["phases"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "           {:<22} {:>6} ms  {}",
            phase["phase"].as_str().unwrap_or_default(),
            phase["took_ms"],
            phase["detail"].as_str().unwrap_or_default()
        );
    }
    say(
        &format!(
            "the primary serves the DR region's writes: kv/app = {:?}",
            dr.primary.kv("app").await?
        ),
        start,
    );
    Ok(dr)
}

/// Sends node-lifecycle the event Auto Scaling sends for `instance`'s pending action.
async fn deliver(
    moto: &Moto,
    region: &RegionFixture,
    emulator: &mut LambdaEmulator,
    dir: &std::path::Path,
    instance: &str,
    transition: &str,
) -> Result<Value> {
    let action = moto
        .lifecycle_actions()
        .await?
        .into_iter()
        .rev()
        .find(|a| {
            a.group == region.asg && a.instance_id == instance && a.transition.contains(transition)
        })
        .with_context(|| format!("no {transition} action for {instance}"))?;
    let file = dir.join(format!("{instance}-{}.json", transition.to_lowercase()));
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&LifecycleBed::event(&action))?,
    )?;
    match emulator
        .invoke_path("node-lifecycle", &file, Duration::from_secs(900))
        .await?
    {
        Invocation::Ok(outcome) => Ok(outcome),
        Invocation::Err(e) => bail!("node-lifecycle failed: {e}"),
    }
}

fn summary(outcome: &Value) -> String {
    let mut parts = vec![outcome["outcome"].as_str().unwrap_or("?").to_owned()];
    for (key, value) in outcome.as_object().into_iter().flatten() {
        if key != "outcome" && key != "instance" && !value.is_null() && value != &Value::Bool(false)
        {
            parts.push(format!("{key}={}", value.to_string().trim_matches('"')));
        }
    }
    parts.join(", ")
}

/// Runs health-probe, prints its view, and returns the healthy voters it counted.
async fn probe(emulator: &mut LambdaEmulator, when: &str, start: Instant) -> Result<u64> {
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
    say(&format!("health-probe ({when}):"), start);
    print_report(&report);
    Ok(report["summary"]["healthy_voters"].as_u64().unwrap_or(0))
}

/// The root token node-lifecycle kept in SSM (`KEEP_ROOT_TOKEN`).
async fn root_token(region: &RegionFixture) -> Result<String> {
    use shared::cluster::ports::ParameterStore;
    let ssm = shared::aws::SsmParameters::from_sdk(&region.sdk);
    let token = ssm
        .secret(&format!("/vault-lifecycle/{CLUSTER}/root-token"))
        .await?;
    Ok(token.expose().to_owned())
}

/// An operator's call with the root token; fails on any non-2xx answer.
async fn kv(
    bao: &BaoCluster,
    node: usize,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let (status, value) = bao.api(node, method, path, Some(token), body).await?;
    if !(200..300).contains(&status) {
        bail!("{path} answered {status}: {value}");
    }
    Ok(value)
}

/// Invokes `function` with `events/<sample>` and returns its outcome.
async fn invoke(emulator: &mut LambdaEmulator, function: &str, sample: &str) -> Result<Value> {
    match emulator
        .invoke(function, sample, Duration::from_secs(900))
        .await?
    {
        Invocation::Ok(outcome) => Ok(outcome),
        Invocation::Err(e) => bail!("{function} failed: {e}"),
    }
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
        "  cluster: {} in service, {} unsealed, leader present: {}, healthy voters: {}, failure tolerance: {}, newest snapshot's age: {}",
        s["in_service"], s["unsealed"], s["leader_present"], s["healthy_voters"], s["failure_tolerance"],
        s["last_good_backup_age_secs"].as_u64().map(|a| format!("{a} s")).unwrap_or_else(|| "none yet".into())
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
