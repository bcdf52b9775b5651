//! The one-time initialisation under its lock, cut off after each stage and run again:
//! it converges to the same shares with one `sys/init`, or stops with the error that says
//! the shares are lost. The cut is the failure of the next write (SSM, the state table)
//! or a Vault answer that never arrives.

use super::*;
use crate::{lifecycle::settings::DEPLOYED_FUNCTIONS, testing::Failure};

/// A fresh three-node cluster whose first node is launching.
fn bed() -> Bed {
    let bed = Bed::fresh(&["i-1", "i-2", "i-3"]);
    bed.fleet.add(bed.cluster(), "i-1");
    bed
}

/// The re-run of the same launch event completes it.
async fn converges(bed: &Bed) {
    match bed.launch("i-1", "t-1").await {
        Ok(Outcome::Launched(report)) => assert!(report.completed_now, "{report:?}"),
        other => panic!("the re-run: {other:?}"),
    }
    let cluster = bed.cluster();
    assert_eq!(cluster.calls("init"), 1, "sys/init was sent once");
    assert_eq!(bed.stored_shares(), bed.cluster_shares());
    assert_eq!(bed.stored_shares().len(), 5);
    assert_eq!(bed.records.init_stage(), Some(InitStage::Bootstrapped));
    assert_eq!(cluster.voters(), ["i-1"]);
    assert!(!cluster.is_sealed("i-1"));
    assert_eq!(bed.verdict("t-1"), Some(Verdict::Continue));
    assert_eq!(bed.lock_holder(), None);
    let s = &bed.function.settings;
    for function in &s.approle_functions {
        assert!(
            bed.ssm
                .value(&s.approle_parameter(function, "secret-id"))
                .is_some(),
            "{function}"
        );
    }
}

/// The first run failed, and the action is still pending.
fn cut_off(bed: &Bed, err: &LifecycleError) {
    assert_eq!(bed.verdict("t-1"), None, "{err:?}");
    assert_eq!(bed.records.stage("t-1"), Some(ActionStage::Started));
    assert_eq!(bed.lock_holder(), None, "the lock is released on an error");
}

#[tokio::test(start_paused = true)]
async fn cut_off_before_sys_init_it_initialises_on_the_rerun() {
    let bed = bed();
    bed.node().fail("init", Failure::Unreachable, 1);
    let err = bed.launch("i-1", "t-1").await.expect_err("init fails");
    assert!(
        matches!(&err, LifecycleError::Vault { step, .. } if step.starts_with("initialising")),
        "{err:?}"
    );
    cut_off(&bed, &err);
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(bed.records.init_stage(), Some(InitStage::Started));
    assert!(bed.ssm.all().is_empty());
    converges(&bed).await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_to_sys_init_stops_as_shares_lost_and_never_initialises_again() {
    let bed = bed();
    bed.node().fail_after("init", Failure::Unreachable, 1);
    let err = bed.launch("i-1", "t-1").await.expect_err("answer lost");
    cut_off(&bed, &err);
    for _ in 0..2 {
        let err = bed.launch("i-1", "t-1").await.expect_err("shares lost");
        let LifecycleError::InitialisedWithoutShares { node, path, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            (node.as_str(), path.as_str()),
            ("i-1", "/vault-lifecycle/prod")
        );
        assert_eq!(
            FunctionError::from(err).error_type,
            "Permanent.InitialisedWithoutShares"
        );
    }
    assert_eq!(bed.cluster().calls("init"), 1, "never initialised again");
    assert!(bed.ssm.all().is_empty());
    assert_eq!(bed.records.init_stage(), Some(InitStage::Started));
    assert_eq!(bed.verdict("t-1"), None);
}

/// What `sys/init` returned is lost: the run stops with `SharesNotStored` and the record
/// still says `started`; every later run stops with `InitialisedWithoutShares`, naming
/// what is missing, and never initialises again nor unseals with part of the keys.
async fn stops_as_shares_lost(bed: &Bed, stored: usize) {
    let err = bed
        .launch("i-1", "t-1")
        .await
        .expect_err("SSM never recovers");
    let LifecycleError::SharesNotStored {
        stored: reported,
        total,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*reported, *total), (stored, 6), "{err}");
    assert_eq!(
        FunctionError::from(err).error_type,
        "Permanent.SharesNotStored"
    );
    assert_eq!(bed.verdict("t-1"), None);
    assert_eq!(bed.lock_holder(), None, "the lock is released on an error");
    let err = bed.launch("i-1", "t-1").await.expect_err("shares lost");
    let LifecycleError::InitialisedWithoutShares { missing, .. } = &err else {
        panic!("{err:?}");
    };
    let mut expected: Vec<String> = (stored + 1..=5).map(|n| bed.share(n)).collect();
    expected.push(bed.function.settings.root_token_parameter());
    assert_eq!(*missing, expected);
    assert_eq!(bed.cluster().calls("init"), 1, "never initialised again");
    assert_eq!(
        bed.records.init_stage(),
        Some(InitStage::Started),
        "the record does not claim the shares were stored"
    );
    assert_eq!(
        bed.stored_shares(),
        bed.cluster_shares()[..stored.min(5)],
        "the shares stored are kept as they were"
    );
    assert_eq!(
        bed.cluster().calls("unseal"),
        0,
        "no unseal with part of the keys"
    );
    assert_eq!(bed.verdict("t-1"), None);
}

#[tokio::test(start_paused = true)]
async fn an_ssm_that_never_recovers_on_the_first_share_stops_as_shares_lost() {
    let bed = bed();
    bed.ssm.fail_writes_of(&bed.share(1), usize::MAX);
    stops_as_shares_lost(&bed, 0).await;
}

#[tokio::test(start_paused = true)]
async fn cut_off_with_fewer_shares_than_the_threshold_it_stops_as_shares_lost() {
    let bed = bed();
    bed.ssm.fail_writes_of(&bed.share(2), usize::MAX);
    stops_as_shares_lost(&bed, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_resume_is_not_judged_on_the_threshold_of_shares_alone() {
    // Three of five shares unseal the node, yet two shares and the root token are lost:
    // the run stops instead of unsealing and bootstrapping with part of the keys.
    let bed = bed();
    bed.ssm.fail_writes_of(&bed.share(4), usize::MAX);
    stops_as_shares_lost(&bed, 3).await;
}

#[tokio::test(start_paused = true)]
async fn the_root_token_refused_until_the_deadline_stops_as_shares_lost() {
    let bed = bed();
    let root = bed.function.settings.root_token_parameter();
    bed.ssm.fail_writes_of(&root, usize::MAX);
    stops_as_shares_lost(&bed, 5).await;
}

#[tokio::test(start_paused = true)]
async fn an_ssm_error_on_share_3_of_5_is_retried_and_every_share_is_stored() {
    let logs = capture_logs();
    let bed = bed();
    bed.ssm.fail_writes_of(&bed.share(3), 4);
    match bed.launch("i-1", "t-1").await {
        Ok(Outcome::Launched(report)) => assert!(report.initialised_cluster, "{report:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(bed.stored_shares(), bed.cluster_shares());
    assert_eq!(bed.records.init_stage(), Some(InitStage::Bootstrapped));
    assert_eq!(bed.cluster().calls("init"), 1);
    let logged = logs.contents();
    assert_eq!(
        logged.matches("SSM write failed; retrying").count(),
        4,
        "{logged}"
    );
    for share in bed.cluster_shares() {
        assert!(!logged.contains(&share), "a share reached the logs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_whose_answer_was_lost_is_recognised_by_its_value() {
    // SSM stored share 2 and its answer was lost; the retry finds it there: the same
    // value is this run's own write, not an earlier cluster's share.
    let bed = bed();
    bed.ssm.store_then_fail_write_of(&bed.share(2));
    converges(&bed).await;
}

#[tokio::test(start_paused = true)]
async fn cut_off_before_recording_the_stored_shares_it_resumes_bootstrap() {
    let bed = bed();
    bed.records.fail_write_of(InitStage::SharesStored);
    let err = bed.launch("i-1", "t-1").await.expect_err("table fails");
    assert!(matches!(err, LifecycleError::Records(_)), "{err:?}");
    cut_off(&bed, &err);
    assert_eq!(bed.stored_shares(), bed.cluster_shares());
    assert!(bed.root_token_parameter().is_some());
    assert_eq!(bed.records.init_stage(), Some(InitStage::Started));
    converges(&bed).await;
    assert_eq!(bed.root_token_parameter(), None);
}

#[tokio::test(start_paused = true)]
async fn cut_off_during_bootstrap_it_resumes_bootstrap() {
    let bed = bed();
    bed.node().fail("put_approle", Failure::Status(500), 1);
    let err = bed.launch("i-1", "t-1").await.expect_err("bootstrap fails");
    assert!(
        matches!(&err, LifecycleError::Vault { step, .. } if step.starts_with("writing approle")),
        "{err:?}"
    );
    cut_off(&bed, &err);
    assert_eq!(bed.records.init_stage(), Some(InitStage::SharesStored));
    converges(&bed).await;
    assert_eq!(
        bed.cluster().state().approles.len(),
        DEPLOYED_FUNCTIONS.len()
    );
    assert_eq!(bed.root_token_parameter(), None);
}

#[tokio::test(start_paused = true)]
async fn cut_off_after_revoking_the_root_token_it_finishes_with_its_own_login() {
    let bed = bed();
    bed.records.fail_write_of(InitStage::Bootstrapped);
    let err = bed.launch("i-1", "t-1").await.expect_err("table fails");
    cut_off(&bed, &err);
    assert!(!bed
        .cluster()
        .state()
        .tokens
        .iter()
        .any(|t| t.starts_with("fake-root-")));
    converges(&bed).await;
}

#[tokio::test(start_paused = true)]
async fn cut_off_before_deleting_the_root_token_the_redelivery_completes_the_launch() {
    let bed = bed();
    bed.ssm.fail_deletes(true);
    let err = bed.launch("i-1", "t-1").await.expect_err("SSM fails");
    assert!(matches!(err, LifecycleError::Parameter(_)), "{err:?}");
    cut_off(&bed, &err);
    assert_eq!(bed.records.init_stage(), Some(InitStage::Bootstrapped));
    bed.ssm.fail_deletes(false);
    converges(&bed).await;
}

#[tokio::test(start_paused = true)]
async fn a_revoked_root_token_left_in_ssm_by_a_cut_off_run_is_deleted() {
    for cut in ["record", "delete"] {
        let bed = bed();
        match cut {
            "record" => bed.records.fail_write_of(InitStage::Bootstrapped),
            _ => bed.ssm.fail_deletes(true),
        }
        bed.launch("i-1", "t-1").await.expect_err("cut off");
        bed.ssm.fail_deletes(false);
        converges(&bed).await;
        assert_eq!(bed.root_token_parameter(), None, "cut off at the {cut}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_cut_off_under_the_lock_is_resumed_by_its_own_redelivery() {
    let bed = bed();
    // A run of this event was cut off at its deadline holding the lock: the lock lasts
    // until that deadline and a margin, and the redelivery takes it once it lapses.
    if let Ok(mut held) = bed.locks.held.lock() {
        let until = bed.locks.now() + Duration::from_secs(30);
        held.insert("init".into(), ("launch/t-1/run-0dead".into(), until));
    }
    converges(&bed).await;
}

#[tokio::test(start_paused = true)]
async fn the_init_lock_lasts_until_the_invocations_deadline() {
    let bed = bed();
    bed.ssm.fail_writes_of(&bed.share(1), usize::MAX);
    let deadline = Instant::now() + Duration::from_secs(400);
    let run = bed.launch_until("i-1", "t-1", deadline);
    // The run dies while it retries the share (a crash): it never releases the lock. It
    // retries until a pause (jittered, at most 10 s) would end within 2 s of the
    // deadline, so it may stop as early as 12 s before: the crash comes before that.
    let crash = deadline - Duration::from_secs(20);
    let cut = tokio::time::timeout_at(crash, run).await;
    assert!(cut.is_err(), "the run was still storing: {cut:?}");
    let the_deadline = bed.locks.now() + Duration::from_secs(20);
    let held = bed.locks.held.lock().map(|h| h.get("init").cloned());
    let (owner, until) = held.ok().flatten().expect("the lock is held");
    assert!(owner.starts_with("launch/t-1/run-"), "{owner}");
    assert!(
        until > the_deadline,
        "it lasts past the invocation's deadline"
    );
    assert!(
        until <= the_deadline + Duration::from_secs(30),
        "and lapses within the margin after it"
    );
}

#[tokio::test(start_paused = true)]
async fn two_deliveries_of_the_first_launch_at_once_initialise_and_bootstrap_once() {
    let bed = bed();
    let (a, b) = tokio::join!(bed.launch("i-1", "t-1"), bed.launch("i-1", "t-1"));
    let mut initialised = 0;
    for outcome in [a, b] {
        match outcome {
            Ok(Outcome::Launched(report)) => initialised += usize::from(report.initialised_cluster),
            // The second delivery waits for the first, then finds the action done.
            Ok(Outcome::AlreadyCompleted { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(initialised, 1, "one delivery initialised the cluster");
    let cluster = bed.cluster();
    assert_eq!(cluster.calls("init"), 1);
    let issued = cluster.state().secret_ids.clone();
    assert_eq!(issued.len(), DEPLOYED_FUNCTIONS.len(), "{issued:?}");
    assert!(
        issued.values().all(|n| *n == 1),
        "one bootstrap: no secret ID beyond the stored ones: {issued:?}"
    );
    assert_eq!(bed.stored_shares(), bed.cluster_shares());
    assert_eq!(bed.records.init_stage(), Some(InitStage::Bootstrapped));
    assert_eq!(bed.lock_holder(), None);
}

#[tokio::test(start_paused = true)]
async fn with_too_little_time_left_sys_init_is_not_sent_and_nothing_changes() {
    let bed = bed();
    let deadline = Instant::now() + Duration::from_secs(150);
    let err = bed
        .launch_until("i-1", "t-1", deadline)
        .await
        .expect_err("too little time");
    let LifecycleError::NoTimeToInitialise { init_timeout_s, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*init_timeout_s, 120);
    assert_eq!(
        FunctionError::from(err).error_type,
        "Transient.NoTimeToInitialise"
    );
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(bed.records.init_stage(), None);
    assert!(bed.ssm.all().is_empty());
    assert_eq!(bed.lock_holder(), None);
    converges(&bed).await;
}

#[tokio::test(start_paused = true)]
async fn the_init_record_never_goes_back_a_stage() {
    let records = crate::testing::FakeRecords::default();
    if let Err(breach) = crate::testing::init_record_contract(&records).await {
        panic!("{breach}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_launch_waits_while_another_run_holds_the_lock_and_changes_nothing() {
    let bed = bed();
    if let Ok(mut held) = bed.locks.held.lock() {
        let until = std::time::SystemTime::now() + Duration::from_secs(900);
        held.insert("init".into(), ("launch/t-other".into(), until));
    }
    let err = bed.launch("i-1", "t-1").await.expect_err("lock held");
    let LifecycleError::Wait(expired) = &err else {
        panic!("{err:?}");
    };
    assert!(
        expired.last.contains("init lock held by launch/t-other"),
        "{expired}"
    );
    assert_eq!(bed.cluster().calls("init"), 0);
    assert_eq!(bed.lock_holder().as_deref(), Some("launch/t-other"));
    assert_eq!(bed.records.init_stage(), None);
    assert!(bed.ssm.all().is_empty());
    assert_eq!(bed.verdict("t-1"), None);
}
