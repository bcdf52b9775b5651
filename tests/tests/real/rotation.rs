//! credential-rotation against a real OpenBao node bootstrapped by node-lifecycle (with
//! the credential-rotation AppRole and its policy), moto's DynamoDB for the lock and its
//! SSM for the function's credentials.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use shared::{
    aws::SsmParameters,
    cluster::ports::ParameterStore,
    config::Env,
    errors::Classify,
    events::RotationTarget,
    keys::{KeyLayout, ShareKind},
    lifecycle::Outcome,
    rotation::{RotationConfig, RotationReport},
    secret::Secret,
    testing::{capture_logs, FailingNode, Failure},
    vault::{KeyringPolicy, VaultClient},
};
use testbed::{
    lifecycle::{handle, LifecycleBed},
    openbao::Seal,
    snapshots::DR_REGION,
};
use tokio::time::Instant;

fn keyring<E: std::fmt::Debug>(
    report: &Result<RotationReport, E>,
) -> Result<shared::rotation::KeyringReport> {
    match report {
        Ok(RotationReport {
            keyring: Some(k), ..
        }) => Ok(k.clone()),
        other => bail!("expected a keyring report, got {other:?}"),
    }
}

const WITH_ROTATION: &str =
    "node-lifecycle,health-probe,snapshot-backup,snapshot-restore,credential-rotation";

/// A cluster of `size` nodes, each launched by node-lifecycle with `settings` (at once, as
/// Auto Scaling delivers them) and credential-rotation's AppRole among the functions.
async fn launched(size: i32, settings: &[(&str, &str)]) -> Result<LifecycleBed> {
    launched_with(size, Seal::Shamir, settings).await
}

/// [`launched`], with the seal given.
async fn launched_with(size: i32, seal: Seal, settings: &[(&str, &str)]) -> Result<LifecycleBed> {
    let bed = LifecycleBed::start(size, seal).await?;
    launch_all(&bed, settings).await?;
    Ok(bed)
}

/// Launches every node of `bed` waiting for it.
async fn launch_all(bed: &LifecycleBed, settings: &[(&str, &str)]) -> Result<()> {
    let mut settings = settings.to_vec();
    settings.push(("APPROLE_FUNCTIONS", WITH_ROTATION));
    let mut launches = Vec::new();
    for action in bed.actions().await? {
        let function = bed.function(&settings)?;
        launches.push(async move { handle(&function, &LifecycleBed::event(&action)).await });
    }
    for launched in futures::future::join_all(launches).await {
        if !matches!(launched, Ok(Outcome::Launched(_))) {
            bail!("a launch failed: {launched:?}");
        }
    }
    Ok(())
}

/// credential-rotation's configuration: the bed's environment and `extra`.
fn rotation_config(bed: &LifecycleBed, extra: &[(&str, &str)]) -> Result<RotationConfig> {
    let mut env = bed.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok(RotationConfig::from(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_is_rotated_when_old_kept_when_young_and_its_policy_set() -> Result<()> {
    let logs = capture_logs();
    let mut bed = launched(1, &[("KEEP_ROOT_TOKEN", "true")]).await?;
    let root = Secret::new(
        bed.parameter(&format!("{}/root-token", bed.ssm_path()))
            .await?
            .context("KEEP_ROOT_TOKEN keeps the root token")?,
    );
    let node = bed.bao.node_addrs()?.remove(0);
    let config = rotation_config(&bed, &[])?;
    let vault: VaultClient = VaultClient::new(&config.vault)?;
    let mut rotation = shared::rotation::from_sdk(&bed.region.sdk, config)?;
    let deadline = || Instant::now() + Duration::from_secs(120);

    // A new cluster's key is young: the default configuration keeps it and the server's
    // default policy (which it already matches).
    let first = rotation
        .handle(&json!({"rotate": ["keyring"]}), "req-1", deadline())
        .await;
    let first = keyring(&first)?;
    assert!(!first.rotated && !first.policy_updated, "{first:?}");
    assert_eq!(first.term, vault.key_status(&node, &root).await?.term);

    // Older than the maximum age: rotated, through the function's own AppRole and policy.
    rotation.keyring.max_age = Duration::from_secs(1);
    rotation.keyring.policy = KeyringPolicy {
        enabled: true,
        max_operations: 1_000_000,
        interval: Duration::from_secs(720 * 3600),
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = rotation
        .rotate(&[RotationTarget::Keyring], "req-2", deadline())
        .await;
    let second = keyring(&second)?;
    assert!(second.rotated && second.policy_updated, "{second:?}");
    assert_eq!(second.term, first.term + 1);
    let status = vault.key_status(&node, &root).await?;
    assert_eq!(
        (status.term, status.install_time),
        (second.term, second.installed_at)
    );
    assert_eq!(
        vault.keyring_policy(&node, &root).await?,
        rotation.keyring.policy,
        "the server's own rotation policy is the configured one"
    );

    // Run again at once (a redelivery, or a run after a cut-off): nothing to do.
    rotation.keyring.max_age = Duration::from_secs(3600);
    let third = rotation
        .rotate(&[RotationTarget::Keyring], "req-3", deadline())
        .await;
    let third = keyring(&third)?;
    assert!(!third.rotated && !third.policy_updated, "{third:?}");
    assert_eq!(vault.key_status(&node, &root).await?.term, second.term);

    // database-root with no connection configured: refused before anything changes,
    // the keyring named first included.
    let refused = rotation
        .handle(
            &json!({"rotate": ["keyring", "database-root"]}),
            "req-4",
            deadline(),
        )
        .await
        .expect_err("no database connection configured");
    assert_eq!(refused.error_type, "Permanent.NoDatabaseConnections");

    // A new root key: the shares are unchanged, so node-lifecycle unseals the node with
    // them after a restart.
    let root_key = rotation
        .rotate(&[RotationTarget::RootKey], "req-5", deadline())
        .await?
        .root_key
        .context("the root-key action ran")?;
    assert!(root_key.rotated, "never rotated before: {root_key:?}");
    bed.bao.restart(0).await?;
    let lifecycle = bed.function(&[("APPROLE_FUNCTIONS", WITH_ROTATION)])?;
    let reconciled = handle(&lifecycle, &json!({"action": "reconcile"})).await;
    assert!(
        matches!(&reconciled, Ok(Outcome::Reconciled(r)) if r.unsealed.len() == 1),
        "{reconciled:?}"
    );
    assert_eq!(vault.key_status(&node, &root).await?.term, second.term);

    // The binary, under the Lambda emulator, with the sample events.
    let mut env = bed.env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let mut emulator = testbed::lambda::LambdaEmulator::start(&env).await?;
    let testbed::lambda::Invocation::Ok(report) = emulator
        .invoke(
            "credential-rotation",
            "credential-rotation/root-key.json",
            Duration::from_secs(120),
        )
        .await?
    else {
        bail!(
            "root-key.json failed; emulator output:\n{}",
            emulator.output()
        );
    };
    assert_eq!(
        report["root_key"]["rotated"], false,
        "rotated moments ago: {report}"
    );
    for sample in [
        "credential-rotation/keyring.json",
        "credential-rotation/schedule.json",
    ] {
        let testbed::lambda::Invocation::Ok(report) = emulator
            .invoke("credential-rotation", sample, Duration::from_secs(120))
            .await?
        else {
            bail!("{sample} failed; emulator output:\n{}", emulator.output());
        };
        assert_eq!(report["keyring"]["rotated"], false, "{sample}: {report}");
        assert_eq!(report["keyring"]["term"], second.term, "{sample}: {report}");
    }
    let answer = emulator
        .invoke(
            "credential-rotation",
            "credential-rotation/direct.json",
            Duration::from_secs(120),
        )
        .await?;
    assert!(
        format!("{answer:?}").contains("Permanent.NoDatabaseConnections"),
        "direct.json: {answer:?}"
    );
    // The unseal shares of a cluster made at init (generation 1): a new generation.
    let testbed::lambda::Invocation::Ok(report) = emulator
        .invoke(
            "credential-rotation",
            "credential-rotation/unseal-shares.json",
            Duration::from_secs(120),
        )
        .await?
    else {
        bail!(
            "unseal-shares.json failed; emulator output:\n{}",
            emulator.output()
        );
    };
    assert_eq!(report["unseal_shares"]["generation"], 2, "{report}");
    assert_eq!(report["unseal_shares"]["rotated"], true, "{report}");
    let answer = emulator
        .invoke(
            "credential-rotation",
            "credential-rotation/recovery-shares.json",
            Duration::from_secs(120),
        )
        .await?;
    assert!(
        format!("{answer:?}").contains("Permanent.SealMismatch"),
        "recovery-shares.json on a Shamir seal: {answer:?}"
    );
    let printed = emulator.output();

    let mut secrets: Vec<String> = bed.stored_secret_values().await?;
    secrets.push(root.expose().to_owned());
    let logged = logs.contents();
    assert!(logged.contains("keyring rotated"), "logs are captured");
    testbed::assert_no_secret(&secrets, &[&logged, &refused.message, &printed]);
    Ok(())
}

/// A share rotation's runs: cut off at verification (resumed), cut off and the server
/// restarted (discarded), each time with a node restarted and unsealed by node-lifecycle
/// with the generation the server holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseal_shares_rotate_through_cut_offs_and_restarted_nodes_unseal_with_the_new_generation(
) -> Result<()> {
    let logs = capture_logs();
    let mut bed = LifecycleBed::start(3, Seal::Shamir).await?;
    let dr = testbed::moto::RegionFixture::create(bed.moto, DR_REGION, &bed.cluster).await?;
    let dr_settings = [
        ("DR_REGION", DR_REGION),
        ("DR_KMS_KEY_ID", dr.kms_key.as_str()),
    ];
    launch_all(&bed, &dr_settings).await?;
    let lifecycle = bed.function(&dr_settings)?;
    let config = rotation_config(&bed, &dr_settings)?;
    let deployed = shared::rotation::from_sdk(&bed.region.sdk, config)?;
    let rotation = shared::rotation::CredentialRotation {
        vault: FailingNode::new(deployed.vault),
        fleet: deployed.fleet,
        login: deployed.login,
        locks: deployed.locks,
        parameters: deployed.parameters,
        shares: deployed.shares,
        on_schedule: deployed.on_schedule,
        fence: deployed.fence,
        serving_for: deployed.serving_for,
        keyring: deployed.keyring,
        secret_ids: deployed.secret_ids,
        root_key_max_age: deployed.root_key_max_age,
        backup: deployed.backup,
        databases: deployed.databases,
    };
    let dr_ssm = SsmParameters::in_region(&bed.region.sdk, DR_REGION);
    let layout = KeyLayout::from_root(&bed.ssm_path());
    let share =
        |generation: u32, n: usize| layout.generation_share(ShareKind::Unseal, generation, n);
    let deadline = || Instant::now() + Duration::from_secs(300);
    let targets = [RotationTarget::UnsealShares];

    // Cut off before verification: generation 2 is stored, in both regions, not in force.
    rotation
        .vault
        .fail("submit_verification_share", Failure::Unreachable, 1);
    let cut = rotation
        .rotate(&targets, "req-1", deadline())
        .await
        .expect_err("cut off at verification");
    assert!(cut.retry_helps(), "{cut}");
    let pending = bed
        .parameter(&share(2, 5))
        .await?
        .context("stored before verification")?;
    assert_eq!(
        dr_ssm.secret(&share(2, 5)).await?.expose(),
        pending,
        "and in the DR region"
    );
    // The re-run resumes verification on the server, which still holds the rotation.
    let resumed = unseal_report(rotation.rotate(&targets, "req-2", deadline()).await)?;
    assert_eq!(
        (resumed.generation, resumed.settled),
        (2, Some(2)),
        "{resumed:?}"
    );

    // A restarted node is unsealed by node-lifecycle with generation 2.
    let standby = standby_index(&bed).await?;
    bed.bao.restart(standby).await?;
    reconcile_until_unsealed(&lifecycle, &bed, standby).await?;

    // Cut off again (forced: generation 2 is young), then the active node restarts: the
    // server forgot the rotation, generation 2 still unseals, and the re-run discards
    // generation 3 and makes a new one.
    rotation
        .vault
        .fail("submit_verification_share", Failure::Unreachable, 1);
    rotation
        .rotate_as(&targets, true, "req-3", deadline())
        .await
        .expect_err("cut off at verification");
    let forgotten = bed
        .parameter(&share(3, 1))
        .await?
        .context("generation 3 stored")?;
    let active = active_index(&bed).await?;
    bed.bao.restart(active).await?;
    reconcile_until_unsealed(&lifecycle, &bed, active).await?;
    let converged = loop {
        match rotation
            .rotate_as(&targets, true, "req-4", deadline())
            .await
        {
            Err(e) if e.retry_helps() => tokio::time::sleep(Duration::from_secs(1)).await,
            other => break unseal_report(other)?,
        }
    };
    assert_eq!(
        (converged.discarded, converged.generation, converged.rotated),
        (Some(3), 3, true),
        "{converged:?}"
    );
    assert_ne!(
        bed.parameter(&share(3, 1)).await?.as_deref(),
        Some(forgotten.as_str())
    );
    let standby = standby_index(&bed).await?;
    bed.bao.restart(standby).await?;
    reconcile_until_unsealed(&lifecycle, &bed, standby).await?;
    assert!(
        bed.parameter(&share(1, 1)).await?.is_some(),
        "generation 1 is kept for older snapshots"
    );

    let secrets: Vec<String> = bed.stored_secret_values().await?;
    assert!(secrets.len() >= 15, "three generations of five shares");
    testbed::assert_no_secret(&secrets, &[&logs.contents(), &cut.to_string()]);
    Ok(())
}

fn unseal_report<E: std::fmt::Debug>(
    report: Result<RotationReport, E>,
) -> Result<shared::rotation::SharesReport> {
    match report {
        Ok(RotationReport {
            unseal_shares: Some(r),
            ..
        }) => Ok(r),
        other => bail!("expected an unseal-shares report, got {other:?}"),
    }
}

async fn active_index(bed: &LifecycleBed) -> Result<usize> {
    for _ in 0..60 {
        for i in 0..3 {
            if bed.bao.health_code(i).await.ok() == Some(200) {
                return Ok(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("no active node")
}

async fn standby_index(bed: &LifecycleBed) -> Result<usize> {
    let active = active_index(bed).await?;
    Ok((active + 1) % 3)
}

/// Reconciles until node `index` answers unsealed (a restarted node needs a moment to
/// answer, and a new leader to be elected when it led).
async fn reconcile_until_unsealed(
    lifecycle: &testbed::lifecycle::Function,
    bed: &LifecycleBed,
    index: usize,
) -> Result<()> {
    for _ in 0..30 {
        let reconciled = handle(lifecycle, &json!({"action": "reconcile"})).await;
        if !matches!(bed.bao.health_code(index).await, Ok(503) | Err(_)) {
            return Ok(());
        }
        tracing::debug!(?reconciled, "node still sealed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("node {index} stayed sealed after reconciles")
}

/// approle-secret-ids against a node bootstrapped by node-lifecycle: every function logs
/// in before and after; a replaced secret ID keeps working through its grace period and
/// is destroyed after it; the binary, under the emulator, finds them young.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_ids_are_replaced_and_every_function_logs_in_before_and_after() -> Result<()> {
    let logs = capture_logs();
    let bed = launched(1, &[]).await?;
    let node = bed.bao.node_addrs()?.remove(0);
    let config = rotation_config(&bed, &[])?;
    let vault = VaultClient::new(&config.vault)?;
    let mut rotation = shared::rotation::from_sdk(&bed.region.sdk, config)?;
    let functions: Vec<&str> = WITH_ROTATION.split(',').collect();
    let layout = KeyLayout::from_root(&bed.ssm_path());
    let stored = |function: &str, which: &str| {
        let name = layout.approle(function, which);
        let bed = &bed;
        async move { bed.parameter(&name).await }
    };
    let logs_in = |function: String, secret_id: String| {
        let (vault, node, stored) = (&vault, &node, &stored);
        async move {
            let role_id = stored(&function, "role-id").await?.context("role ID")?;
            Ok::<_, anyhow::Error>(
                vault
                    .approle_login(
                        node,
                        "approle",
                        &Secret::new(role_id),
                        &Secret::new(secret_id),
                    )
                    .await
                    .is_ok(),
            )
        }
    };
    let mut old = Vec::new();
    for function in &functions {
        let secret_id = stored(function, "secret-id").await?.context("secret ID")?;
        assert!(
            logs_in(function.to_string(), secret_id.clone()).await?,
            "{function} before"
        );
        old.push(secret_id);
    }
    let deadline = || Instant::now() + Duration::from_secs(120);
    let targets = [RotationTarget::ApproleSecretIds];

    // Forced: every secret ID is replaced, proven, and the old ones still log in.
    let report = rotation
        .rotate_as(&targets, true, "req-1", deadline())
        .await?;
    let reports = report.approle_secret_ids.context("the action ran")?;
    assert_eq!(reports.len(), functions.len(), "{reports:?}");
    assert!(
        reports.iter().all(|r| r.rotated && r.expires.is_some()),
        "{reports:?}"
    );
    let mut new = Vec::new();
    for (function, old) in functions.iter().zip(&old) {
        let secret_id = stored(function, "secret-id").await?.context("secret ID")?;
        assert_ne!(&secret_id, old);
        assert!(
            logs_in(function.to_string(), secret_id.clone()).await?,
            "{function} after"
        );
        assert!(
            logs_in(function.to_string(), old.clone()).await?,
            "{function}: the old one in its grace period"
        );
        new.push(secret_id);
    }

    // The grace period over: the old ones are destroyed, not before.
    rotation.secret_ids.grace = Duration::ZERO;
    let report = rotation.rotate(&targets, "req-2", deadline()).await?;
    let reports = report.approle_secret_ids.context("the action ran")?;
    assert!(
        reports.iter().all(|r| r.destroyed_previous && !r.rotated),
        "{reports:?}"
    );
    for ((function, old), new) in functions.iter().zip(&old).zip(&new) {
        assert!(
            !logs_in(function.to_string(), old.clone()).await?,
            "{function}: destroyed"
        );
        assert!(
            logs_in(function.to_string(), new.clone()).await?,
            "{function}: the new one"
        );
        assert_eq!(stored(function, "retiring").await?, None);
    }

    // The binary, logging in with its own (new) secret ID through its own policy.
    let mut env = bed.env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let mut emulator = testbed::lambda::LambdaEmulator::start(&env).await?;
    let testbed::lambda::Invocation::Ok(answer) = emulator
        .invoke(
            "credential-rotation",
            "credential-rotation/approle-secret-ids.json",
            Duration::from_secs(120),
        )
        .await?
    else {
        bail!(
            "approle-secret-ids.json failed; emulator output:\n{}",
            emulator.output()
        );
    };
    let young = answer["approle_secret_ids"].as_array().context("reports")?;
    assert_eq!(young.len(), functions.len(), "{answer}");
    assert!(young.iter().all(|r| r["rotated"] == false), "{answer}");
    let printed = emulator.output();

    let mut secrets: Vec<String> = bed.stored_secret_values().await?;
    secrets.extend(old);
    testbed::assert_no_secret(&secrets, &[&logs.contents(), &printed]);
    Ok(())
}

/// database-root against OpenBao's database engine and a real PostgreSQL: a connection
/// whose admin is a static role's user stops the run before any rotation; then the root
/// credentials are rotated, a dynamic credential connects, and the old admin password is
/// refused by PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_root_is_rotated_proven_and_a_static_role_conflict_changes_nothing() -> Result<()>
{
    let logs = capture_logs();
    let (bed, pg) = tokio::try_join!(
        launched(1, &[("KEEP_ROOT_TOKEN", "true")]),
        testbed::postgres::Postgres::start()
    )?;
    let root = bed
        .parameter(&format!("{}/root-token", bed.ssm_path()))
        .await?
        .context("KEEP_ROOT_TOKEN keeps the root token")?;
    let api = |method: reqwest::Method, path: &'static str, body: serde_json::Value| {
        let (bao, root) = (&bed.bao, root.as_str());
        async move {
            let (status, answer) = bao.api(0, method, path, Some(root), Some(body)).await?;
            if status >= 300 {
                bail!("{path}: {status} {answer}");
            }
            Ok(answer)
        }
    };
    // Two engine users, each the admin of a connection; billing's is also a static
    // role's user.
    let admin_passwords = pg
        .configure_engine(
            &bed.bao,
            &root,
            &[("orders", "orders_admin"), ("billing", "billing_admin")],
        )
        .await?;
    api(
        reqwest::Method::POST,
        "database/static-roles/billing-owner",
        json!({"db_name": "billing", "username": "billing_admin", "rotation_period": "24h"}),
    )
    .await?;
    // The static role took billing_admin's password: the engine's own connection is the
    // conflict the action refuses.
    let config = rotation_config(
        &bed,
        &[(
            "DATABASE_CONNECTIONS",
            "database/orders:orders-app,database/billing:orders-app",
        )],
    )?;
    let mut rotation = shared::rotation::from_sdk(&bed.region.sdk, config)?;
    let deadline = || Instant::now() + Duration::from_secs(120);
    let targets = [RotationTarget::DatabaseRoot];
    let refused = rotation
        .rotate(&targets, "req-1", deadline())
        .await
        .expect_err("a static role's user");
    assert_eq!(refused.name(), "DatabaseAdminIsStaticRole", "{refused}");
    assert!(refused.to_string().contains("billing-owner"), "{refused}");
    assert_eq!(
        pg.query_as("orders_admin", &admin_passwords[0], "select 1")?
            .trim(),
        "1",
        "orders was not rotated either"
    );
    let generation_path = format!("{}/database-root/generation", bed.ssm_path());
    assert_eq!(
        bed.parameter(&generation_path).await?,
        None,
        "no count written"
    );

    // orders alone: rotated, proven; the old admin password is refused by PostgreSQL.
    rotation.databases.truncate(1);
    let report = rotation.rotate(&targets, "req-2", deadline()).await?;
    let reports = report.database_root.context("the action ran")?;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].connection.as_str(), reports[0].admin.as_str()),
        ("database/orders", "orders_admin")
    );
    assert_eq!(reports[0].generation, 2);
    assert_eq!(
        bed.parameter(&generation_path).await?.as_deref(),
        Some("2"),
        "the generation of database root credentials, as snapshot-backup reads it"
    );
    let ssm = shared::aws::SsmParameters::from_sdk(&bed.region.sdk);
    let keys = shared::keys::KeyLayout::from_root(&bed.ssm_path());
    assert_eq!(
        shared::keys::database_generation_for_catalog(&ssm, &keys).await,
        Some(2)
    );
    let old_refused = pg.query_as("orders_admin", &admin_passwords[0], "select 1");
    assert!(old_refused.is_err(), "the old admin password still logs in");
    let creds = api(reqwest::Method::GET, "database/creds/orders-app", json!({})).await?;
    let (user, password) = (
        creds["data"]["username"].as_str().context("username")?,
        creds["data"]["password"].as_str().context("password")?,
    );
    assert_eq!(pg.query_as(user, password, "select 1")?.trim(), "1");
    let proving_user = &reports[0].proven_with;
    let leftover = pg.query(&format!(
        "select count(*) from pg_roles where rolname = '{proving_user}'"
    ))?;
    assert_eq!(
        leftover.trim(),
        "0",
        "the proving credential's lease was revoked"
    );

    let mut secrets: Vec<String> = bed.stored_secret_values().await?;
    secrets.extend(admin_passwords);
    secrets.push(password.to_owned());
    testbed::assert_no_secret(&secrets, &[&logs.contents(), &refused.to_string()]);
    Ok(())
}

/// recovery-shares on an auto-unseal (transit) cluster: a new generation of recovery
/// shares is verified and marked, the next rotation is entered with it (so the server
/// holds it), and unseal-shares is refused on this seal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_shares_rotate_in_generations_on_an_auto_unseal_cluster() -> Result<()> {
    let logs = capture_logs();
    let seal = testbed::openbao::SealServer::start().await?;
    let bed = launched_with(1, seal.seal_for(), &[]).await?;
    let rotation = shared::rotation::from_sdk(&bed.region.sdk, rotation_config(&bed, &[])?)?;
    let deadline = || Instant::now() + Duration::from_secs(120);
    let targets = [RotationTarget::RecoveryShares];
    let recovery = |report: RotationReport| report.recovery_shares.context("the action ran");
    let first = recovery(rotation.rotate(&targets, "req-1", deadline()).await?)?;
    assert_eq!(
        (first.previous_generation, first.generation),
        (1, 2),
        "{first:?}"
    );
    let layout = KeyLayout::from_root(&bed.ssm_path());
    for n in 1..=usize::from(first.shares) {
        let name = layout.generation_share(ShareKind::Recovery, 2, n);
        assert!(bed.parameter(&name).await?.is_some(), "{name}");
    }
    assert!(bed
        .parameter(&layout.generation_in_force(ShareKind::Recovery, 2))
        .await?
        .is_some());
    // The server holds generation 2: a forced rotation is entered with it.
    let second = recovery(
        rotation
            .rotate_as(&targets, true, "req-2", deadline())
            .await?,
    )?;
    assert_eq!(
        (second.previous_generation, second.generation),
        (2, 3),
        "{second:?}"
    );
    let refused = rotation
        .rotate(&[RotationTarget::UnsealShares], "req-3", deadline())
        .await
        .expect_err("no unseal shares on an auto-unseal cluster");
    assert_eq!(refused.name(), "SealMismatch");
    assert!(refused.to_string().contains("recovery-shares"), "{refused}");
    let secrets: Vec<String> = bed.stored_secret_values().await?;
    testbed::assert_no_secret(&secrets, &[&logs.contents()]);
    Ok(())
}

/// Two runs at once, as two Lambda environments would make them (two instances of the
/// function, each with its own login), against the real cluster, DynamoDB lock and SSM:
/// one new generation of shares and one root key rotation, whichever run makes them;
/// the other finds the lock held or the rotation young. The shares of the generation in
/// force unseal a restarted node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_rotate_once_on_the_real_servers() -> Result<()> {
    let logs = capture_logs();
    let mut bed = launched(1, &[]).await?;
    let first = shared::rotation::from_sdk(&bed.region.sdk, rotation_config(&bed, &[])?)?;
    let second = shared::rotation::from_sdk(&bed.region.sdk, rotation_config(&bed, &[])?)?;
    let deadline = || Instant::now() + Duration::from_secs(300);
    let targets = [RotationTarget::UnsealShares, RotationTarget::RootKey];
    let (a, b) = tokio::join!(
        first.rotate(&targets, "req-a", deadline()),
        second.rotate(&targets, "req-b", deadline()),
    );
    let reports = [a?, b?];
    let shares_rotated = reports
        .iter()
        .filter(|r| r.unseal_shares.as_ref().is_some_and(|s| s.rotated))
        .count();
    let root_key_rotated = reports
        .iter()
        .filter(|r| r.root_key.as_ref().is_some_and(|k| k.rotated))
        .count();
    assert_eq!(
        (shares_rotated, root_key_rotated),
        (1, 1),
        "one rotation of each kind: {reports:?}"
    );
    let ssm = SsmParameters::from_sdk(&bed.region.sdk);
    let layout = KeyLayout::from_root(&bed.ssm_path());
    let stored = shared::keys::generations(&ssm, &layout, ShareKind::Unseal).await?;
    assert_eq!((stored.in_force, stored.pending), (2, None));
    assert!(
        !ssm.exists(&layout.generation_share(ShareKind::Unseal, 3, 1))
            .await?,
        "no third generation"
    );
    // The server holds generation 2: a restarted node unseals with it and no other.
    bed.bao.restart(0).await?;
    let shares = shared::keys::read_shares(&ssm, &layout, (ShareKind::Unseal, 2), 3, 5).await?;
    let vault = VaultClient::new(&rotation_config(&bed, &[])?.vault)?;
    let node = bed.bao.node_addrs()?.remove(0);
    let mut status = None;
    for share in &shares {
        status = Some(vault.unseal(&node, share).await?);
    }
    assert!(
        status.is_some_and(|s| !s.sealed),
        "generation 2 opens the seal"
    );
    let secrets: Vec<String> = bed.stored_secret_values().await?;
    testbed::assert_no_secret(&secrets, &[&logs.contents()]);
    Ok(())
}
