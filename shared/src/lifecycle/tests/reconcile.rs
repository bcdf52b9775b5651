//! Reconcile: sealed members are unsealed, a departed peer is removed once past its grace
//! and one per run, a peer that still answers is kept, and without an active node or a
//! working seal it reports what it could not do.

use super::*;

#[tokio::test(start_paused = true)]
async fn every_sealed_member_is_unsealed() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().seal("i-2");
    bed.cluster().seal("i-3");
    let report = bed.reconcile().await;
    assert_eq!(report.unsealed, ["i-2".into(), "i-3".into()]);
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(report.removed, None);
    for node in ["i-1", "i-2", "i-3"] {
        assert!(!bed.cluster().is_sealed(node), "{node}");
    }
    assert_eq!(
        bed.cluster().calls("unseal i-1"),
        0,
        "an unsealed node is left alone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cluster_the_dr_region_fenced_stays_sealed_until_a_failback_is_asked_for() {
    use crate::failover::record::{Failback, FailoverRecords};
    let mut bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let records = std::sync::Arc::new(crate::testing::FakeFailoverRecords::fencing());
    bed.function.fence = Some(Box::new(records.clone()));
    for node in ["i-1", "i-2", "i-3"] {
        bed.cluster().seal(node);
    }
    let report = bed.reconcile().await;
    assert!(report.unsealed.is_empty(), "{report:?}");
    assert_eq!(
        report.fenced.as_ref().map(|f| f.last_phase.as_str()),
        Some("fenced")
    );
    assert_eq!(
        report
            .refused
            .iter()
            .filter(|r| r.contains("fenced by the DR region's failover"))
            .count(),
        3,
        "{report:?}"
    );
    assert_eq!(bed.cluster().calls("unseal i-1"), 0, "no share sent");
    // An operator asks for the failback: the failover record says so, and the next
    // reconcile unseals the nodes the failback restores into.
    let mut record = records.current().await.expect("read").expect("recorded");
    record.failback = Some(Failback {
        id: "failback".into(),
        started_at: chrono::Utc::now(),
        snapshot: None,
        rebuild: false,
        phases: Vec::new(),
        failed: None,
    });
    records.put(&record).await.expect("put");
    let report = bed.reconcile().await;
    assert_eq!(report.fenced, None);
    assert_eq!(report.unsealed.len(), 3, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_departed_peer_is_removed_once_past_its_grace() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().kill("i-3");
    bed.fleet.gone("i-3");
    let report = bed.reconcile().await;
    assert_eq!(report.removed, None);
    assert!(
        report
            .kept
            .iter()
            .any(|k| k.starts_with("i-3: unhealthy for 0s")),
        "{report:?}"
    );
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);

    tokio::time::advance(Duration::from_secs(301)).await;
    let report = bed.reconcile().await;
    assert_eq!(report.removed.as_deref(), Some("i-3"));
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-1"));
}

#[tokio::test(start_paused = true)]
async fn one_departed_peer_is_removed_per_run() {
    let bed = Bed::running(&["i-1", "i-2", "i-3", "i-4", "i-5"]);
    for node in ["i-4", "i-5"] {
        bed.cluster().kill(node);
        bed.fleet.gone(node);
    }
    tokio::time::advance(Duration::from_secs(301)).await;
    let first = bed.reconcile().await;
    assert_eq!(first.removed.as_deref(), Some("i-4"));
    assert_eq!(first.kept, ["i-5: one removal per run; next run"]);
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3", "i-5"]);
    let second = bed.reconcile().await;
    assert_eq!(second.removed.as_deref(), Some("i-5"));
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    let third = bed.reconcile().await;
    assert_eq!(third, Default::default(), "nothing left to do");
}

#[tokio::test(start_paused = true)]
async fn a_peer_without_an_instance_that_still_answers_is_kept() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.gone("i-3");
    tokio::time::advance(Duration::from_secs(301)).await;
    let report = bed.reconcile().await;
    assert_eq!(report.removed, None);
    assert!(
        report
            .kept
            .iter()
            .any(|k| k.starts_with("i-3: no member instance, but autopilot judges it healthy")),
        "{report:?}"
    );
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
}

#[tokio::test(start_paused = true)]
async fn without_an_active_node_nothing_is_removed_and_that_is_reported() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    for node in ["i-2", "i-3"] {
        bed.cluster().kill(node);
        bed.fleet.gone(node);
    }
    tokio::time::advance(Duration::from_secs(301)).await;
    let report = bed.reconcile().await;
    assert_eq!(report.removed, None);
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.starts_with("removing departed peers: no node of the cluster is active")),
        "{report:?}"
    );
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.cluster().calls("remove-peer"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_sealed_node_under_auto_unseal_is_reported_not_given_shares() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().state().auto_unseal = true;
    bed.cluster().seal("i-2");
    let report = bed.reconcile().await;
    assert!(report.unsealed.is_empty());
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.starts_with("unseal i-2") && r.contains("uses auto-unseal (transit)")),
        "{report:?}"
    );
    assert!(bed.cluster().is_sealed("i-2"));
    assert_eq!(bed.cluster().calls("unseal i-2"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_token_revoked_by_a_restore_is_replaced_by_a_fresh_login() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.reconcile().await;
    let logins = bed.cluster().logins();
    // A restore brings back data without the token node-lifecycle has cached.
    bed.cluster().state().tokens.clear();
    bed.cluster().kill("i-3");
    bed.fleet.gone("i-3");
    tokio::time::advance(Duration::from_secs(301)).await;
    let report = bed.reconcile().await;
    assert_eq!(report.removed.as_deref(), Some("i-3"), "{report:?}");
    assert_eq!(bed.cluster().logins(), logins + 1);
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2"]);
}

#[tokio::test(start_paused = true)]
async fn every_share_is_copied_to_the_dr_region_once_and_never_replaced() {
    // The first launch stores the shares and copies them to the DR region at once.
    let bed = Bed::fresh(&["i-1"]);
    bed.launched("i-1").await;
    let shares = bed.stored_shares();
    assert_eq!(shares.len(), 5);
    let in_dr: Vec<String> = (1..=5)
        .filter_map(|n| bed.dr_ssm.value(&bed.share(n)))
        .collect();
    assert_eq!(in_dr, shares, "every share in the DR region, as stored");

    // One lost in the DR region (or a cluster from before the setting): reconcile
    // copies what is missing, and only that.
    bed.dr_ssm.remove(&bed.share(4));
    bed.dr_ssm
        .put(&bed.share(2), "a value the DR region holds already");
    let report = bed.reconcile().await;
    assert_eq!(report.dr_shares_copied, [bed.share(4)]);
    assert_eq!(bed.dr_ssm.value(&bed.share(4)), Some(shares[3].clone()));
    assert_eq!(
        bed.dr_ssm.value(&bed.share(2)).as_deref(),
        Some("a value the DR region holds already"),
        "a stored share is never replaced"
    );
    assert!(bed.reconcile().await.dr_shares_copied.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_functions_approle_credentials_are_copied_to_the_dr_region_and_kept_current() {
    let bed = Bed::fresh(&["i-1"]);
    bed.launched("i-1").await;
    let report = bed.reconcile().await;
    let keys = crate::keys::KeyLayout::from_root(&bed.function.settings.ssm_path);
    let secret_id = keys.approle("snapshot-backup", "secret-id");
    assert!(
        report.dr_approles_copied.contains(&secret_id),
        "{:?}",
        report.dr_approles_copied
    );
    assert_eq!(bed.dr_ssm.value(&secret_id), bed.ssm.value(&secret_id));
    assert!(
        bed.reconcile().await.dr_approles_copied.is_empty(),
        "nothing changed"
    );
    // credential-rotation replaced the secret ID: the next reconcile carries it over.
    bed.ssm.put(&secret_id, "a newer secret id");
    assert_eq!(
        bed.reconcile().await.dr_approles_copied,
        std::slice::from_ref(&secret_id)
    );
    assert_eq!(
        bed.dr_ssm.value(&secret_id).as_deref(),
        Some("a newer secret id")
    );
}
