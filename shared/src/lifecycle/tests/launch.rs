//! Launch: the first node initialises the cluster, the next ones join it; a redelivery
//! does nothing twice; and each refusal leaves the cluster as it was.

use super::*;
use crate::lifecycle::launch::LaunchReport;
use crate::{cluster::policies::FUNCTIONS, lifecycle::unseal::Unsealed, testing::Failure};

#[tokio::test(start_paused = true)]
async fn the_first_node_initialises_the_cluster_and_becomes_its_voter() {
    let bed = Bed::fresh(&["i-1", "i-2", "i-3"]);
    let report = bed.launched("i-1").await;
    assert_eq!(
        report,
        LaunchReport {
            instance: "i-1".into(),
            initialised_cluster: true,
            joined: false,
            unsealed: Unsealed::Already,
            completed_now: true,
        }
    );
    let cluster = bed.cluster();
    assert_eq!(cluster.calls("init"), 1);
    assert_eq!(cluster.voters(), ["i-1"]);
    assert_eq!(cluster.active().as_deref(), Some("i-1"));
    assert!(!cluster.is_sealed("i-1"));
    // Every share is in SSM, exactly as Vault gave it.
    assert_eq!(bed.stored_shares(), bed.cluster_shares());
    assert_eq!(bed.stored_shares().len(), 5);
    // Bootstrap made the role of every function deployed, and only those, within the
    // configured limits, and stored its credentials.
    let s = &bed.function.settings;
    let state = cluster.state();
    let made: Vec<&String> = state.approles.keys().collect();
    assert_eq!(
        made,
        [
            "approle/health-probe",
            "approle/node-lifecycle",
            "approle/snapshot-backup",
            "approle/snapshot-restore"
        ],
        "no AppRole for a function that is not deployed"
    );
    assert!(state.canary_mount, "the snapshots' canary has its mount");
    assert!(
        state
            .approle_limits
            .values()
            .all(|l| *l == s.approle_limits),
        "{:?}",
        state.approle_limits
    );
    drop(state);
    for (function, _) in FUNCTIONS {
        let deployed = s.approle_functions.contains(&function);
        assert_eq!(
            bed.ssm
                .value(&s.approle_parameter(function, "secret-id"))
                .is_some(),
            deployed,
            "{function}"
        );
        if !deployed {
            continue;
        }
        for which in ["role-id", "secret-id"] {
            assert!(
                bed.ssm
                    .value(&s.approle_parameter(function, which))
                    .is_some(),
                "{function} {which}"
            );
        }
    }
    // The root token is revoked and gone from SSM.
    assert_eq!(bed.root_token_parameter(), None);
    assert!(!cluster
        .state()
        .tokens
        .iter()
        .any(|t| t.starts_with("fake-root-")));
    assert_eq!(bed.records.init_stage(), Some(InitStage::Bootstrapped));
    assert_eq!(bed.verdict("t-i-1"), Some(Verdict::Continue));
    assert_eq!(bed.records.stage("t-i-1"), Some(ActionStage::Continued));
    assert_eq!(bed.lock_holder(), None, "the init lock is released");
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), None);
}

#[tokio::test(start_paused = true)]
async fn a_joining_node_is_unsealed_and_waits_until_autopilot_makes_it_a_voter() {
    let bed = Bed::fresh(&["i-1", "i-2", "i-3"]);
    bed.launched("i-1").await;
    let shares = bed.stored_shares();
    let started = Instant::now();
    let report = bed.launched("i-2").await;
    assert_eq!(
        report,
        LaunchReport {
            instance: "i-2".into(),
            initialised_cluster: false,
            joined: true,
            unsealed: Unsealed::WithShares,
            completed_now: true,
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "it completed only once autopilot promoted the node: {:?}",
        started.elapsed()
    );
    let cluster = bed.cluster();
    assert_eq!(cluster.voters(), ["i-1", "i-2"]);
    assert!(!cluster.is_sealed("i-2"));
    assert_eq!(cluster.active().as_deref(), Some("i-1"));
    assert_eq!((cluster.calls("init"), cluster.calls("join i-2")), (1, 1));
    assert_eq!(bed.stored_shares(), shares, "the shares are untouched");
    assert_eq!(bed.verdict("t-i-2"), Some(Verdict::Continue));
    assert_eq!(bed.records.stage("t-i-2"), Some(ActionStage::Continued));
}

#[tokio::test(start_paused = true)]
async fn a_redelivery_after_a_lost_record_completes_nothing_twice() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.launched("i-2").await;
    // The run completed the action, then died before recording it.
    bed.records.forget("t-i-2");
    let outcome = bed.launch("i-2", "t-i-2").await.expect("redelivery");
    let Outcome::Launched(report) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        (report.joined, report.unsealed, report.completed_now),
        (false, Unsealed::Already, false)
    );
    let cluster = bed.cluster();
    assert_eq!((cluster.calls("init"), cluster.calls("join")), (1, 1));
    assert_eq!(cluster.voters(), ["i-1", "i-2"]);
    assert_eq!(bed.verdict("t-i-2"), Some(Verdict::Continue));
    assert_eq!(bed.records.stage("t-i-2"), Some(ActionStage::Continued));
}

#[tokio::test(start_paused = true)]
async fn a_launch_cut_off_after_the_join_resumes_without_joining_again() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    bed.node().fail_on("unseal", "i-2", Failure::Unreachable, 1);
    let err = bed.launch("i-2", "t-2").await.expect_err("unseal fails");
    assert!(
        matches!(&err, LifecycleError::Vault { step, .. } if step.starts_with("unsealing")),
        "{err:?}"
    );
    // Joined (the record says so), sealed, not a peer yet, and the action still pending.
    assert!(bed.cluster().is_sealed("i-2"));
    assert_eq!(bed.cluster().peers(), ["i-1"]);
    assert_eq!(bed.verdict("t-2"), None);
    assert_eq!(bed.records.stage("t-2"), Some(ActionStage::Joining));

    let outcome = bed.launch("i-2", "t-2").await.expect("redelivery");
    let Outcome::Launched(report) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        (report.joined, report.unsealed),
        (false, Unsealed::WithShares)
    );
    assert_eq!(bed.cluster().calls("join i-2"), 1, "joined once");
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2"]);
    assert_eq!(bed.verdict("t-2"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_api_never_answers_is_abandoned_and_counted() {
    let bed = Bed::fresh(&["i-1"]);
    bed.fleet.add(bed.cluster(), "i-1");
    bed.cluster().kill("i-1");
    let outcome = bed.launch("i-1", "t-1").await.expect("abandoned");
    let Outcome::Abandoned { instance, reason } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(instance.as_str(), "i-1");
    assert!(reason.contains("the API of i-1 to answer"), "{reason}");
    assert_eq!(bed.verdict("t-1"), Some(Verdict::Abandon));
    assert_eq!(bed.records.stage("t-1"), Some(ActionStage::Abandoned));
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), Some(1.0));
    assert!(
        bed.heartbeats() >= 9,
        "the hook was kept alive for the 600 s wait: {}",
        bed.heartbeats()
    );
    assert_eq!(
        bed.fleet.node_lookups(),
        1,
        "the address is asked of EC2 once, not at each of the wait's polls"
    );
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(bed.records.init_stage(), None);
}

#[tokio::test(start_paused = true)]
async fn a_node_still_silent_at_the_invocation_deadline_is_left_for_the_redelivery() {
    let bed = Bed::fresh(&["i-1"]);
    bed.fleet.add(bed.cluster(), "i-1");
    bed.cluster().kill("i-1");
    let deadline = Instant::now() + Duration::from_secs(120);
    let err = bed
        .function
        .run(&action_event(Transition::Launching, "i-1", "t-1"), deadline)
        .await
        .expect_err("deadline");
    assert!(
        matches!(&err, LifecycleError::Wait(w) if w.why == "the invocation deadline"),
        "{err:?}"
    );
    assert!(Instant::now() < deadline, "it stopped before the deadline");
    assert_eq!(bed.verdict("t-1"), None, "not abandoned: a retry may do");
    assert_eq!(bed.records.stage("t-1"), Some(ActionStage::Started));
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), None);
}

#[tokio::test(start_paused = true)]
async fn a_refused_join_abandons_the_instance_at_once() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    bed.node().fail_on("join", "i-2", Failure::Status(400), 1);
    let outcome = bed.launch("i-2", "t-2").await.expect("abandoned");
    let Outcome::Abandoned { reason, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("join through"), "{reason}");
    assert_eq!(bed.cluster().calls("join"), 0, "a 4xx is not tried again");
    assert_eq!(bed.verdict("t-2"), Some(Verdict::Abandon));
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), Some(1.0));
    assert_eq!(bed.cluster().peers(), ["i-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_join_that_fails_during_an_election_or_a_network_drop_is_tried_again() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    bed.node().fail_on("join", "i-2", Failure::Status(500), 2);
    bed.node().fail_on("join", "i-2", Failure::Unreachable, 1);
    let report = match bed.launch("i-2", "t-2").await {
        Ok(Outcome::Launched(report)) => report,
        other => panic!("{other:?}"),
    };
    assert!(report.joined);
    assert_eq!(
        bed.cluster().calls("join"),
        1,
        "the fourth try reached the node"
    );
    assert_eq!(bed.verdict("t-2"), Some(Verdict::Continue));
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_join_whose_answer_was_lost_is_not_sent_twice() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    bed.node().fail_after("join", Failure::Unreachable, 1);
    let report = match bed.launch("i-2", "t-2").await {
        Ok(Outcome::Launched(report)) => report,
        other => panic!("{other:?}"),
    };
    assert!(report.joined);
    assert_eq!(bed.cluster().calls("join"), 1);
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_join_that_keeps_failing_abandons_the_instance_when_the_time_is_up() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    bed.node()
        .fail_on("join", "i-2", Failure::Status(503), usize::MAX);
    let outcome = bed.launch("i-2", "t-2").await.expect("abandoned");
    let Outcome::Abandoned { reason, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("i-2 to join the cluster"), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    assert_eq!(bed.verdict("t-2"), Some(Verdict::Abandon));
    assert_eq!(bed.cluster().peers(), ["i-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_node_is_not_joined_when_its_shares_are_missing() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    for n in 2..=5 {
        bed.ssm.remove(&bed.share(n));
    }
    bed.fleet.add(bed.cluster(), "i-2");
    let outcome = bed.launch("i-2", "t-2").await.expect("an outcome");
    // A permanent error: abandoned at once and counted, not left to the hook's timeout.
    let Outcome::Abandoned { reason, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.starts_with("MissingShares: "), "{reason}");
    assert!(reason.contains("needs 3 shares, but only 1"), "{reason}");
    assert!(reason.contains(&bed.share(2)), "{reason}");
    // Joined but never unsealed would be worse than not joined.
    assert_eq!(bed.cluster().calls("join"), 0);
    assert!(!bed.cluster().state().nodes["i-2"].initialised);
    assert_eq!(bed.verdict("t-2"), Some(Verdict::Abandon));
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn an_earlier_clusters_share_stops_the_initialisation() {
    let bed = Bed::fresh(&["i-1"]);
    bed.ssm.put(&bed.share(1), "an-earlier-clusters-share");
    bed.fleet.add(bed.cluster(), "i-1");
    let err = bed.launch("i-1", "t-1").await.expect_err("stale share");
    assert!(
        matches!(&err, LifecycleError::StaleShares { parameter } if *parameter == bed.share(1)),
        "{err:?}"
    );
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(
        bed.ssm.value(&bed.share(1)).as_deref(),
        Some("an-earlier-clusters-share"),
        "never overwritten"
    );
    assert_eq!(bed.ssm.all().len(), 1);
    assert_eq!(bed.records.init_stage(), None);
    assert_eq!(bed.lock_holder(), None);
    assert_eq!(bed.verdict("t-1"), None);
}

#[tokio::test(start_paused = true)]
async fn three_launches_at_once_initialise_the_cluster_once() {
    let bed = Bed::fresh(&["i-1", "i-2", "i-3"]);
    for instance in ["i-1", "i-2", "i-3"] {
        bed.fleet.add(bed.cluster(), instance);
    }
    let (a, b, c) = tokio::join!(
        bed.launch("i-1", "t-1"),
        bed.launch("i-2", "t-2"),
        bed.launch("i-3", "t-3")
    );
    let reports: Vec<LaunchReport> = [a, b, c]
        .into_iter()
        .map(|outcome| match outcome {
            Ok(Outcome::Launched(report)) => report,
            other => panic!("{other:?}"),
        })
        .collect();
    let initialisers = reports.iter().filter(|r| r.initialised_cluster).count();
    assert_eq!(initialisers, 1, "{reports:?}");
    assert_eq!(reports.iter().filter(|r| r.joined).count(), 2);
    assert_eq!(bed.cluster().calls("init"), 1);
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.stored_shares(), bed.cluster_shares());
    for token in ["t-1", "t-2", "t-3"] {
        assert_eq!(bed.verdict(token), Some(Verdict::Continue), "{token}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_auto_unseal_cluster_stores_recovery_shares_and_enters_none() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.cluster().state().auto_unseal = true;
    let first = bed.launched("i-1").await;
    assert!(first.initialised_cluster);
    let s = &bed.function.settings;
    let recovery: Vec<String> = (1..=5)
        .filter_map(|n| bed.ssm.value(&s.share_parameter(true, n)))
        .collect();
    assert_eq!(recovery, bed.cluster_shares());
    assert!(bed.stored_shares().is_empty(), "no unseal shares");
    let second = bed.launched("i-2").await;
    assert!(second.joined);
    assert!(
        matches!(second.unsealed, Unsealed::Already | Unsealed::ByAutoUnseal),
        "{second:?}"
    );
    assert_eq!(bed.cluster().calls("unseal"), 0, "no share was entered");
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_launch_whose_cached_token_a_restore_revoked_logs_in_again_and_is_not_abandoned() {
    let bed = Bed::running(&["i-1", "i-2"]);
    bed.reconcile().await;
    let logins = bed.cluster().logins();
    // A restore brings back data without the token node-lifecycle has cached.
    bed.cluster().state().tokens.clear();
    bed.cluster().add_node("i-3");
    bed.fleet.add(bed.cluster(), "i-3");
    let outcome = bed.launch("i-3", "t-3").await.expect("an outcome");
    let Outcome::Launched(report) = outcome else {
        panic!("a refused cached token must not abandon the instance: {outcome:?}");
    };
    // The first attempt joined the node before Vault refused the token; the retry goes
    // on from there without joining again.
    assert!(report.completed_now, "{report:?}");
    assert_eq!(bed.cluster().calls("join i-3"), 1, "joined once");
    assert_eq!(bed.cluster().voters(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.cluster().logins(), logins + 1);
    assert_eq!(bed.verdict("t-3"), Some(Verdict::Continue));
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), None);
}

/// The DR region's fence emptied the group and a failback is asked for: the cluster's
/// init record says it exists, no node of it is initialised, and the failback rebuilds
/// the cluster in the next node. Its launch completes with the node left uninitialised
/// (no join, no new cluster with new keys); without the failback it would wait for a
/// node to join.
#[tokio::test(start_paused = true)]
async fn a_node_launched_into_a_group_the_fence_emptied_is_left_for_the_failback() {
    use crate::failover::record::{Failback, FailoverRecords};
    let mut bed = Bed::fresh(&["i-4"]);
    bed.cluster_exists_without_nodes();
    let records = std::sync::Arc::new(crate::testing::FakeFailoverRecords::fencing());
    let mut record = records.current().await.expect("read").expect("recorded");
    record.failback = Some(Failback {
        id: "failback".into(),
        started_at: chrono::Utc::now(),
        snapshot: None,
        rebuild: true,
        phases: Vec::new(),
        failed: None,
    });
    records.put(&record).await.expect("put");
    bed.function.fence = Some(Box::new(records));
    let report = bed.launched("i-4").await;
    assert_eq!(
        report,
        LaunchReport {
            instance: "i-4".into(),
            initialised_cluster: false,
            joined: false,
            unsealed: Unsealed::LeftForRebuild,
            completed_now: true,
        }
    );
    assert_eq!(bed.verdict("t-i-4"), Some(Verdict::Continue));
    assert_eq!(bed.cluster().calls("init"), 0, "no cluster of its own");
    assert_eq!(bed.cluster().calls("join"), 0);
    assert!(bed.stored_shares().is_empty(), "no share written");
}

/// A DR standby (`PRIMARY_CLUSTER`) whose group dr-failover emptied back to a pilot
/// light: its cluster was initialised once, no node of it is left, and dr-failover
/// rebuilds it in the next node from the primary's snapshot. The launch leaves the node
/// uninitialised; a primary (no `PRIMARY_CLUSTER`, no failback) would not.
#[tokio::test(start_paused = true)]
async fn a_node_launched_into_an_emptied_standby_is_left_for_dr_failover() {
    let mut bed = Bed::fresh(&["i-4"]);
    bed.cluster_exists_without_nodes();
    bed.function.settings.standby_of = Some("prod".parse().expect("name"));
    let report = bed.launched("i-4").await;
    assert_eq!(report.unsealed, Unsealed::LeftForRebuild);
    assert_eq!(bed.verdict("t-i-4"), Some(Verdict::Continue));
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(bed.cluster().calls("join"), 0);
}
