use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::errors::Classify;
use crate::secret::Secret;
use crate::{
    config::AuthSettings,
    testing::{capture_logs, FailingNode, FakeCluster, FakeFleet, FakeLocks, FakeParameters},
    vault::KeyringPolicy,
};

const NODES: [&str; 3] = ["i-1", "i-2", "i-3"];

mod database;
mod secret_ids;
mod shares;

fn rotation(
    cluster: FakeCluster,
    locks: FakeLocks,
) -> CredentialRotation<FakeFleet, FakeCluster, FakeParameters> {
    rotation_over(FakeFleet::of(&cluster, &NODES), cluster, locks)
}

/// credential-rotation over `vault` (the fake cluster, or a wrapper around it), keys under
/// `/p/prod` (nothing stored yet), and a DR region.
fn rotation_over<N: NodeApi>(
    fleet: FakeFleet,
    vault: N,
    locks: FakeLocks,
) -> CredentialRotation<FakeFleet, N, FakeParameters> {
    let auth = AuthSettings::AppRole {
        mount: "approle".into(),
        role_id_parameter: "/r".into(),
        secret_id_parameter: "/s".into(),
    };
    CredentialRotation {
        fleet,
        vault,
        login: VaultLogin::new(
            auth,
            FakeParameters::with(&[("/r", "role-canary"), ("/s", "secret-canary")]),
        ),
        locks: Box::new(locks),
        parameters: FakeParameters::default(),
        shares: ShareStore {
            max_age: Duration::from_secs(90 * 86_400),
            layout: crate::keys::KeyLayout::new("/p", "prod"),
            kms_key: "alias/vault".into(),
            dr: Some(crate::keys::DrKeys {
                parameters: FakeParameters::default(),
                kms_key: "alias/vault-dr".into(),
            }),
        },
        on_schedule: vec![RotationTarget::Keyring],
        fence: None,
        serving_for: None,
        root_key_max_age: Duration::from_secs(90 * 86_400),
        backup: None,
        databases: Vec::new(),
        secret_ids: SecretIdSettings {
            roles: vec!["health-probe", "snapshot-backup"],
            mount: "approle".into(),
            max_age: Duration::from_secs(7 * 86_400),
            grace: Duration::from_secs(3600),
        },
        keyring: KeyringSettings {
            max_age: Duration::from_secs(30 * 86_400),
            policy: crate::testing::default_keyring_policy(),
        },
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(300)
}

fn aged(cluster: &FakeCluster, days: i64) {
    let mut s = cluster.state();
    s.keyring_term = 4;
    s.keyring_installed = Utc::now() - chrono::Duration::days(days);
}

fn schedule() -> serde_json::Value {
    json!({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}})
}

#[tokio::test]
async fn a_key_older_than_the_maximum_age_is_rotated_once_and_a_rerun_changes_nothing() {
    let logs = capture_logs();
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 31);
    let rotation = rotation(cluster, FakeLocks::default());
    let first = rotation
        .handle(&schedule(), "req-1", deadline())
        .await
        .expect("rotated");
    let keyring = first.keyring.expect("the keyring action ran");
    assert!(keyring.rotated);
    assert_eq!((keyring.previous_term, keyring.term), (4, 5));
    assert!(
        !keyring.policy_updated,
        "the default policy already matched"
    );
    // The same tick again (or a run after a cut-off past the rotation): a fresh key.
    let again = rotation
        .handle(&schedule(), "req-2", deadline())
        .await
        .expect("a re-run");
    let keyring = again.keyring.expect("ran");
    assert!(!keyring.rotated);
    assert_eq!(keyring.term, 5);
    assert_eq!(rotation.vault.state().keyring_term, 5);
    let logged = logs.contents();
    assert!(logged.contains("keyring rotated"), "{logged}");
    assert!(shared_secrets_absent(&logged), "no credential is logged");
}

#[tokio::test]
async fn a_cluster_the_dr_region_fenced_rotates_nothing() {
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 31);
    let mut rotation = rotation(cluster, FakeLocks::default());
    rotation.fence = Some(Box::new(crate::testing::FakeFailoverRecords::fencing()));
    let report = rotation
        .handle(
            &json!({"rotate": ["keyring", "unseal-shares", "root-key"], "force": true}),
            "req-1",
            deadline(),
        )
        .await
        .expect("an answer, not an error");
    let fence = report.fenced.expect("fenced");
    assert_eq!(fence.last_phase, "fenced");
    assert!(
        report.keyring.is_none() && report.unseal_shares.is_none() && report.root_key.is_none()
    );
    let state = rotation.vault.state();
    assert_eq!(state.keyring_term, 4, "the old key kept");
    assert_eq!(state.root_key_rotations, 0);
    assert_eq!(state.share_rotations_started, 0);
}

fn shared_secrets_absent(text: &str) -> bool {
    crate::testing::first_found(text, &["role-canary".into(), "secret-canary".into()]).is_none()
}

#[tokio::test]
async fn a_young_key_is_kept_and_the_servers_policy_is_made_to_match() {
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 3);
    let mut rotation = rotation(cluster, FakeLocks::default());
    let wanted = KeyringPolicy {
        enabled: true,
        max_operations: 1_000_000,
        interval: Duration::from_secs(720 * 3600),
    };
    rotation.keyring.policy = wanted.clone();
    let report = rotation
        .rotate(&[RotationTarget::Keyring], "req-1", deadline())
        .await
        .expect("ran");
    let keyring = report.keyring.expect("ran");
    assert!(!keyring.rotated);
    assert!(keyring.policy_updated);
    assert_eq!(rotation.vault.state().keyring_policy, Some(wanted));
    assert_eq!(rotation.vault.state().keyring_term, 4);
    let again = rotation
        .rotate(&[RotationTarget::Keyring], "req-2", deadline())
        .await
        .expect("ran");
    assert!(!again.keyring.expect("ran").policy_updated);
}

#[tokio::test]
async fn a_run_that_finds_the_lock_held_changes_nothing_and_says_who_holds_it() {
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 90);
    let locks = FakeLocks::default();
    locks
        .claim("rotation/keyring", "other-run", Duration::from_secs(600))
        .await
        .expect("claimed");
    let rotation = rotation(cluster, locks);
    let report = rotation
        .rotate(&[RotationTarget::Keyring], "req-1", deadline())
        .await
        .expect("a held lock is an answer");
    assert_eq!(report.keyring, None);
    assert_eq!(
        report.busy,
        vec![Busy {
            target: RotationTarget::Keyring,
            holder: "other-run".into()
        }]
    );
    assert_eq!(rotation.vault.state().keyring_term, 4, "not rotated");
}

#[tokio::test]
async fn two_runs_at_once_rotate_once() {
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 90);
    let rotation = rotation(cluster, FakeLocks::default());
    let (a, b) = tokio::join!(
        rotation.rotate(&[RotationTarget::Keyring], "req-a", deadline()),
        rotation.rotate(&[RotationTarget::Keyring], "req-b", deadline()),
    );
    let rotated = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(RotationReport { keyring: Some(k), .. }) if k.rotated))
        .count();
    assert_eq!(rotated, 1, "{a:?} {b:?}");
    assert_eq!(rotation.vault.state().keyring_term, 5);
}

#[tokio::test]
async fn an_unknown_target_is_refused_before_anything_changes() {
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 90);
    let rotation = rotation(cluster, FakeLocks::default());
    let calls_before = rotation.vault.state().calls.len();
    let error = rotation
        .handle(
            &json!({"rotate": ["keyring", "future-target"]}),
            "req-1",
            deadline(),
        )
        .await
        .expect_err("an unknown target");
    assert_eq!(error.error_type, "Permanent.InvalidEvent");
    assert_eq!(
        rotation.vault.state().keyring_term,
        4,
        "the keyring too is untouched"
    );
    assert_eq!(rotation.vault.state().calls.len(), calls_before);
    for bad in [
        json!({"rotate": []}),
        json!({"rotate": ["everything"]}),
        json!({"rotate": "keyring"}),
    ] {
        let error = rotation
            .handle(&bad, "req-2", deadline())
            .await
            .expect_err("bad input");
        assert!(error.error_type.starts_with("Permanent."), "{error:?}");
    }
    assert_eq!(rotation.vault.state().keyring_term, 4);
}

#[tokio::test]
async fn no_active_node_is_a_transient_failure_that_changes_nothing() {
    let cluster = FakeCluster::healthy(&NODES);
    aged(&cluster, 90);
    for node in NODES {
        cluster.seal(node);
    }
    let rotation = rotation(cluster, FakeLocks::default());
    let error = rotation
        .rotate(&[RotationTarget::Keyring], "req-1", deadline())
        .await
        .expect_err("sealed");
    assert_eq!(error.name(), "NoActiveNode");
    assert!(error.retry_helps());
    let locks_free = rotation
        .locks
        .claim("rotation/keyring", "next", Duration::from_secs(1))
        .await
        .expect("claim");
    assert!(
        matches!(locks_free, Claim::Acquired { .. }),
        "the lock was released"
    );
}

#[tokio::test]
async fn the_root_key_is_rotated_when_never_or_long_ago_and_a_server_without_it_is_named() {
    let cluster = FakeCluster::healthy(&NODES);
    let rotation = rotation(cluster, FakeLocks::default());
    let root_key = |report: RotationReport| report.root_key.expect("the root-key action ran");
    let first = root_key(
        rotation
            .rotate(&[RotationTarget::RootKey], "req-1", deadline())
            .await
            .expect("rotated"),
    );
    assert!(first.rotated && first.rotated_at.is_some(), "{first:?}");
    assert_eq!(rotation.vault.state().root_key_rotations, 1);
    assert_eq!(
        rotation.vault.state().shares.len(),
        5,
        "the shares unchanged"
    );
    // A redelivery: rotated moments ago, kept.
    let again = root_key(
        rotation
            .rotate(&[RotationTarget::RootKey], "req-2", deadline())
            .await
            .expect("ran"),
    );
    assert!(!again.rotated && again.rotated_at == first.rotated_at);
    // Forced: rotated again.
    let forced = root_key(
        rotation
            .handle(
                &json!({"rotate": ["root-key"], "force": true}),
                "req-3",
                deadline(),
            )
            .await
            .expect("forced"),
    );
    assert!(forced.rotated);
    assert_eq!(rotation.vault.state().root_key_rotations, 2);

    // Vault answers 405 to sys/rotate/root: named, nothing written.
    let cluster = FakeCluster::healthy(&NODES);
    let fleet = FakeFleet::of(&cluster, &NODES);
    let failing = FailingNode::new(cluster);
    failing.fail("rotate_root_key", crate::testing::Failure::Status(405), 1);
    let rotation = rotation_over(fleet, failing, FakeLocks::default());
    let error = rotation
        .rotate(&[RotationTarget::RootKey], "req-4", deadline())
        .await
        .expect_err("not supported");
    assert_eq!(error.name(), "RootKeyNotSupported");
    assert!(!error.retry_helps());
    assert!(rotation
        .parameters
        .values
        .lock()
        .expect("values")
        .is_empty());
}
