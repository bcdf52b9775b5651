//! `bench lifecycle`: the time from a launch event to the lifecycle action's CONTINUE for
//! a joining node, through node-lifecycle, side by side with the floor: the raw API steps
//! (join, unseal with shares already in memory, wait for autopilot's healthy voter,
//! complete the action) done directly, in the same run, against the same cluster.
//! Rounds alternate between the two so that any drift (a growing cluster, a warming
//! cache) falls on both.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::json;
use shared::{
    aws::AsgLifecycleActions,
    cluster::lifecycle_actions::{LifecycleActions, Verdict},
    events::{LifecycleAction, Transition},
    ids::NodeAddr,
    lifecycle::Outcome,
    secret::Secret,
    vault::VaultClient,
};
use testbed::{
    lifecycle::LifecycleBed,
    openbao::{InitKeys, Seal},
};

pub async fn run(rounds: usize) -> Result<()> {
    println!("bench lifecycle: {rounds} rounds, each one joining node through node-lifecycle and one by the raw API");
    let mut bed = LifecycleBed::start(1, Seal::Shamir).await?;
    // The root token is kept (KEEP_ROOT_TOKEN) only so the bench can shorten autopilot's
    // stabilisation time to 2 s for both paths alike.
    let function = bed.function(&[("KEEP_ROOT_TOKEN", "true")])?;
    let first = bed.region.instances(None).await?.remove(0);
    let event = LifecycleBed::event(&bed.pending(&first, "launch").await?);
    let outcome = function
        .handle(
            &event,
            tokio::time::Instant::now() + Duration::from_secs(900),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!("  cluster initialised by node-lifecycle: {outcome:?}");
    let path = bed.ssm_path();
    let mut shares = Vec::new();
    for n in 1..=3 {
        shares.push(
            bed.parameter(&format!("{path}/unseal/share-{n}"))
                .await?
                .context("share")?,
        );
    }
    let root_token = bed
        .parameter(&format!("{path}/root-token"))
        .await?
        .context("root token")?;
    bed.bao.keys = Some(InitKeys {
        keys: shares.clone(),
        threshold: 3,
        root_token: root_token.clone(),
    });
    bed.bao
        .root(
            0,
            Method::POST,
            "sys/storage/raft/autopilot/configuration",
            Some(json!({"server_stabilization_time": "2s"})),
        )
        .await?;
    let vault = VaultClient::new(&shared::config::VaultSettings {
        ca: shared::config::CaSource::Pem(bed.bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
    })?;
    let actions = AsgLifecycleActions::new(aws_sdk_autoscaling::Client::new(&bed.region.sdk));
    let (mut through_function, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for by_function in [round % 2 == 1, round % 2 == 0] {
            let id = bed.scale_out(1).await?.remove(0);
            let action = bed.pending(&id, "launch").await?;
            let started = Instant::now();
            if by_function {
                let outcome = function
                    .handle(
                        &LifecycleBed::event(&action),
                        tokio::time::Instant::now() + Duration::from_secs(900),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                if !matches!(outcome, Outcome::Launched(_)) {
                    bail!("{id}: {outcome:?}");
                }
                through_function.push(started.elapsed());
            } else {
                let node: NodeAddr = bed.bao.nodes[bed.bao.index_of(&id)?]
                    .api_addr
                    .parse()
                    .map_err(anyhow::Error::msg)?;
                let leader = active(&bed, &vault).await?;
                raw_join(
                    &vault,
                    &node,
                    &leader,
                    &bed.bao.ca.ca_pem,
                    &shares,
                    &root_token,
                    &id,
                )
                .await?;
                let action = LifecycleAction::plain(
                    action.group.clone(),
                    action.hook.clone(),
                    id.as_str().into(),
                    action.token.clone(),
                    Transition::Launching,
                );
                actions.complete(&action, Verdict::Continue).await?;
                raw.push(started.elapsed());
            }
            let spent = started.elapsed().as_secs_f64();
            let how = if by_function {
                "node-lifecycle"
            } else {
                "raw API"
            };
            println!("  round {round}: {id} joined by {how:<14} {spent:>6.2} s");
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (f, r) = (median(&mut through_function), median(&mut raw));
    println!();
    println!("| path (median of {rounds}) | launch event → CONTINUE |");
    println!("|---|---|");
    println!("| raw API: join, unseal, wait for healthy voter, complete | {r:.2} s |");
    println!("| node-lifecycle | {f:.2} s |");
    println!("| overhead | {:.2} s (goal: under 0.50 s) |", f - r);
    Ok(())
}

async fn active(bed: &LifecycleBed, vault: &VaultClient) -> Result<NodeAddr> {
    for node in &bed.bao.nodes {
        let Ok(addr) = node.api_addr.parse::<NodeAddr>() else {
            continue;
        };
        if vault.health(&addr).await.is_ok_and(|h| h.is_active()) {
            return Ok(addr);
        }
    }
    bail!("no active node")
}

/// The floor: the API calls a joining node needs, polling autopilot every 50 ms.
async fn raw_join(
    vault: &VaultClient,
    node: &NodeAddr,
    leader: &NodeAddr,
    ca_pem: &str,
    shares: &[String],
    root: &str,
    id: &str,
) -> Result<()> {
    vault.join(node, leader, Some(ca_pem)).await?;
    for share in shares {
        vault.unseal(node, &Secret::new(share.clone())).await?;
    }
    let root = Secret::new(root.to_owned());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sealed = vault.seal_status(node).await?.sealed;
        if !sealed {
            let state = vault.autopilot_state(leader, &root).await?;
            if state
                .servers
                .get(id)
                .is_some_and(|s| s.healthy && s.is_voter())
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{id} did not become a healthy voter");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
