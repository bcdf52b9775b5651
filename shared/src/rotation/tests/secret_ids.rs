//! `approle-secret-ids` on the fake cluster: an old secret ID replaced, proven first,
//! the previous one destroyed only after the grace period; a young one kept; an unknown
//! one replaced; a new one that does not log in never stored.

use super::*;
use crate::testing::{FailingNode, Failure};

const FUNCTIONS: [&str; 3] = ["health-probe", "snapshot-backup", "credential-rotation"];

fn name(function: &str, which: &str) -> String {
    crate::keys::KeyLayout::new("/p", "prod").approle(function, which)
}

/// A healthy cluster whose functions have AppRoles, with a secret ID each stored under
/// `/p/prod/approle/<function>/` (credential-rotation's also where its login reads it),
/// made `age_days` ago.
async fn with_approles(
    age_days: i64,
) -> CredentialRotation<FakeFleet, FailingNode<FakeCluster>, FakeParameters> {
    let cluster = FakeCluster::healthy(&NODES);
    let node = cluster.addr("i-1");
    let root = Secret::new("root");
    let fleet = FakeFleet::of(&cluster, &NODES);
    let mut stored = Vec::new();
    for function in FUNCTIONS {
        cluster
            .state()
            .approles
            .insert(format!("approle/{function}"), function.to_owned());
        let secret_id = cluster
            .new_secret_id(&node, &root, "approle", function)
            .await
            .expect("a secret ID");
        cluster.state().secret_id_created.insert(
            secret_id.expose().to_owned(),
            Utc::now() - chrono::Duration::days(age_days),
        );
        let role_id = cluster
            .approle_role_id(&node, &root, "approle", function)
            .await
            .expect("a role ID");
        stored.push((function, role_id, secret_id));
    }
    let mut rotation = rotation_over(fleet, FailingNode::new(cluster), FakeLocks::default());
    rotation.secret_ids.roles = FUNCTIONS.to_vec();
    for (function, role_id, secret_id) in stored {
        let mut values = rotation.parameters.values.lock().expect("values");
        values.insert(name(function, "role-id"), role_id.expose().to_owned());
        values.insert(name(function, "secret-id"), secret_id.expose().to_owned());
        if function == "credential-rotation" {
            let mut own = rotation.login.parameters().values.lock().expect("values");
            own.insert("/r".into(), role_id.expose().to_owned());
            own.insert("/s".into(), secret_id.expose().to_owned());
        }
    }
    rotation
}

fn stored(
    rotation: &CredentialRotation<FakeFleet, FailingNode<FakeCluster>, FakeParameters>,
    function: &str,
    which: &str,
) -> Option<String> {
    rotation
        .parameters
        .values
        .lock()
        .expect("values")
        .get(&name(function, which))
        .cloned()
}

async fn logs_in(
    rotation: &CredentialRotation<FakeFleet, FailingNode<FakeCluster>, FakeParameters>,
    function: &str,
    secret_id: &str,
) -> bool {
    let cluster = &rotation.vault.inner;
    let role_id = Secret::new(stored(rotation, function, "role-id").expect("role ID"));
    cluster
        .approle_login(
            &cluster.addr("i-2"),
            "approle",
            &role_id,
            &Secret::new(secret_id),
        )
        .await
        .is_ok()
}

async fn secret_ids(
    rotation: &CredentialRotation<FakeFleet, FailingNode<FakeCluster>, FakeParameters>,
    run: &str,
) -> Result<Vec<SecretIdReport>, RotationError> {
    let report = rotation
        .rotate(&[RotationTarget::ApproleSecretIds], run, deadline())
        .await?;
    Ok(report.approle_secret_ids.expect("the action ran"))
}

#[tokio::test]
async fn an_old_secret_id_is_replaced_proven_first_and_destroyed_only_after_the_grace_period() {
    let logs = capture_logs();
    let mut rotation = with_approles(8).await;
    let old: Vec<String> = FUNCTIONS
        .iter()
        .map(|f| stored(&rotation, f, "secret-id").expect("stored"))
        .collect();
    let reports = secret_ids(&rotation, "req-1").await.expect("rotated");
    assert_eq!(reports.len(), 3);
    for (report, (function, old)) in reports.iter().zip(FUNCTIONS.iter().zip(&old)) {
        assert!(report.rotated && !report.was_unknown, "{report:?}");
        let new = stored(&rotation, function, "secret-id").expect("stored");
        assert_ne!(&new, old);
        assert!(
            logs_in(&rotation, function, &new).await,
            "the new one logs in"
        );
        assert!(
            logs_in(&rotation, function, old).await,
            "the old one too, in its grace period"
        );
        let retiring = stored(&rotation, function, "retiring").expect("a retiring record");
        assert!(
            !retiring.contains(old.as_str()),
            "the record names the accessor, not the secret ID"
        );
    }

    // At once again (a redelivery): the replaced ones are in their grace period.
    let again = secret_ids(&rotation, "req-2").await.expect("a re-run");
    assert!(again.iter().all(|r| r.waiting && !r.rotated), "{again:?}");
    for (function, old) in FUNCTIONS.iter().zip(&old) {
        assert!(logs_in(&rotation, function, old).await);
    }

    // The grace period over: the replaced ones are destroyed, the new ones kept.
    rotation.secret_ids.grace = Duration::ZERO;
    let later = secret_ids(&rotation, "req-3").await.expect("later");
    assert!(
        later.iter().all(|r| r.destroyed_previous && !r.rotated),
        "{later:?}"
    );
    for (function, old) in FUNCTIONS.iter().zip(&old) {
        assert!(!logs_in(&rotation, function, old).await, "destroyed");
        let new = stored(&rotation, function, "secret-id").expect("stored");
        assert!(logs_in(&rotation, function, &new).await);
        assert_eq!(stored(&rotation, function, "retiring"), None);
    }
    let logged = logs.contents();
    for function in FUNCTIONS {
        let new = stored(&rotation, function, "secret-id").expect("stored");
        assert!(!logged.contains(&new), "a secret ID was logged");
    }
    for old in &old {
        assert!(!logged.contains(old.as_str()), "a secret ID was logged");
    }
}

#[tokio::test]
async fn a_young_secret_id_is_kept_and_one_the_server_forgot_is_replaced() {
    let rotation = with_approles(1).await;
    let before = stored(&rotation, "health-probe", "secret-id").expect("stored");
    let reports = secret_ids(&rotation, "req-1").await.expect("ran");
    assert!(
        reports.iter().all(|r| !r.rotated && !r.waiting),
        "{reports:?}"
    );
    assert_eq!(
        stored(&rotation, "health-probe", "secret-id").as_deref(),
        Some(before.as_str())
    );

    // The server forgot it (expired, or destroyed by hand): replaced at once.
    rotation
        .vault
        .inner
        .state()
        .destroyed_secret_ids
        .insert(before.clone());
    let reports = secret_ids(&rotation, "req-2").await.expect("ran");
    let probe = &reports[0];
    assert!(probe.was_unknown && probe.rotated, "{probe:?}");
    let new = stored(&rotation, "health-probe", "secret-id").expect("stored");
    assert!(logs_in(&rotation, "health-probe", &new).await);
    assert_eq!(
        stored(&rotation, "health-probe", "retiring"),
        None,
        "nothing to retire"
    );
}

#[tokio::test]
async fn a_new_secret_id_that_does_not_log_in_is_never_stored() {
    let rotation = with_approles(30).await;
    // The function's own login first (its token is then cached).
    rotation
        .rotate(&[RotationTarget::Keyring], "req-0", deadline())
        .await
        .expect("logged in");
    let before = stored(&rotation, "health-probe", "secret-id").expect("stored");
    rotation
        .vault
        .fail("approle_login", Failure::Status(400), 1);
    let error = secret_ids(&rotation, "req-1").await.expect_err("refused");
    assert_eq!(error.name(), "SecretIdRefused");
    assert!(error.to_string().contains("health-probe"), "{error}");
    assert_eq!(
        stored(&rotation, "health-probe", "secret-id"),
        Some(before.clone())
    );
    assert!(
        logs_in(&rotation, "health-probe", &before).await,
        "the stored one still works"
    );
    assert_eq!(stored(&rotation, "health-probe", "retiring"), None);
}

#[tokio::test]
async fn a_standby_serving_after_a_failover_leaves_shares_and_secret_ids_for_after_the_failback() {
    let mut rotation = with_approles(30).await;
    aged(&rotation.vault.inner, 31);
    let before = stored(&rotation, "health-probe", "secret-id");
    rotation.serving_for = Some(Box::new(crate::testing::FakeFailoverRecords::fencing()));
    let report = rotation
        .rotate_as(
            &[
                RotationTarget::Keyring,
                RotationTarget::UnsealShares,
                RotationTarget::ApproleSecretIds,
            ],
            true,
            "req-1",
            deadline(),
        )
        .await
        .expect("an answer");
    assert_eq!(
        report.held_for_failback,
        [
            RotationTarget::UnsealShares,
            RotationTarget::ApproleSecretIds
        ]
    );
    assert!(
        report.keyring.is_some_and(|k| k.rotated),
        "the keyring rotates"
    );
    assert!(report.unseal_shares.is_none() && report.approle_secret_ids.is_none());
    assert_eq!(stored(&rotation, "health-probe", "secret-id"), before);
    assert_eq!(rotation.vault.inner.state().share_rotations_started, 0);
}
