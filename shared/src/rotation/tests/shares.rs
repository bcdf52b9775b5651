//! `unseal-shares` on the fake cluster: a rotation, a cut-off at each step and its re-run,
//! two runs at once, and each refusal.

use super::*;
use crate::{
    keys::{unseal_with, KeyLayout, ShareKind},
    testing::{FailingNode, Failure},
};

fn layout() -> KeyLayout {
    KeyLayout::new("/p", "prod")
}

/// Stores `shares` as generation `generation` in `parameters`.
fn store(parameters: &FakeParameters, generation: u32, shares: &[Secret]) {
    let mut values = parameters.values.lock().expect("values");
    for (n, share) in shares.iter().enumerate() {
        values.insert(
            layout().generation_share(ShareKind::Unseal, generation, n + 1),
            share.expose().to_owned(),
        );
    }
}

/// The stored shares of `generation`, in order.
fn stored(parameters: &FakeParameters, generation: u32) -> Vec<String> {
    let values = parameters.values.lock().expect("values");
    (1..=5)
        .filter_map(|n| {
            values
                .get(&layout().generation_share(ShareKind::Unseal, generation, n))
                .cloned()
        })
        .collect()
}

fn in_force_marked(parameters: &FakeParameters, generation: u32) -> bool {
    parameters
        .values
        .lock()
        .expect("values")
        .contains_key(&layout().generation_in_force(ShareKind::Unseal, generation))
}

fn dr(rotation: &CredentialRotation<FakeFleet, impl NodeApi, FakeParameters>) -> &FakeParameters {
    &rotation.shares.dr.as_ref().expect("a DR region").parameters
}

/// A healthy three-node cluster whose shares are stored as generation 1, behind a
/// failure-injecting wrapper.
fn rotation_with_failures(
) -> CredentialRotation<FakeFleet, FailingNode<FakeCluster>, FakeParameters> {
    let cluster = FakeCluster::healthy(&NODES);
    let shares = cluster.shares();
    let fleet = FakeFleet::of(&cluster, &NODES);
    let rotation = rotation_over(fleet, FailingNode::new(cluster), FakeLocks::default());
    store(&rotation.parameters, 1, &shares);
    rotation
}

fn shares_in_force(cluster: &FakeCluster) -> Vec<String> {
    cluster.state().shares.clone()
}

fn unseal_shares() -> [RotationTarget; 1] {
    [RotationTarget::UnsealShares]
}

/// One `unseal-shares` run, not forced: its report.
async fn shares_rotated(
    rotation: &CredentialRotation<FakeFleet, impl NodeApi, FakeParameters>,
    run: &str,
) -> Result<SharesReport, RotationError> {
    let report = rotation.rotate(&unseal_shares(), run, deadline()).await?;
    Ok(report.unseal_shares.expect("the unseal-shares action ran"))
}

/// Seals `instance` and unseals it with `shares`: whether they open it.
async fn opens(cluster: &FakeCluster, instance: &str, shares: &[String]) -> bool {
    cluster.seal(instance);
    let shares: Vec<Secret> = shares.iter().take(3).cloned().map(Secret::new).collect();
    unseal_with(cluster, &cluster.addr(instance), &shares)
        .await
        .unwrap_or(false)
}

#[tokio::test]
async fn new_shares_are_stored_in_both_regions_verified_and_marked_and_the_old_ones_kept() {
    let logs = capture_logs();
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    let old = shares_in_force(cluster);
    let report = rotation
        .handle(&json!({"rotate": ["unseal-shares"]}), "req-1", deadline())
        .await
        .expect("rotated")
        .unseal_shares
        .expect("the unseal-shares action ran");
    assert_eq!(
        (
            report.previous_generation,
            report.generation,
            report.rotated
        ),
        (1, 2, true)
    );
    assert_eq!((report.shares, report.threshold), (5, 3));
    let new = shares_in_force(cluster);
    assert_ne!(new, old);
    assert_eq!(stored(&rotation.parameters, 2), new);
    assert_eq!(stored(dr(&rotation), 2), new, "copied to the DR region");
    assert!(in_force_marked(&rotation.parameters, 2) && in_force_marked(dr(&rotation), 2));
    assert_eq!(
        stored(&rotation.parameters, 1),
        old,
        "the previous generation is kept for older snapshots"
    );
    assert!(cluster.state().share_rotation.is_none());
    assert!(opens(cluster, "i-2", &new).await, "the new shares unseal");
    assert!(!opens(cluster, "i-3", &old).await, "the old ones do not");
    for share in new.iter().chain(&old) {
        assert!(
            !logs.contents().contains(share.as_str()),
            "a share was logged"
        );
    }

    // The same request again (a redelivery): the shares in force are young, kept.
    let again = shares_rotated(&rotation, "req-2").await.expect("a re-run");
    assert_eq!((again.generation, again.rotated), (2, false));
    assert_eq!(stored(&rotation.parameters, 2), shares_in_force(cluster));
    // Forced (after a suspected leak): a new generation whatever the age.
    let forced = rotation
        .handle(
            &json!({"rotate": ["unseal-shares"], "force": true}),
            "req-3",
            deadline(),
        )
        .await
        .expect("forced")
        .unseal_shares
        .expect("ran");
    assert_eq!((forced.previous_generation, forced.generation), (2, 3));
    assert_eq!(stored(&rotation.parameters, 3), shares_in_force(cluster));
}

#[tokio::test]
async fn a_run_cut_off_before_verification_resumes_it_on_the_next_run() {
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    let old = shares_in_force(cluster);
    rotation
        .vault
        .fail("submit_verification_share", Failure::Unreachable, 1);
    let error = shares_rotated(&rotation, "req-1")
        .await
        .expect_err("cut off");
    assert!(error.retry_helps(), "{error}");
    let pending = stored(&rotation.parameters, 2);
    assert_eq!(pending.len(), 5, "stored before verification");
    assert_eq!(stored(dr(&rotation), 2), pending, "in the DR region too");
    assert!(!in_force_marked(&rotation.parameters, 2));
    assert_eq!(
        shares_in_force(cluster),
        old,
        "the old shares still in force"
    );

    let report = shares_rotated(&rotation, "req-2").await.expect("resumed");
    assert_eq!(
        (report.generation, report.settled, report.rotated),
        (2, Some(2), false)
    );
    assert_eq!(shares_in_force(cluster), pending);
    assert!(in_force_marked(&rotation.parameters, 2) && in_force_marked(dr(&rotation), 2));
}

#[tokio::test]
async fn a_pending_generation_the_server_forgot_is_discarded_and_the_old_shares_still_unseal() {
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    let old = shares_in_force(cluster);
    rotation
        .vault
        .fail("submit_verification_share", Failure::Unreachable, 1);
    shares_rotated(&rotation, "req-1")
        .await
        .expect_err("cut off");
    let forgotten = stored(&rotation.parameters, 2);
    // The active node restarts: the rotation in its memory is gone.
    let leader = cluster.active().expect("active");
    cluster.restart(&leader);
    assert!(cluster.state().share_rotation.is_none());
    assert!(
        opens(cluster, &leader, &old).await,
        "the generation in force still unseals"
    );

    let report = shares_rotated(&rotation, "req-2").await.expect("converged");
    assert_eq!(report.discarded, Some(2));
    assert_eq!((report.generation, report.rotated), (2, true));
    let new = shares_in_force(cluster);
    assert_ne!(new, forgotten, "the forgotten shares were replaced");
    assert_eq!(stored(&rotation.parameters, 2), new);
    assert_eq!(stored(dr(&rotation), 2), new);
}

#[tokio::test]
async fn a_generation_verified_before_it_was_marked_is_found_by_a_probe_and_marked() {
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    // A run cut off after the server verified the new shares and before it wrote the
    // mark: the shares are stored as pending and in force on the server.
    rotation
        .rotate(&unseal_shares(), "req-1", deadline())
        .await
        .expect("rotated");
    for region in [&rotation.parameters, dr(&rotation)] {
        region
            .values
            .lock()
            .expect("values")
            .remove(&layout().generation_in_force(ShareKind::Unseal, 2));
    }
    let pending = stored(&rotation.parameters, 2);
    assert_eq!(shares_in_force(cluster), pending);

    let probes_before = cluster.state().share_rotations_started;
    let report = shares_rotated(&rotation, "req-2").await.expect("settled");
    assert_eq!((report.generation, report.settled), (2, Some(2)));
    assert!(in_force_marked(&rotation.parameters, 2));
    assert_eq!(cluster.state().share_rotations_started, probes_before + 1);
    assert!(
        cluster.state().share_rotation.is_none(),
        "the probe was cancelled"
    );
    assert_eq!(
        shares_in_force(cluster),
        pending,
        "the probe changed nothing"
    );
}

#[tokio::test]
async fn a_pending_generation_stored_in_part_is_discarded_and_a_new_one_made() {
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    // A run cut off while it stored the new shares: two of five written.
    store(
        &rotation.parameters,
        2,
        &[Secret::new("cGFydGlhbC0x"), Secret::new("cGFydGlhbC0y")],
    );
    let report = shares_rotated(&rotation, "req-1").await.expect("converged");
    assert_eq!(
        (report.discarded, report.generation, report.rotated),
        (Some(2), 2, true)
    );
    assert_eq!(stored(&rotation.parameters, 2), shares_in_force(cluster));
}

#[tokio::test]
async fn two_runs_at_once_make_one_generation() {
    let rotation = rotation_with_failures();
    let targets = unseal_shares();
    let (a, b) = tokio::join!(
        rotation.rotate(&targets, "req-a", deadline()),
        rotation.rotate(&targets, "req-b", deadline()),
    );
    let reports = [a.expect("a"), b.expect("b")];
    let rotated = reports
        .iter()
        .filter(|r| r.unseal_shares.as_ref().is_some_and(|s| s.rotated))
        .count();
    assert_eq!(
        rotated, 1,
        "one rotates; the other waits on the lock or finds them young: {reports:?}"
    );
    assert_eq!(stored(&rotation.parameters, 3), Vec::<String>::new());
    assert_eq!(
        stored(&rotation.parameters, 2),
        shares_in_force(&rotation.vault.inner)
    );
}

#[tokio::test]
async fn refusals_name_the_problem_and_change_nothing() {
    // Recovery shares on a Shamir seal.
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    let old = shares_in_force(cluster);
    let error = rotation
        .rotate(&[RotationTarget::RecoveryShares], "req-1", deadline())
        .await
        .expect_err("a Shamir seal has no recovery shares");
    assert_eq!(error.name(), "SealMismatch");
    assert!(error.to_string().contains("unseal-shares"), "{error}");

    // Stored shares that are not the ones in force: refused at the threshold, cancelled.
    let wrong: Vec<Secret> = (1..=5)
        .map(|n| Secret::new(format!("d3JvbmctY2FuYXJ5LXNoYXJlLTAxMjM0NTY3ODlhYmM{n}")))
        .collect();
    rotation.parameters.values.lock().expect("values").clear();
    store(&rotation.parameters, 1, &wrong);
    let error = shares_rotated(&rotation, "req-2")
        .await
        .expect_err("wrong shares");
    assert_eq!(error.name(), "SharesRejected");
    assert!(!error.retry_helps());
    assert!(error.to_string().contains("/p/prod/unseal"), "{error}");
    assert!(cluster.state().share_rotation.is_none(), "cancelled");

    // Too few stored.
    rotation.parameters.values.lock().expect("values").clear();
    store(&rotation.parameters, 1, &wrong[..2]);
    let error = shares_rotated(&rotation, "req-3")
        .await
        .expect_err("two of three");
    assert_eq!(error.name(), "MissingShares");
    assert!(
        crate::error_chain(&error).contains("/p/prod/unseal/share-3"),
        "{}",
        crate::error_chain(&error)
    );

    assert_eq!(shares_in_force(cluster), old);
    assert!(stored(&rotation.parameters, 2).is_empty());
    assert!(stored(dr(&rotation), 2).is_empty());
}

#[tokio::test]
async fn after_an_older_snapshot_is_restored_the_next_rotation_starts_from_its_generation() {
    let rotation = rotation_with_failures();
    let cluster = &rotation.vault.inner;
    let first = shares_in_force(cluster);
    shares_rotated(&rotation, "req-1").await.expect("rotated");
    // A snapshot taken under generation 1 is restored: the root key is under it again.
    cluster.state().shares = first;
    let report = rotation
        .rotate_as(&unseal_shares(), true, "req-2", deadline())
        .await
        .expect("rotated from generation 1")
        .unseal_shares
        .expect("ran");
    assert_eq!((report.previous_generation, report.generation), (2, 3));
    assert_eq!(stored(&rotation.parameters, 3), shares_in_force(cluster));
    assert!(cluster.state().share_rotation.is_none());
}

#[tokio::test]
async fn a_snapshot_is_asked_for_after_the_shares_change_and_not_after_a_young_run() {
    let mut rotation = rotation_with_failures();
    let backups = crate::testing::FakeBackups::default();
    rotation.backup = Some(Box::new(backups.clone()));
    let report = rotation
        .rotate(&unseal_shares(), "req-1", deadline())
        .await
        .expect("rotated");
    let asked = report.backup.expect("a snapshot asked for");
    assert!(
        asked.requested && asked.reason.contains("unseal-shares generation 2"),
        "{asked:?}"
    );
    assert_eq!(backups.asked.lock().expect("asked").len(), 1);
    // Nothing changed: nothing asked.
    let again = rotation
        .rotate(&unseal_shares(), "req-2", deadline())
        .await
        .expect("a re-run");
    assert_eq!(again.backup, None);
    assert_eq!(backups.asked.lock().expect("asked").len(), 1);
    // The backup path refuses: the rotation stands, the report says why.
    rotation.backup = Some(Box::new(crate::testing::FakeBackups {
        refuse: true,
        ..Default::default()
    }));
    let forced = rotation
        .rotate_as(&unseal_shares(), true, "req-3", deadline())
        .await
        .expect("rotated all the same");
    let asked = forced.backup.expect("reported");
    assert!(
        !asked.requested
            && asked
                .error
                .as_deref()
                .is_some_and(|e| e.contains("throttled"))
    );
    assert_eq!(forced.unseal_shares.expect("ran").generation, 3);
}
