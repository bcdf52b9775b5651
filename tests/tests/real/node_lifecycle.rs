//! node-lifecycle against real OpenBao servers and moto with lifecycle actions: the
//! cluster is built from nothing by launch events, grows, loses its leader, is
//! reconciled, and refuses what it must refuse. Every test checks that nothing it logged
//! or returned holds a share, token or secret ID.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use serde_json::Value;
use shared::{
    config::{CaSource, VaultSettings},
    ids::NodeAddr,
    lambda::FunctionError,
    lifecycle::{
        records::{InitStage, StateRecords},
        unseal::Unsealed,
        NodeLifecycle, Outcome,
    },
    secret::Secret,
    testing::{capture_logs, FailingNode, Failure, LogCapture},
    vault::{AutopilotState, VaultClient},
};
use testbed::{
    lifecycle::{handle, lapse_locks, launched, records, Function, LifecycleBed},
    openbao::{Seal, SealServer},
    poll_until,
    snapshots::SnapshotBed,
};
use tokio::time::Instant;

/// Sends the launch event of every instance waiting in Pending:Wait at once, each
/// through its own function (as concurrent Lambda invocations would run).
async fn launch_waiting(bed: &LifecycleBed) -> Result<Vec<Result<Outcome, FunctionError>>> {
    let waiting = bed.pending_launches().await?;
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
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
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
    let mut secrets: Vec<String> = bed.stored_secret_values().await?;
    secrets.extend(extra.iter().cloned());
    let logged = logs.contents();
    assert!(
        logged.contains("node-lifecycle") || logged.contains("lifecycle"),
        "logs are captured"
    );
    let mut all: Vec<&str> = texts.iter().map(String::as_str).collect();
    all.push(&logged);
    testbed::assert_no_secret(&secrets, &all);
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
    // Credentials for the four functions deployed, none for those that are not.
    for function in [
        "node-lifecycle",
        "health-probe",
        "snapshot-backup",
        "snapshot-restore",
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
    assert_eq!(stored.len(), 5 + 8, "{names:?}");
    assert_nothing_leaked(&bed, &logs, &describe(&outcomes), &[]).await
}

async fn build_cluster(size: i32, seal: Seal) -> Result<LifecycleBed> {
    let bed = LifecycleBed::start(size, seal).await?;
    for outcome in launch_waiting(&bed).await? {
        launched(&outcome)?;
    }
    Ok(bed)
}

fn index_of(bed: &LifecycleBed, id: &str) -> Result<usize> {
    bed.bao.index_of(id)
}

#[tokio::test]
async fn scale_out_then_the_leader_leaves_and_redelivered_events_change_nothing() -> Result<()> {
    let logs = capture_logs();
    let mut bed = build_cluster(3, Seal::Shamir).await?;
    let function = bed.function(&[])?;

    let added = bed.scale_out(1).await?;
    let launch = LifecycleBed::event(&bed.pending(&added[0], "launch").await?);
    let first = handle(&function, &launch).await;
    let report = launched(&first)?;
    assert!(report.joined && !report.initialised_cluster, "{report:?}");
    assert_eq!(report.unsealed, Unsealed::WithShares);
    let before = view(&bed).await?.peers().await?;
    assert_eq!(before.len(), 4, "{before:?}");

    // The same event again, to this instance of the function and to a fresh one.
    for function in [&function, &bed.function(&[])?] {
        let again = handle(function, &launch).await;
        assert!(
            matches!(
                &again,
                Ok(Outcome::AlreadyCompleted {
                    stage: "continued",
                    ..
                })
            ),
            "{again:?}"
        );
    }
    assert_eq!(view(&bed).await?.peers().await?, before, "nothing changed");

    // The leader is terminated: it steps down, another leads, its peer goes.
    let leader = view(&bed)
        .await?
        .autopilot()
        .await?
        .leader
        .context("a leader")?;
    bed.terminate(&leader).await?;
    let terminate = LifecycleBed::event(&bed.pending(&leader, "terminate").await?);
    let outcome = handle(&function, &terminate).await;
    let Ok(Outcome::Terminated(left)) = &outcome else {
        bail!("expected a terminate, got {outcome:?}");
    };
    assert!(
        left.stepped_down && left.peer_removed && left.completed_now,
        "{left:?}"
    );
    assert_eq!(
        left.waited_for_replacement, None,
        "3 voters remain: tolerance 1"
    );
    let index = index_of(&bed, &leader)?;
    bed.bao.kill(index);
    let after = view(&bed).await?;
    let peers = after.peers().await?;
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert!(!peers.contains(&leader), "{peers:?}");
    let new_leader = after.autopilot().await?.leader.context("a new leader")?;
    assert_ne!(new_leader, leader);
    let action = bed.pending(&leader, "terminate").await?;
    assert_eq!(action.result.as_deref(), Some("CONTINUE"), "{action:?}");

    let again = handle(&function, &terminate).await;
    assert!(
        matches!(
            &again,
            Ok(Outcome::AlreadyCompleted {
                stage: "continued",
                ..
            })
        ),
        "{again:?}"
    );
    assert_eq!(after.peers().await?, peers, "nothing changed");
    let texts = vec![
        format!("{first:?}"),
        format!("{outcome:?}"),
        format!("{again:?}"),
    ];
    assert_nothing_leaked(&bed, &logs, &texts, &[]).await
}

#[tokio::test]
async fn a_run_cut_off_after_init_converges_when_the_event_comes_again() -> Result<()> {
    let logs = capture_logs();
    let bed = LifecycleBed::start(2, Seal::Shamir).await?;
    let actions = bed.actions().await?;
    let (first, second) = (
        LifecycleBed::event(&actions[0]),
        LifecycleBed::event(&actions[1]),
    );
    let records = records(&bed)?;
    // Cut the first run off the moment the shares are stored, as Lambda's timeout would.
    // Its deadline is near (a short init timeout lets it still send sys/init): the init
    // lock is that invocation's until its deadline, and the redelivery cannot take it
    // before it lapses.
    let function = bed.function(&[("VAULT_INIT_TIMEOUT_SECS", "10")])?;
    let cut_off_at = Instant::now() + Duration::from_secs(75);
    tokio::select! {
        outcome = function.handle(&first, cut_off_at) => bail!("the run ended before it was cut off: {outcome:?}"),
        stored = poll_until("the shares to be stored", Duration::from_secs(60), || async {
            Ok(records.init().await?.filter(|r| r.stage == InitStage::SharesStored))
        }) => { stored?; }
    }
    drop(function);
    let record = records.init().await?.context("an init record")?;
    assert_eq!(
        record.stage,
        InitStage::SharesStored,
        "cut off before bootstrap ended"
    );
    let root = bed
        .parameter(&format!("{}/root-token", bed.ssm_path()))
        .await?
        .context("the root token is kept until bootstrap revokes it")?;

    // The cut-off run's locks (init, and the lifecycle action's) lapse: the test bed
    // moves their expiry to now rather than wait out the deadline and margin. Then the
    // event comes again, with the other node's launch.
    assert!(
        lapse_locks(&bed).await? >= 2,
        "the init and action locks were held"
    );
    let (again, other) = (bed.function(&[])?, bed.function(&[])?);
    let outcomes = join_all([handle(&again, &first), handle(&other, &second)]).await;
    let first_report = launched(&outcomes[0])?;
    let second_report = launched(&outcomes[1])?;
    // Either launch may claim the lapsed lock and finish the bootstrap from the stored
    // shares; neither initialises a second time.
    assert!(
        !(first_report.initialised_cluster && second_report.initialised_cluster),
        "{first_report:?} {second_report:?}"
    );
    assert!(second_report.joined, "{second_report:?}");
    assert_eq!(
        records.init().await?.map(|r| r.stage),
        Some(InitStage::Bootstrapped)
    );

    let view = view(&bed).await?;
    assert_eq!(view.peers().await?.len(), 2);
    let root = Secret::new(root);
    assert!(
        !view.vault.token_is_valid(&view.active, &root).await?,
        "the root token is revoked"
    );
    assert_eq!(
        bed.parameter(&format!("{}/root-token", bed.ssm_path()))
            .await?,
        None,
        "and no longer stored"
    );
    assert_nothing_leaked(
        &bed,
        &logs,
        &describe(&outcomes),
        &[root.expose().to_owned()],
    )
    .await
}

#[tokio::test]
async fn auto_unseal_with_the_transit_seal_is_verified() -> Result<()> {
    let logs = capture_logs();
    let seal = SealServer::start().await?;
    let bed = LifecycleBed::start(2, seal.seal_for()).await?;
    let outcomes = launch_waiting(&bed).await?;
    let reports = outcomes.iter().map(launched).collect::<Result<Vec<_>>>()?;
    let joined = reports.iter().find(|r| r.joined).context("a joined node")?;
    assert_ne!(joined.unsealed, Unsealed::WithShares, "{joined:?}");
    let view = view(&bed).await?;
    for node in &bed.bao.nodes {
        let status = view
            .vault
            .seal_status(&node.api_addr.parse().map_err(anyhow::Error::msg)?)
            .await?;
        assert_eq!(
            (status.seal_type.as_str(), status.sealed),
            ("transit", false)
        );
    }
    let names: Vec<String> = bed
        .stored_secrets()
        .await?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let path = bed.ssm_path();
    assert!(
        names.contains(&format!("{path}/recovery/share-5")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("/unseal/")), "{names:?}");
    assert_nothing_leaked(
        &bed,
        &logs,
        &describe(&outcomes),
        std::slice::from_ref(&seal.token),
    )
    .await
}

/// The leader's instance, and every other instance of the group.
async fn leader_and_standbys(bed: &LifecycleBed) -> Result<(String, Vec<String>)> {
    let leader = view(bed)
        .await?
        .autopilot()
        .await?
        .leader
        .context("a leader")?;
    let standbys = bed
        .region
        .instances(None)
        .await?
        .into_iter()
        .filter(|i| *i != leader)
        .collect();
    Ok((leader, standbys))
}

async fn reconcile(function: &Function) -> Result<shared::lifecycle::reconcile::ReconcileReport> {
    match handle(function, &serde_json::json!({"action": "reconcile"})).await {
        Ok(Outcome::Reconciled(report)) => Ok(report),
        other => bail!("expected a reconcile report, got {other:?}"),
    }
}

#[tokio::test]
async fn reconcile_unseals_and_removes_departed_peers_without_losing_quorum() -> Result<()> {
    let logs = capture_logs();
    let mut bed = build_cluster(3, Seal::Shamir).await?;
    let function = bed.function(&[])?;
    let (_leader, standbys) = leader_and_standbys(&bed).await?;

    // A standby restarts and comes back sealed: reconcile unseals it.
    let restarted = index_of(&bed, &standbys[0])?;
    bed.bao.restart(restarted).await?;
    bed.bao.wait_until_health(restarted, 503).await?;
    let report = reconcile(&function).await?;
    assert_eq!(
        report.unsealed,
        vec![standbys[0].as_str().into()],
        "{report:?}"
    );
    assert_eq!(report.removed, None, "{report:?}");
    bed.bao.wait_until_health(restarted, 429).await?;

    // Another standby's instance dies and leaves the group (its terminate event lost):
    // once autopilot has judged it unhealthy past the grace, its peer goes.
    let lost = &standbys[1];
    bed.bao.kill(index_of(&bed, lost)?);
    bed.terminate(lost).await?;
    let reports = std::sync::Mutex::new(Vec::new());
    let removed = poll_until(
        "the departed peer's removal",
        Duration::from_secs(120),
        || async {
            let report = reconcile(&function).await?;
            let removed = report.removed.clone();
            reports
                .lock()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .push(format!("{report:?}"));
            Ok(removed)
        },
    )
    .await?;
    assert_eq!(&removed, lost);
    let reports = reports.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(
        reports.iter().any(|r| r.contains("kept")),
        "it was kept while healthy or inside the grace: {reports:?}"
    );
    let peers = view(&bed).await?.peers().await?;
    assert_eq!(peers.len(), 2, "{peers:?}");

    // One more dies: 1 healthy of 2 voters is no quorum. Nothing may be removed.
    let last = &standbys[0];
    bed.bao.kill(index_of(&bed, last)?);
    bed.terminate(last).await?;
    let refused = poll_until("a refusal", Duration::from_secs(120), || async {
        let report = reconcile(&function).await?;
        assert_eq!(
            report.removed, None,
            "nothing removed without quorum: {report:?}"
        );
        Ok((!report.refused.is_empty()).then_some(report))
    })
    .await?;
    assert!(
        refused
            .refused
            .iter()
            .any(|r| r.contains("no node of the cluster is active") || r.contains("quorum")),
        "{refused:?}"
    );

    // Its terminate event arrives now: without a leader no peer can go, and the node is
    // still a voter, so the action is held with heartbeats, never completed.
    let terminate = LifecycleBed::event(&bed.pending(last, "terminate").await?);
    let held = function
        .handle(&terminate, Instant::now() + Duration::from_secs(15))
        .await;
    let Err(error) = &held else {
        bail!("expected a held terminate, got {held:?}");
    };
    assert_eq!(error.error_type, "Transient.TerminateHeld", "{error:?}");
    assert!(
        error.message.contains("no node of the cluster is active"),
        "{error:?}"
    );
    let action = bed.pending(last, "terminate").await?;
    assert_eq!(action.result, None, "{action:?}");
    assert!(action.heartbeats > 0, "{action:?}");
    let mut texts = reports;
    texts.push(format!("{held:?}"));
    assert_nothing_leaked(&bed, &logs, &texts, &[]).await
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error_and_changes_nothing() -> Result<()> {
    let logs = capture_logs();
    let mut bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let function = bed.function(&[])?;
    let id = bed.region.instances(None).await?.remove(0);
    let action = bed.pending(&id, "launch").await?;
    let event = LifecycleBed::event(&action);
    let mut errors = Vec::new();

    let mut malformed = event.clone();
    if let Some(detail) = malformed["detail"].as_object_mut() {
        detail.remove("LifecycleActionToken");
    }
    let mut other_group = event.clone();
    other_group["detail"]["AutoScalingGroupName"] = "web-frontend".into();
    for (bad, error_type, says) in [
        (
            &malformed,
            "Permanent.InvalidEvent",
            "LifecycleActionToken".to_owned(),
        ),
        (
            &other_group,
            "Permanent.OtherGroup",
            format!(
                "serves auto scaling group {}, and the event is for web-frontend",
                bed.region.asg
            ),
        ),
    ] {
        let Err(e) = handle(&function, bad).await else {
            bail!("{error_type} expected");
        };
        assert_eq!(e.error_type, error_type, "{e:?}");
        assert!(e.message.contains(&says), "{e:?}");
        errors.push(format!("{e:?}"));
    }

    // A share of an earlier cluster is still stored: never overwritten, nothing initialised.
    let share = format!("{}/unseal/share-1", bed.ssm_path());
    bed.region
        .put_secret_parameter(&share, "old-share-canary")
        .await?;
    let Err(e) = handle(&function, &event).await else {
        bail!("stale shares must stop the launch");
    };
    assert_eq!(e.error_type, "Permanent.StaleShares", "{e:?}");
    assert!(e.message.contains(&share), "{e:?}");
    errors.push(format!("{e:?}"));
    assert_eq!(
        bed.parameter(&share).await?.as_deref(),
        Some("old-share-canary")
    );
    assert_eq!(bed.bao.health_code(0).await?, 501, "not initialised");
    assert_eq!(records(&bed)?.init().await?, None, "no init record");
    assert_eq!(bed.pending(&id, "launch").await?.state, "pending");

    // A credential of an earlier cluster is in the way just the same.
    let ssm = aws_sdk_ssm::Client::new(&bed.region.sdk);
    ssm.delete_parameter().name(&share).send().await?;
    let credential = format!("{}/approle/health-probe/secret-id", bed.ssm_path());
    bed.region
        .put_secret_parameter(&credential, "old-secret-id-canary")
        .await?;
    let Err(e) = handle(&function, &event).await else {
        bail!("a stale credential must stop the launch");
    };
    assert_eq!(e.error_type, "Permanent.StaleShares", "{e:?}");
    assert!(e.message.contains(&credential), "{e:?}");
    errors.push(format!("{e:?}"));
    assert_eq!(bed.bao.health_code(0).await?, 501, "not initialised");

    // Without them, the launch goes through.
    ssm.delete_parameter().name(&credential).send().await?;
    launched(&handle(&function, &event).await)?;

    // Shares missing when a node joins: refused before the join, the node untouched.
    let secrets: Vec<String> = bed.stored_secret_values().await?;
    let ssm = aws_sdk_ssm::Client::new(&bed.region.sdk);
    for n in 1..=5 {
        ssm.delete_parameter()
            .name(format!("{}/unseal/share-{n}", bed.ssm_path()))
            .send()
            .await?;
    }
    let added = bed.scale_out(1).await?;
    let join = LifecycleBed::event(&bed.pending(&added[0], "launch").await?);
    // A permanent error: the launch is abandoned at once, with the error as the reason.
    let outcome = handle(&function, &join).await;
    let Ok(Outcome::Abandoned { reason, .. }) = &outcome else {
        bail!("missing shares must stop the join and abandon the instance: {outcome:?}");
    };
    assert!(reason.starts_with("MissingShares: "), "{reason}");
    assert!(reason.contains("unseal/share-1"), "{reason}");
    errors.push(format!("{outcome:?}"));
    assert_eq!(bed.bao.health_code(1).await?, 501, "not joined");
    let action = bed.pending(&added[0], "launch").await?;
    assert_eq!(action.result.as_deref(), Some("ABANDON"), "{action:?}");
    assert_nothing_leaked(&bed, &logs, &errors, &secrets).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_lifecycle_runs_under_the_lambda_emulator() -> Result<()> {
    let bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let mut env = bed.env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let mut emulator = testbed::lambda::LambdaEmulator::start(&env).await?;
    let id = bed.region.instances(None).await?.remove(0);
    let event = LifecycleBed::event(&bed.pending(&id, "launch").await?);
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&event)?)?;
    let testbed::lambda::Invocation::Ok(report) = emulator
        .invoke_path("node-lifecycle", file.path(), Duration::from_secs(900))
        .await?
    else {
        bail!("the launch failed; emulator output:\n{}", emulator.output());
    };
    assert_eq!(report["outcome"], "launched", "{report}");
    assert_eq!(report["initialised_cluster"], true, "{report}");

    for sample in [
        "node-lifecycle/reconcile.json",
        "node-lifecycle/reconcile-schedule.json",
    ] {
        let testbed::lambda::Invocation::Ok(report) = emulator
            .invoke("node-lifecycle", sample, Duration::from_secs(120))
            .await?
        else {
            bail!("{sample} failed; emulator output:\n{}", emulator.output());
        };
        assert_eq!(report["outcome"], "reconciled", "{sample}: {report}");
    }
    for (sample, error_type) in [
        ("node-lifecycle/launch.json", "Permanent.OtherGroup"),
        ("node-lifecycle/other-group.json", "Permanent.OtherGroup"),
        (
            "snapshot-restore/latest.json",
            "Permanent.UnrecognisedEvent",
        ),
        (
            "node-lifecycle/test-notification.json",
            "Permanent.OtherGroup",
        ),
    ] {
        let testbed::lambda::Invocation::Err(error) = emulator
            .invoke("node-lifecycle", sample, Duration::from_secs(120))
            .await?
        else {
            bail!("{sample} must fail");
        };
        assert!(error.contains(error_type), "{sample}: {error}");
    }
    let output = emulator.output();
    assert!(
        output.contains("cluster bootstrapped"),
        "logs are captured: {output}"
    );
    for (name, secret) in bed.stored_secrets().await? {
        assert!(
            !output.contains(&secret),
            "{name} reached the function's output"
        );
    }

    // A missing setting stops the binary at start-up with the variable's name.
    let binary = testbed::lambda::function_binary("node-lifecycle");
    let out = std::process::Command::new(&binary)
        .env_clear()
        .envs(bed.env().into_iter().filter(|(k, _)| k != "STATE_TABLE"))
        .output()
        .with_context(|| binary.display().to_string())?;
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("STATE_TABLE"), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_terminate_that_would_leave_no_tolerance_waits_for_the_joining_replacement() -> Result<()>
{
    let logs = capture_logs();
    let mut bed = build_cluster(3, Seal::Shamir).await?;
    let leader = view(&bed)
        .await?
        .autopilot()
        .await?
        .leader
        .context("a leader")?;
    let leaving = bed
        .region
        .instances(None)
        .await?
        .into_iter()
        .find(|i| *i != leader)
        .context("a standby")?;
    // The replacement is launched; its launch event is still on its way.
    let replacement = bed.scale_out(1).await?.remove(0);
    bed.terminate(&leaving).await?;
    let terminate = LifecycleBed::event(&bed.pending(&leaving, "terminate").await?);
    let launch = LifecycleBed::event(&bed.pending(&replacement, "launch").await?);
    let (terminating, launching) = (bed.function(&[])?, bed.function(&[])?);
    let delayed_launch = async {
        // The terminate sees the replacement joining before the launch runs.
        tokio::time::sleep(Duration::from_secs(3)).await;
        handle(&launching, &launch).await
    };
    let (left, joined) = tokio::join!(handle(&terminating, &terminate), delayed_launch);
    launched(&joined)?;
    let Ok(Outcome::Terminated(report)) = &left else {
        bail!("expected a terminate, got {left:?}");
    };
    assert!(report.peer_removed && !report.stepped_down, "{report:?}");
    assert_eq!(
        report.waited_for_replacement.as_deref(),
        Some(format!("waited until {replacement} became a healthy voter").as_str()),
        "{report:?}"
    );
    let action = bed.pending(&leaving, "terminate").await?;
    assert_eq!(action.result.as_deref(), Some("CONTINUE"), "{action:?}");
    assert!(
        action.heartbeats > 0,
        "the hook was kept alive while waiting: {action:?}"
    );
    bed.bao.kill(index_of(&bed, &leaving)?);
    // Autopilot forgets a removed server a moment after the removal.
    let view = view(&bed).await?;
    let autopilot = poll_until(
        "autopilot to forget the removed server",
        Duration::from_secs(30),
        || async {
            let autopilot = view.autopilot().await?;
            Ok((!autopilot.servers.contains_key(&leaving)).then_some(autopilot))
        },
    )
    .await?;
    assert_eq!(autopilot.failure_tolerance, 1, "{autopilot:?}");
    assert_nothing_leaked(
        &bed,
        &logs,
        &[format!("{left:?}"), format!("{joined:?}")],
        &[],
    )
    .await
}

#[tokio::test]
async fn a_node_that_never_answers_is_abandoned_and_counted() -> Result<()> {
    let logs = capture_logs();
    let mut bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let id = bed.region.instances(None).await?.remove(0);
    bed.bao.kill(0); // the instance's server never comes up
    let function = bed.function(&[("NODE_API_TIMEOUT_SECS", "2")])?;
    let outcome = handle(
        &function,
        &LifecycleBed::event(&bed.pending(&id, "launch").await?),
    )
    .await;
    let Ok(Outcome::Abandoned { reason, .. }) = &outcome else {
        bail!("expected an abandon, got {outcome:?}");
    };
    assert!(
        reason.contains(&format!("the API of {id} to answer")),
        "{reason}"
    );
    let action = bed.pending(&id, "launch").await?;
    assert_eq!(action.result.as_deref(), Some("ABANDON"), "{action:?}");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&bed.region.sdk);
    let listed = cloudwatch
        .list_metrics()
        .namespace("VaultLifecycle")
        .metric_name("LaunchAbandoned")
        .send()
        .await?;
    assert!(
        listed.metrics().iter().any(|m| m
            .dimensions()
            .iter()
            .any(|d| d.value() == Some(bed.cluster.as_str()))),
        "LaunchAbandoned published for {}",
        bed.cluster
    );
    let logged = logs.contents();
    assert!(logged.contains("abandoning the launch"), "{logged}");
    Ok(())
}

#[tokio::test]
async fn a_cluster_initialised_without_stored_shares_stops_loudly_and_is_not_initialised_again(
) -> Result<()> {
    use shared::lifecycle::records::InitRecord;

    let logs = capture_logs();
    let mut bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let id = bed.region.instances(None).await?.remove(0);
    // An earlier run recorded that it sent sys/init to this node, and died before it
    // stored a single share: the node is initialised, SSM holds nothing.
    records(&bed)?
        .put_init(&InitRecord {
            stage: InitStage::Started,
            node: id.as_str().into(),
            cluster_id: None,
            recovery: false,
        })
        .await?;
    let keys = bed.bao.init(0, 5, 3).await?;
    let outcome = handle(
        &bed.function(&[])?,
        &LifecycleBed::event(&bed.pending(&id, "launch").await?),
    )
    .await;
    let Err(e) = &outcome else {
        bail!("lost shares must stop the launch, got {outcome:?}");
    };
    assert_eq!(e.error_type, "Permanent.InitialisedWithoutShares", "{e:?}");
    assert!(
        e.message.contains(&id) && e.message.contains("will not initialise again"),
        "{e:?}"
    );
    assert_eq!(
        bed.bao.health_code(0).await?,
        503,
        "still the same sealed, initialised node"
    );
    assert!(
        bed.stored_secrets().await?.is_empty(),
        "nothing written to SSM"
    );
    assert_eq!(
        records(&bed)?.init().await?.map(|r| r.stage),
        Some(InitStage::Started)
    );
    assert_eq!(bed.pending(&id, "launch").await?.state, "pending");
    let logged = logs.contents();
    assert!(
        logged.contains("shares were never stored"),
        "said loudly: {logged}"
    );
    for secret in keys.keys.iter().chain([&keys.root_token]) {
        assert!(!logged.contains(secret.as_str()) && !format!("{e:?}").contains(secret.as_str()));
    }
    Ok(())
}

#[tokio::test]
async fn one_launch_delivered_twice_at_once_joins_once_and_made_up_actions_change_nothing(
) -> Result<()> {
    let logs = capture_logs();
    let mut bed = build_cluster(2, Seal::Shamir).await?;
    let added = bed.scale_out(1).await?;
    let launch = LifecycleBed::event(&bed.pending(&added[0], "launch").await?);
    let (one, two) = (bed.function(&[])?, bed.function(&[])?);
    let outcomes = join_all([handle(&one, &launch), handle(&two, &launch)]).await;
    let joined = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::Launched(r)) if r.joined))
        .count();
    let waited_or_done = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::AlreadyCompleted { .. })))
        .count();
    assert_eq!((joined, waited_or_done), (1, 1), "{outcomes:?}");
    let peers = view(&bed).await?.peers().await?;
    assert_eq!(peers.len(), 3, "{peers:?}");

    // A terminate event with a made-up token for an in-service voter: refused.
    let function = bed.function(&[])?;
    let mut forged = launch.clone();
    forged["detail-type"] = "EC2 Instance-terminate Lifecycle Action".into();
    forged["detail"]["LifecycleTransition"] = "autoscaling:EC2_INSTANCE_TERMINATING".into();
    forged["detail"]["LifecycleActionToken"] = "2f1d3c4b-made-up".into();
    let refused = handle(&function, &forged).await;
    let Err(err) = &refused else {
        bail!("a made-up terminate was carried out: {refused:?}");
    };
    assert_eq!(err.error_type, "Permanent.ActionNotPending", "{err:?}");
    assert!(err.message.contains("is in InService"), "{}", err.message);
    // The instance really is terminating now, but the token is not Auto Scaling's.
    bed.terminate(&added[0]).await?;
    let refused = handle(&function, &forged).await;
    let Err(err) = &refused else {
        bail!("a terminate with a made-up token was carried out: {refused:?}");
    };
    assert!(
        err.message
            .contains("no pending action with this event's token"),
        "{}",
        err.message
    );
    assert_eq!(view(&bed).await?.peers().await?, peers, "still three peers");

    // An instance the group puts in service without its node joining: reconcile names
    // it and counts it.
    let stray = bed.scale_out(1).await?.remove(0);
    let action = bed.pending(&stray, "launch").await?;
    aws_sdk_autoscaling::Client::new(&bed.region.sdk)
        .complete_lifecycle_action()
        .auto_scaling_group_name(&action.group)
        .lifecycle_hook_name(&action.hook)
        .lifecycle_action_token(&action.token)
        .lifecycle_action_result("CONTINUE")
        .send()
        .await?;
    let report = reconcile(&function).await?;
    assert_eq!(report.not_peers, vec![stray.as_str().into()], "{report:?}");
    let listed = aws_sdk_cloudwatch::Client::new(&bed.region.sdk)
        .list_metrics()
        .namespace("VaultLifecycle")
        .metric_name("InServiceNotPeer")
        .send()
        .await?;
    assert!(
        listed.metrics().iter().any(|m| m
            .dimensions()
            .iter()
            .any(|d| d.value() == Some(bed.cluster.as_str()))),
        "InServiceNotPeer published for {}",
        bed.cluster
    );
    assert_nothing_leaked(&bed, &logs, &describe(&outcomes), &[]).await
}

#[tokio::test]
async fn warm_pool_instances_join_only_when_they_leave_the_pool() -> Result<()> {
    let logs = capture_logs();
    let bed = LifecycleBed::start(2, Seal::Shamir).await?;
    let ids = bed.region.instances(None).await?;
    let (first, warm) = (&ids[0], &ids[1]);
    let function = bed.function(&[])?;
    let outcome = handle(
        &function,
        &LifecycleBed::event(&bed.pending(first, "launch").await?),
    )
    .await;
    assert!(launched(&outcome)?.initialised_cluster, "{outcome:?}");
    let warm_node = &bed.bao.nodes[index_of(&bed, warm)?];

    // Into the warm pool: completed CONTINUE, the node left uninitialised.
    let into = bed
        .warm_pool_event(warm, "launch", ("EC2", "WarmPool"))
        .await?;
    let entered = handle(&function, &into).await;
    assert!(
        matches!(
            &entered,
            Ok(Outcome::WarmPoolEntered {
                completed_now: true,
                ..
            })
        ),
        "{entered:?}"
    );
    let action = bed.pending(warm, "launch").await?;
    assert_eq!(action.result.as_deref(), Some("CONTINUE"), "{action:?}");
    let vault = VaultClient::new(&VaultSettings {
        ca: CaSource::Pem(bed.bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
    })?;
    let addr: NodeAddr = warm_node.api_addr.parse().map_err(anyhow::Error::msg)?;
    assert_eq!(vault.health(&addr).await?.code, 501, "not initialised");
    assert_eq!(view(&bed).await?.peers().await?, vec![first.clone()]);

    // Out of the pool into service: the normal launch.
    let out = bed
        .warm_pool_event(warm, "launch", ("WarmPool", "AutoScalingGroup"))
        .await?;
    let joined = handle(&function, &out).await;
    assert!(launched(&joined)?.joined, "{joined:?}");
    let mut both = vec![first.clone(), warm.clone()];
    both.sort();
    assert_eq!(view(&bed).await?.peers().await?, both);

    // Scale-in returns it to the pool: its peer goes like any terminate.
    let back = bed
        .warm_pool_event(warm, "terminate", ("AutoScalingGroup", "WarmPool"))
        .await?;
    let left = handle(&function, &back).await;
    let Ok(Outcome::Terminated(report)) = &left else {
        bail!("expected a terminate, got {left:?}");
    };
    assert!(report.peer_removed && report.completed_now, "{report:?}");
    assert_eq!(view(&bed).await?.peers().await?, vec![first.clone()]);

    // Out again with its old Raft data: not joined over it, abandoned with the reason.
    let again = bed
        .warm_pool_event(warm, "launch", ("WarmPool", "AutoScalingGroup"))
        .await?;
    let abandoned = handle(&function, &again).await;
    let Ok(Outcome::Abandoned { reason, .. }) = &abandoned else {
        bail!("expected an abandon, got {abandoned:?}");
    };
    assert!(
        reason.contains("is initialised but is not a raft peer"),
        "{reason}"
    );
    assert_eq!(view(&bed).await?.peers().await?, vec![first.clone()]);
    let texts = [&outcome, &entered, &joined, &left, &abandoned].map(|o| format!("{o:?}"));
    assert_nothing_leaked(&bed, &logs, &texts, &[]).await
}

/// In what order the two terminate events reach the function.
#[derive(Debug, Clone, Copy)]
enum Order {
    FollowerFirst,
    LeaderFirst,
    Together,
}

/// The leader and a follower of a 3-node cluster are terminated through the group
/// (capacity decremented, so nothing replaces them) and their events delivered in
/// `order`: both peers go, both actions complete CONTINUE, and the one node left leads a
/// cluster that takes writes.
async fn leader_and_follower_leave(order: Order) -> Result<()> {
    let logs = capture_logs();
    let mut cluster = SnapshotBed::start(3).await?;
    let bed = &cluster.bed;
    let (leader, others) = leader_and_standbys(bed).await?;
    let [follower, staying] = others.as_slice() else {
        bail!("expected two followers, got {others:?}");
    };
    bed.terminate(&leader).await?;
    bed.terminate(follower).await?;
    let of_leader = LifecycleBed::event(&bed.pending(&leader, "terminate").await?);
    let of_follower = LifecycleBed::event(&bed.pending(follower, "terminate").await?);
    let (one, two) = (bed.function(&[])?, bed.function(&[])?);
    let outcomes = match order {
        Order::FollowerFirst => vec![
            handle(&one, &of_follower).await,
            handle(&one, &of_leader).await,
        ],
        Order::LeaderFirst => vec![
            handle(&one, &of_leader).await,
            handle(&one, &of_follower).await,
        ],
        Order::Together => {
            let (a, b) = tokio::join!(handle(&one, &of_follower), handle(&two, &of_leader));
            vec![a, b]
        }
    };
    for outcome in &outcomes {
        match outcome {
            Ok(Outcome::Terminated(report)) if report.peer_removed && report.completed_now => {}
            other => bail!("{order:?}: expected the peer removed and CONTINUE, got {other:?}"),
        }
    }
    for gone in [&leader, follower] {
        let action = bed.pending(gone, "terminate").await?;
        assert_eq!(action.result.as_deref(), Some("CONTINUE"), "{action:?}");
    }
    let (leader_index, follower_index) = (index_of(bed, &leader)?, index_of(bed, follower)?);
    let staying = staying.clone();
    // The instances end.
    cluster.bed.bao.kill(leader_index);
    cluster.bed.bao.kill(follower_index);
    let after = view(&cluster.bed).await?;
    assert_eq!(after.peers().await?, vec![staying.clone()], "{order:?}");
    assert_eq!(after.autopilot().await?.leader, Some(staying), "{order:?}");
    cluster
        .write(
            "kv/after-two-terminates",
            serde_json::json!({"value": "written"}),
        )
        .await?;
    assert_eq!(
        cluster.kv("after-two-terminates").await?.as_deref(),
        Some("written")
    );
    assert_nothing_leaked(&cluster.bed, &logs, &describe(&outcomes), &[]).await
}

#[tokio::test]
async fn leader_and_follower_terminated_together_follower_event_first_keep_quorum() -> Result<()> {
    leader_and_follower_leave(Order::FollowerFirst).await
}

#[tokio::test]
async fn leader_and_follower_terminated_together_leader_event_first_keep_quorum() -> Result<()> {
    leader_and_follower_leave(Order::LeaderFirst).await
}

#[tokio::test]
async fn leader_and_follower_terminated_together_events_at_once_keep_quorum() -> Result<()> {
    leader_and_follower_leave(Order::Together).await
}

/// Joins that fail the way real ones do, against real nodes: twice with a 500 (as during
/// an election), then one that reaches the node but whose answer is lost. The launch
/// tries again and sends the join that went through only once: a second join of a node
/// that has joined is refused, and the instance would be abandoned.
#[tokio::test]
async fn a_join_failing_with_500_or_losing_its_answer_is_tried_again_and_sent_once() -> Result<()> {
    let logs = capture_logs();
    let mut bed = build_cluster(1, Seal::Shamir).await?;
    let added = bed.scale_out(1).await?;
    let event = LifecycleBed::event(&bed.pending(&added[0], "launch").await?);
    let plain = bed.function(&[])?;
    let function = NodeLifecycle {
        vault: FailingNode::new(plain.vault),
        settings: plain.settings,
        fleet: plain.fleet,
        parameters: plain.parameters,
        login: plain.login,
        locks: plain.locks,
        actions: plain.actions,
        records: plain.records,
        metrics: plain.metrics,
        dr_keys: plain.dr_keys,
        fence: plain.fence,
    };
    function.vault.fail("join", Failure::Status(500), 2);
    function.vault.fail_after("join", Failure::Unreachable, 1);
    let outcome = function
        .handle(&event, Instant::now() + Duration::from_secs(600))
        .await;
    let report = launched(&outcome)?;
    assert!(report.joined && report.completed_now, "{report:?}");
    let action = bed.pending(&added[0], "launch").await?;
    assert_eq!(action.result.as_deref(), Some("CONTINUE"), "{action:?}");
    assert_eq!(view(&bed).await?.peers().await?.len(), 2);
    assert_nothing_leaked(&bed, &logs, &describe(&[outcome]), &[]).await
}
