//! credential-rotation against a real OpenBao node bootstrapped by node-lifecycle (with
//! the credential-rotation AppRole and its policy), moto's DynamoDB for the lock and its
//! SSM for the function's credentials.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use shared::{
    config::Env,
    events::RotationTarget,
    lifecycle::Outcome,
    rotation::{RotationConfig, RotationReport},
    secret::Secret,
    testing::capture_logs,
    vault::{KeyringPolicy, VaultClient},
};
use testbed::{
    lifecycle::{handle, LifecycleBed},
    openbao::Seal,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_is_rotated_when_old_kept_when_young_and_its_policy_set() -> Result<()> {
    let logs = capture_logs();
    let bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let launcher = bed.function(&[
        ("APPROLE_FUNCTIONS", WITH_ROTATION),
        ("KEEP_ROOT_TOKEN", "true"),
    ])?;
    let action = bed.actions().await?.remove(0);
    let launched = handle(&launcher, &LifecycleBed::event(&action)).await;
    if !matches!(launched, Ok(Outcome::Launched(_))) {
        bail!("the launch failed: {launched:?}");
    }
    let root = Secret::new(
        bed.parameter(&format!("{}/root-token", bed.ssm_path()))
            .await?
            .context("KEEP_ROOT_TOKEN keeps the root token")?,
    );
    let node = bed.bao.node_addrs()?.remove(0);
    let env = bed.env();
    let config = RotationConfig::from(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))?;
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

    // A target this version does not rotate: refused, nothing changed.
    let refused = rotation
        .handle(&json!({"rotate": ["unseal-shares"]}), "req-4", deadline())
        .await
        .expect_err("not available");
    assert_eq!(refused.error_type, "Permanent.RotationNotAvailable");

    // The binary, under the Lambda emulator, with the sample events.
    let mut env = bed.env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let mut emulator = testbed::lambda::LambdaEmulator::start(&env).await?;
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
    for sample in [
        "credential-rotation/direct.json",
        "credential-rotation/unseal-shares.json",
    ] {
        let answer = emulator
            .invoke("credential-rotation", sample, Duration::from_secs(120))
            .await?;
        assert!(
            format!("{answer:?}").contains("Permanent.RotationNotAvailable"),
            "{sample}: {answer:?}"
        );
    }
    let printed = emulator.output();

    let mut secrets: Vec<String> = bed
        .stored_secrets()
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    secrets.push(root.expose().to_owned());
    let logged = logs.contents();
    assert!(logged.contains("keyring rotated"), "logs are captured");
    testbed::assert_no_secret(&secrets, &[&logged, &refused.message, &printed]);
    Ok(())
}
