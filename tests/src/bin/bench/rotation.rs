//! `bench rotation`: each credential-rotation action through the function, side by side
//! with the floor: the same calls made directly with the root token and the shares
//! already in memory, in the same run, against the same cluster (and, for
//! `database-root`, a real PostgreSQL). Rounds alternate between the two. Both paths
//! rotate every round (the function is forced; replaced secret IDs have no grace period,
//! so each round destroys the previous round's).
//!
//! The floors: `keyring`: read the policy and the key status, rotate, read the status.
//! `unseal-shares`: start, the threshold of old shares, the threshold of new ones in
//! verification. `root-key`: `sys/rotate/root`. `approle-secret-ids`: for each function,
//! mint a secret ID, log in with it, revoke the token. `database-root`: `rotate-root`,
//! issue a dynamic credential, revoke its lease.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared::{
    aws::SsmParameters,
    cluster::ports::ParameterStore,
    config::Env,
    events::RotationTarget,
    keys::{generations, read_shares, KeyLayout, ShareKind},
    lifecycle::Outcome,
    rotation::{from_sdk, RotationConfig},
    secret::Secret,
    vault::{RotationStep, VaultClient, VerifyStep},
};
use testbed::{lifecycle::LifecycleBed, openbao::Seal};

const FUNCTIONS: &str =
    "node-lifecycle,health-probe,snapshot-backup,snapshot-restore,credential-rotation";

pub async fn run(rounds: usize) -> Result<()> {
    println!("bench rotation: {rounds} rounds of each action, through credential-rotation and by the raw API");
    let (bed, pg) = tokio::try_join!(
        LifecycleBed::start(1, Seal::Shamir),
        testbed::postgres::Postgres::start()
    )?;
    let launcher = bed.function(&[
        ("APPROLE_FUNCTIONS", FUNCTIONS),
        ("KEEP_ROOT_TOKEN", "true"),
    ])?;
    let action = bed.actions().await?.remove(0);
    let launched = launcher
        .handle(
            &LifecycleBed::event(&action),
            tokio::time::Instant::now() + Duration::from_secs(900),
        )
        .await;
    if !matches!(launched, Ok(Outcome::Launched(_))) {
        bail!("the launch failed: {launched:?}");
    }
    let root = Secret::new(
        bed.parameter(&format!("{}/root-token", bed.ssm_path()))
            .await?
            .context("KEEP_ROOT_TOKEN keeps the root token")?,
    );
    let node = bed.bao.node_addrs()?.remove(0);
    pg.configure_engine(&bed.bao, root.expose(), &[("orders", "orders_admin")])
        .await?;
    let mut env = bed.env();
    env.extend(
        [
            ("DATABASE_CONNECTIONS", "database/orders:orders-app"),
            ("SECRET_ID_GRACE_MINUTES", "0"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let config = RotationConfig::from(&Env::from_pairs(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))?;
    let vault = VaultClient::new(&config.vault)?;
    let kms_key = config.kms_key.clone();
    let roles = config.secret_ids.roles.clone();
    let rotation = from_sdk(&bed.region.sdk, config)?;
    let ssm = SsmParameters::from_sdk(&bed.region.sdk);
    let layout = KeyLayout::from_root(&bed.ssm_path());
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(300);
    // The function's first run logs in; the bench measures warm runs, as a schedule
    // meets them after the first.
    rotation
        .rotate(&[RotationTarget::Keyring], "warm-up", deadline())
        .await?;

    let mut table = Vec::new();
    for target in [
        RotationTarget::Keyring,
        RotationTarget::UnsealShares,
        RotationTarget::RootKey,
        RotationTarget::ApproleSecretIds,
        RotationTarget::DatabaseRoot,
    ] {
        // The functions' role IDs, read before the clock (the floor keeps them).
        let mut role_ids = Vec::new();
        for role in &roles {
            role_ids.push((*role, ssm.secret(&layout.approle(role, "role-id")).await?));
        }
        let (mut through, mut raw) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            for by_function in [round % 2 == 1, round % 2 == 0] {
                // The shares in force, read before the clock starts (the floor keeps
                // them in memory).
                let stored = generations(&ssm, &layout, ShareKind::Unseal).await?;
                let shares =
                    read_shares(&ssm, &layout, (ShareKind::Unseal, stored.in_force), 3, 5).await?;
                let started = Instant::now();
                let took;
                if by_function {
                    rotation
                        .rotate_as(&[target], true, &format!("bench-{round}"), deadline())
                        .await?;
                    took = started.elapsed();
                    through.push(took);
                } else {
                    match target {
                        RotationTarget::Keyring => {
                            vault.keyring_policy(&node, &root).await?;
                            vault.key_status(&node, &root).await?;
                            vault.rotate_keyring(&node, &root).await?;
                            vault.key_status(&node, &root).await?;
                            took = started.elapsed();
                        }
                        RotationTarget::RootKey => {
                            vault.rotate_root_key(&node, &root).await?;
                            took = started.elapsed();
                        }
                        RotationTarget::ApproleSecretIds => {
                            for (role, role_id) in &role_ids {
                                let secret_id =
                                    vault.new_secret_id(&node, &root, "approle", role).await?;
                                let login = vault
                                    .approle_login(&node, "approle", role_id, &secret_id)
                                    .await?;
                                vault.revoke_self(&node, &login.token).await?;
                            }
                            took = started.elapsed();
                        }
                        RotationTarget::DatabaseRoot => {
                            vault
                                .rotate_database_root(&node, &root, "database", "orders")
                                .await?;
                            let issued = vault
                                .database_credential(&node, &root, "database", "orders-app")
                                .await?;
                            vault.revoke_lease(&node, &root, &issued.lease_id).await?;
                            took = started.elapsed();
                        }
                        _ => {
                            let new = raw_share_rotation(&vault, &node, &root, &shares).await?;
                            took = started.elapsed();
                            // Stored after the clock, as the function would have, so
                            // that SSM and the server agree for the next round.
                            let next = stored.in_force + 1;
                            for (n, share) in new.iter().enumerate() {
                                ssm.put_new_secret(
                                    &layout.generation_share(ShareKind::Unseal, next, n + 1),
                                    share,
                                    &kms_key,
                                )
                                .await?;
                            }
                            ssm.put_new_secret(
                                &layout.generation_in_force(ShareKind::Unseal, next),
                                &Secret::new(chrono::Utc::now().to_rfc3339()),
                                &kms_key,
                            )
                            .await?;
                        }
                    }
                    raw.push(took);
                }
                let how = if by_function {
                    "credential-rotation"
                } else {
                    "raw API"
                };
                println!(
                    "  {} round {round}: {how:<20} {:>7.1} ms",
                    target.as_str(),
                    took.as_secs_f64() * 1000.0
                );
            }
        }
        table.push((target, median(&mut raw), median(&mut through)));
    }
    println!();
    println!("| action (median of {rounds}) | raw API | credential-rotation | overhead |");
    println!("|---|---|---|---|");
    for (target, raw, through) in table {
        println!(
            "| `{}` | {:.1} ms | {:.1} ms | {:.1} ms |",
            target.as_str(),
            raw * 1000.0,
            through * 1000.0,
            (through - raw) * 1000.0
        );
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

/// The share rotation's calls, with the shares in memory: start, enter the threshold
/// of shares in force, enter the threshold of new ones back.
async fn raw_share_rotation(
    vault: &VaultClient,
    node: &shared::ids::NodeAddr,
    root: &Secret,
    shares: &[Secret],
) -> Result<Vec<Secret>> {
    let kind = ShareKind::Unseal;
    let started = vault.start_share_rotation(node, root, kind, 5, 3).await?;
    let mut handed = None;
    for share in shares {
        if let RotationStep::NewShares {
            shares,
            verification_nonce,
        } = vault
            .submit_rotation_share(node, root, kind, &started.nonce, share)
            .await?
        {
            handed = Some((shares, verification_nonce.context("verification nonce")?));
        }
    }
    let (new, nonce) = handed.context("no new shares at the threshold")?;
    for share in &new[..3] {
        if vault
            .submit_verification_share(node, root, kind, &nonce, share)
            .await?
            == VerifyStep::Complete
        {
            return Ok(new);
        }
    }
    bail!("verification did not complete")
}
