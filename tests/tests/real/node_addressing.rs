//! Who can receive a share or a credential: only the node at the private IP that EC2
//! reports for an instance of the group, over TLS verified against the cluster's CA. A
//! tag on the instance never chooses the address, and `http` needs an explicit switch.

use std::{net::SocketAddr, time::Duration};

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    backup::{BackupConfig, BackupOutcome},
    config::{CaSource, Env, VaultSettings},
    ids::NodeAddr,
    lifecycle::Outcome,
    testing::capture_logs,
    vault::VaultClient,
};
use testbed::{lifecycle::LifecycleBed, openbao::Seal, recorder::RecordingListener};
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// Delivers the launch event of every instance waiting in Pending:Wait at once.
async fn launch_waiting(bed: &LifecycleBed) -> Result<Vec<Outcome>> {
    let waiting: Vec<_> = bed.pending_launches().await?;
    let functions = waiting
        .iter()
        .map(|_| bed.function(&[]))
        .collect::<Result<Vec<_>>>()?;
    let events: Vec<Value> = waiting.iter().map(LifecycleBed::event).collect();
    let outcomes = join_all(
        functions
            .iter()
            .zip(&events)
            .map(|(f, e)| f.handle(e, deadline())),
    )
    .await;
    outcomes
        .into_iter()
        .map(|o| match o {
            Ok(outcome @ Outcome::Launched(_)) => Ok(outcome),
            other => bail!("expected a launch, got {other:?}"),
        })
        .collect()
}

/// Tags every instance of the group with `vault-api-addr` = `addr`, as anyone allowed
/// `ec2:CreateTags` on them could.
async fn tag_every_instance(bed: &LifecycleBed, addr: &str) -> Result<()> {
    for id in bed.region.instances(None).await? {
        bed.region.tag(&id, "vault-api-addr", addr).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_tag_never_chooses_who_receives_a_share_or_a_credential() -> Result<()> {
    let logs = capture_logs();
    let mut bed = LifecycleBed::start(3, Seal::Shamir).await?;

    // The lure: a real, uninitialised OpenBao whose certificate the cluster's own CA
    // signed (so it passes TLS), behind a listener that records every connection.
    let stranger = bed.bao.add_node("stranger").await?.api_addr.clone();
    let stranger_index = bed.bao.index_of("stranger")?;
    let target: SocketAddr = stranger.trim_start_matches("https://").parse()?;
    let listener = RecordingListener::start(target).await?;
    let lure = format!("https://{}", listener.addr);
    let vault = VaultClient::new(&VaultSettings {
        ca: CaSource::Pem(bed.bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 1,
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
    })?;
    let answer = vault
        .health(&lure.parse::<NodeAddr>().map_err(anyhow::Error::msg)?)
        .await?;
    assert!(
        !answer.initialized,
        "the lure answers as an uninitialised node a function would initialise: {answer:?}"
    );
    let probe_only = listener.connections();
    assert_eq!(probe_only.len(), 1, "the listener records connections");
    tag_every_instance(&bed, &lure).await?;

    // Launches: init, the search for the active node to join through, joins, unseals.
    let outcomes = launch_waiting(&bed).await?;
    let mut texts: Vec<String> = outcomes.iter().map(|o| format!("{o:?}")).collect();

    // Reconcile: a standby restarted sealed gets the shares.
    let function = bed.function(&[])?;
    let active = bed.bao.active_index().await?;
    let standby = (0..3).find(|i| *i != active).context("a standby")?;
    bed.bao.restart(standby).await?;
    bed.bao.wait_until_health(standby, 503).await?;
    let reconciled = function
        .handle(&json!({"action": "reconcile"}), deadline())
        .await;
    texts.push(format!("{reconciled:?}"));
    let Ok(Outcome::Reconciled(report)) = &reconciled else {
        bail!("expected a reconcile report, got {reconciled:?}");
    };
    assert_eq!(report.unsealed.len(), 1, "{report:?}");
    bed.bao.wait_until_health(standby, 429).await?;

    // snapshot-backup: the active-node search, then its AppRole credentials.
    let mut env = bed.env();
    env.push(("SNAPSHOT_BUCKET".into(), bed.region.bucket.clone()));
    let config = BackupConfig::from(
        &Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "snapshot-backup",
    )?;
    let backup = shared::backup::from_sdk(&bed.region.sdk, config)?;
    let event = json!({
        "version": "0",
        "id": testbed::unique_name("tick"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-23T03:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/lab-snapshot-backup"],
        "detail": {}
    });
    let backed_up = backup.handle(&event, "req-tag", deadline()).await;
    texts.push(format!("{backed_up:?}"));
    assert!(
        matches!(backed_up, Ok(BackupOutcome::BackedUp(_))),
        "{backed_up:?}"
    );

    // A scale-out, its instance tagged before its launch event arrives.
    let added = bed.scale_out(1).await?;
    bed.region.tag(&added[0], "vault-api-addr", &lure).await?;
    texts.extend(launch_waiting(&bed).await?.iter().map(|o| format!("{o:?}")));

    assert_eq!(
        listener.connections(),
        probe_only,
        "no function connected to the address in the tag"
    );
    let (_, init) = bed
        .bao
        .api(stranger_index, Method::GET, "sys/init", None, None)
        .await?;
    assert_eq!(
        init["initialized"],
        json!(false),
        "the stranger got nothing"
    );
    for node in bed.bao.nodes.iter().filter(|n| n.node_id != "stranger") {
        let health = vault
            .health(&node.api_addr.parse().map_err(anyhow::Error::msg)?)
            .await?;
        assert!(
            health.initialized && !health.sealed,
            "{} is an unsealed member: {health:?}",
            node.node_id
        );
    }
    let secrets: Vec<String> = bed.stored_secret_values().await?;
    let logged = logs.contents();
    let mut all: Vec<&str> = texts.iter().map(String::as_str).collect();
    all.push(&logged);
    testbed::assert_no_secret(&secrets, &all);
    Ok(())
}

#[tokio::test]
async fn http_is_refused_at_start_up_unless_allowed_for_labs() -> Result<()> {
    testbed::lambda::build_functions().await?;
    let binary = testbed::lambda::function_binary("node-lifecycle");
    let env = [
        ("CLUSTER_NAME", "lab"),
        ("ASG_NAME", "lab-asg"),
        ("STATE_TABLE", "lab-state"),
        ("KMS_KEY_ID", "alias/lab"),
        ("VAULT_SCHEME", "http"),
        ("AWS_REGION", "eu-west-1"),
    ];
    let out = std::process::Command::new(&binary)
        .env_clear()
        .envs(env)
        .output()
        .with_context(|| binary.display().to_string())?;
    assert!(!out.status.success(), "node-lifecycle started over http");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("VAULT_SCHEME") && text.contains("ALLOW_INSECURE_HTTP=true"),
        "the start-up error names the variable and the lab switch: {text}"
    );
    Ok(())
}
