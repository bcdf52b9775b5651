//! Unseal: a half-entered unseal is reset first, missing shares are named before anything
//! is entered, another cluster's shares are refused and left in SSM, and no share or
//! token ever reaches a log, an error or an outcome.

use super::*;
use crate::secret::Secret;

/// Base64 of 18 bytes: a share OpenBao takes, that belongs to no cluster.
const STRANGER: &str = "c3RyYW5nZXItY2FuYXJ5LXNoYXJl";

#[tokio::test(start_paused = true)]
async fn a_half_entered_unseal_is_reset_before_the_stored_shares() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let cluster = bed.cluster();
    cluster.seal("i-2");
    // Someone entered a share of their own and stopped there.
    let status = cluster
        .unseal(&cluster.addr("i-2"), &Secret::new(STRANGER))
        .await
        .expect("a share counts as progress");
    assert_eq!(status.progress, 1);
    let report = bed.reconcile().await;
    assert_eq!(report.unsealed, ["i-2".into()]);
    assert!(report.refused.is_empty(), "{report:?}");
    assert!(!cluster.is_sealed("i-2"));
    assert_eq!(cluster.calls("unseal-reset i-2"), 1);
}

#[tokio::test(start_paused = true)]
async fn missing_shares_are_named_and_nothing_is_entered() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    for n in 2..=4 {
        bed.ssm.remove(&bed.share(n));
    }
    let cluster = bed.cluster();
    cluster.seal("i-2");
    let err = bed
        .function
        .ensure_unsealed(&cluster.addr("i-2"), far())
        .await
        .expect_err("two shares of three");
    let LifecycleError::MissingShares {
        needed,
        found,
        missing,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*needed, *found), (3, 2));
    assert_eq!(*missing, [bed.share(2), bed.share(3), bed.share(4)]);
    assert_eq!(
        FunctionError::from(err).error_type,
        "Permanent.MissingShares"
    );
    let report = bed.reconcile().await;
    assert!(report.unsealed.is_empty());
    assert!(
        report.refused.iter().any(|r| r.starts_with("unseal i-2")
            && r.contains("only 2 are in SSM")
            && r.contains(&bed.share(3))),
        "{report:?}"
    );
    assert!(cluster.is_sealed("i-2"));
    assert_eq!(cluster.calls("unseal i-2"), 0, "no share was entered");
}

#[tokio::test(start_paused = true)]
async fn another_clusters_shares_are_refused_and_left_in_ssm() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    for n in 1..=5 {
        bed.ssm.remove(&bed.share(n));
        bed.ssm.put(&bed.share(n), &format!("{STRANGER}{n}A=="));
    }
    let stored = bed.ssm.all();
    let cluster = bed.cluster();
    cluster.seal("i-2");
    let err = bed
        .function
        .ensure_unsealed(&cluster.addr("i-2"), far())
        .await
        .expect_err("not this cluster's shares");
    assert!(
        matches!(&err, LifecycleError::SharesRejected { tried: 3, path, .. } if path == "/vault-lifecycle/prod/unseal"),
        "{err:?}"
    );
    assert!(cluster.is_sealed("i-2"));
    assert_eq!(
        cluster.state().nodes["i-2"].progress.len(),
        0,
        "the failed unseal starts over"
    );
    assert_eq!(bed.ssm.all(), stored, "nothing changed in SSM");
}

#[tokio::test(start_paused = true)]
async fn no_share_or_token_reaches_a_log_an_error_or_an_outcome() {
    let logs = capture_logs();
    let bed = Bed::fresh(&["i-1", "i-2"]);
    let mut texts = Vec::new();
    for instance in ["i-1", "i-2"] {
        let report = bed.launched(instance).await;
        texts.push(format!("{report:?}"));
        texts.push(serde_json::to_string(&Outcome::Launched(report)).unwrap_or_default());
    }
    let shares = bed.cluster_shares();
    // The shares in SSM are swapped for canaries another cluster would hold.
    let canaries: Vec<String> = (1..=5).map(|n| format!("{STRANGER}{n}A==")).collect();
    for (n, canary) in canaries.iter().enumerate() {
        bed.ssm.remove(&bed.share(n + 1));
        bed.ssm.put(&bed.share(n + 1), canary);
    }
    bed.cluster().seal("i-2");
    let report = bed.reconcile().await;
    assert_eq!(report.refused.len(), 1, "{report:?}");
    texts.push(format!("{report:?}"));
    let err = bed
        .function
        .ensure_unsealed(&bed.cluster().addr("i-2"), far())
        .await
        .expect_err("rejected");
    texts.push(format!("{err:?}"));
    texts.push(crate::error_chain(&err));
    texts.push(FunctionError::from(err).message);
    texts.push(format!("{:?}", bed.cluster().state().calls));
    texts.push(logs.contents());
    assert!(logs.contents().contains("unsealed with the stored shares"));
    let credentials: Vec<String> = bed
        .ssm
        .all()
        .into_iter()
        .filter(|(name, _)| name.contains("/approle/"))
        .map(|(_, value)| value)
        .collect();
    assert_eq!(
        credentials.len(),
        8,
        "every deployed function's role and secret ID"
    );
    for text in &texts {
        for secret in shares.iter().chain(&canaries).chain(&credentials) {
            assert!(!text.contains(secret.as_str()), "a secret leaked: {text}");
        }
        // Every token the fake issues, the root token included, has one of these forms.
        for prefix in [
            "fake-root-",
            "fake-token-",
            "fake-secret-id-",
            "fake-role-id-",
        ] {
            assert!(!text.contains(prefix), "a {prefix} value leaked: {text}");
        }
    }
}

/// A rotation saw generation 2 verified and was cut off before it marked it in force:
/// the server takes only the pending generation's shares. Then generation 2 in force, and
/// a restored older snapshot back under generation 1.
#[tokio::test(start_paused = true)]
async fn shares_verified_but_not_yet_marked_in_force_unseal_from_the_pending_generation() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let cluster = bed.cluster();
    let keys = bed.function.settings.keys();
    let old = bed.stored_shares();
    let new: Vec<String> = STANDARD_NEW.iter().map(|s| s.to_string()).collect();
    for (n, share) in new.iter().enumerate() {
        bed.ssm.put(
            &keys.generation_share(crate::keys::ShareKind::Unseal, 2, n + 1),
            share,
        );
    }
    cluster.state().shares = new.clone();
    cluster.seal("i-2");
    let report = bed.reconcile().await;
    assert_eq!(report.unsealed, ["i-2".into()], "{report:?}");
    assert!(!cluster.is_sealed("i-2"));
    assert_eq!(bed.stored_shares(), old, "generation 1 is kept as it was");

    // Marked in force: the new generation is read first.
    bed.ssm.put(
        &keys.generation_in_force(crate::keys::ShareKind::Unseal, 2),
        "2026-12-01T00:00:00Z",
    );
    cluster.seal("i-3");
    let unseals = cluster.calls("unseal i-3");
    assert_eq!(bed.reconcile().await.unsealed, ["i-3".into()]);
    assert_eq!(
        cluster.calls("unseal i-3") - unseals,
        3,
        "the threshold of the generation in force, nothing tried before it"
    );

    // A snapshot taken under generation 1 is restored: the server's root key is under
    // generation 1 again, and generation 2 is refused before generation 1 unseals.
    cluster.state().shares = old;
    cluster.seal("i-2");
    assert_eq!(bed.reconcile().await.unsealed, ["i-2".into()]);
    assert!(!cluster.is_sealed("i-2"));
}

/// Shares of a second generation (base64 of 33 bytes, as OpenBao's).
const STANDARD_NEW: [&str; 5] = [
    "Z2VuZXJhdGlvbi0yLXNoYXJlLTEtLi4uLi4uLi4uLi4u",
    "Z2VuZXJhdGlvbi0yLXNoYXJlLTItLi4uLi4uLi4uLi4u",
    "Z2VuZXJhdGlvbi0yLXNoYXJlLTMtLi4uLi4uLi4uLi4u",
    "Z2VuZXJhdGlvbi0yLXNoYXJlLTQtLi4uLi4uLi4uLi4u",
    "Z2VuZXJhdGlvbi0yLXNoYXJlLTUtLi4uLi4uLi4uLi4u",
];
