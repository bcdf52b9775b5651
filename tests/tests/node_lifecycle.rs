//! node-lifecycle against real OpenBao servers and moto with lifecycle actions: the
//! cluster is built from nothing by launch events, grows, loses its leader, is
//! reconciled, and refuses what it must refuse. Every test checks that nothing it logged
//! or returned holds a share, token or secret ID.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use serde_json::Value;
use shared::{
    aws::SsmParameters,
    config::{CaSource, VaultSettings},
    ids::NodeAddr,
    lambda::FunctionError,
    lifecycle::{launch::LaunchReport, NodeLifecycle, Outcome},
    secret::Secret,
    testing::{capture_logs, LogCapture},
    vault::{AutopilotState, VaultClient},
};
use testbed::{
    lifecycle::LifecycleBed,
    openbao::{Seal, SealServer},
    poll_until,
};
use tokio::time::Instant;

type Function = NodeLifecycle<SsmParameters>;

async fn handle(function: &Function, event: &Value) -> Result<Outcome, FunctionError> {
    function
        .handle(event, Instant::now() + Duration::from_secs(600))
        .await
}

fn launched(outcome: &Result<Outcome, FunctionError>) -> Result<&LaunchReport> {
    match outcome {
        Ok(Outcome::Launched(report)) => Ok(report),
        other => bail!("expected a launch, got {other:?}"),
    }
}

/// Sends the launch event of every instance waiting in Pending:Wait at once, each
/// through its own function (as concurrent Lambda invocations would run).
async fn launch_waiting(bed: &LifecycleBed) -> Result<Vec<Result<Outcome, FunctionError>>> {
    let waiting = bed
        .actions()
        .await?
        .into_iter()
        .filter(|a| a.transition.contains("LAUNCHING") && a.state == "pending")
        .collect::<Vec<_>>();
    let functions = waiting
        .iter()
        .map(|_| bed.function(&[]))
        .collect::<Result<Vec<_>>>()?;
    let events: Vec<Value> = waiting.iter().map(LifecycleBed::event).collect();
    Ok(join_all(functions.iter().zip(&events).map(|(f, e)| handle(f, e))).await)
}

/// What an operator sees, through node-lifecycle's own AppRole (the root token is gone).
struct View {
    vault: VaultClient,
    active: NodeAddr,
    token: Secret,
}

async fn view(bed: &LifecycleBed) -> Result<View> {
    let vault = VaultClient::new(&VaultSettings {
        ca: CaSource::Pem(bed.bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
    })?;
    let path = format!("{}/approle/node-lifecycle", bed.ssm_path());
    let role_id = bed
        .parameter(&format!("{path}/role-id"))
        .await?
        .context("role id")?;
    let secret_id = bed
        .parameter(&format!("{path}/secret-id"))
        .await?
        .context("secret id")?;
    let active = poll_until("an active node", Duration::from_secs(30), || async {
        for node in &bed.bao.nodes {
            let addr: NodeAddr = node.api_addr.parse().map_err(anyhow::Error::msg)?;
            if vault.health(&addr).await.is_ok_and(|h| h.is_active()) {
                return Ok(Some(addr));
            }
        }
        Ok(None)
    })
    .await?;
    let token = vault
        .approle_login(
            &active,
            "approle",
            &Secret::new(role_id),
            &Secret::new(secret_id),
        )
        .await?
        .token;
    Ok(View {
        vault,
        active,
        token,
    })
}

impl View {
    async fn autopilot(&self) -> Result<AutopilotState> {
        Ok(self
            .vault
            .autopilot_state(&self.active, &self.token)
            .await?)
    }

    async fn peers(&self) -> Result<Vec<String>> {
        let config = self
            .vault
            .raft_configuration(&self.active, &self.token)
            .await?;
        let mut ids: Vec<String> = config.servers.into_iter().map(|s| s.node_id).collect();
        ids.sort();
        Ok(ids)
    }
}

/// No stored secret (shares, credentials) and no `extra` canary in the logs or `texts`.
async fn assert_nothing_leaked(
    bed: &LifecycleBed,
    logs: &LogCapture,
    texts: &[String],
    extra: &[String],
) -> Result<()> {
    let mut secrets: Vec<String> = bed
        .stored_secrets()
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    secrets.extend(extra.iter().cloned());
    assert!(!secrets.is_empty(), "there are secrets to look for");
    let logged = logs.contents();
    assert!(
        logged.contains("node-lifecycle") || logged.contains("lifecycle"),
        "logs are captured"
    );
    for text in texts.iter().chain([&logged]) {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into: {}",
                &text[..text.len().min(200)]
            );
        }
    }
    Ok(())
}

fn describe(outcomes: &[Result<Outcome, FunctionError>]) -> Vec<String> {
    outcomes.iter().map(|o| format!("{o:?}")).collect()
}

#[tokio::test]
async fn three_simultaneous_launches_initialise_once_and_make_three_voters() -> Result<()> {
    let logs = capture_logs();
    let bed = LifecycleBed::start(3, Seal::Shamir).await?;
    let outcomes = launch_waiting(&bed).await?;
    assert_eq!(outcomes.len(), 3);
    let reports = outcomes.iter().map(launched).collect::<Result<Vec<_>>>()?;
    assert_eq!(
        reports.iter().filter(|r| r.initialised_cluster).count(),
        1,
        "exactly one init: {reports:?}"
    );
    assert_eq!(
        reports.iter().filter(|r| r.joined).count(),
        2,
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| r.completed_now), "{reports:?}");

    let actions = bed.actions().await?;
    assert_eq!(actions.len(), 3);
    for a in &actions {
        assert_eq!(a.result.as_deref(), Some("CONTINUE"), "{a:?}");
    }
    let view = view(&bed).await?;
    let autopilot = view.autopilot().await?;
    let mut voters: Vec<&String> = autopilot
        .servers
        .values()
        .filter(|s| s.healthy && s.is_voter())
        .map(|s| &s.id)
        .collect();
    voters.sort();
    let ids = bed.region.instances(None).await?;
    assert_eq!(
        voters,
        ids.iter().collect::<Vec<_>>(),
        "three healthy voters named by instance id"
    );
    for node in &bed.bao.nodes {
        let health = view
            .vault
            .health(&node.api_addr.parse().map_err(anyhow::Error::msg)?)
            .await?;
        assert!(!health.sealed, "{} is unsealed", node.node_id);
    }

    let stored = bed.stored_secrets().await?;
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    let path = bed.ssm_path();
    for n in 1..=5 {
        assert!(
            names.contains(&format!("{path}/unseal/share-{n}").as_str()),
            "{names:?}"
        );
    }
    for function in [
        "node-lifecycle",
        "health-probe",
        "snapshot-backup",
        "snapshot-restore",
        "credential-rotation",
        "dr-failover",
    ] {
        for which in ["role-id", "secret-id"] {
            assert!(
                names.contains(&format!("{path}/approle/{function}/{which}").as_str()),
                "{names:?}"
            );
        }
    }
    assert!(
        !names.contains(&format!("{path}/root-token").as_str()),
        "the root token is revoked and not kept: {names:?}"
    );
    assert_eq!(stored.len(), 5 + 12, "{names:?}");
    assert_nothing_leaked(&bed, &logs, &describe(&outcomes), &[]).await
}
