//! Terminate: a leaving leader steps down first, the last voters wait for a joining
//! replacement, nothing joining means no wait. Terminates go one at a time, find a leader
//! whose own instance is leaving, remove departed dead voters first, and never complete
//! CONTINUE for a voter whose departure would cost quorum: that action is held.

use super::*;
use crate::lifecycle::terminate::LeaveReport;

fn left(outcome: Result<Outcome, LifecycleError>) -> LeaveReport {
    match outcome {
        Ok(Outcome::Terminated(report)) => report,
        other => panic!("terminate: {other:?}"),
    }
}

/// The node the call before `remove-peer <id>` went to: the one the removal went through.
fn removed_through(bed: &Bed, id: &str) -> Option<String> {
    let calls = bed.cluster().state().calls.clone();
    let at = calls
        .iter()
        .position(|c| *c == format!("remove-peer {id}"))?;
    calls[at - 1].split(' ').nth(1).map(str::to_owned)
}

#[tokio::test(start_paused = true)]
async fn a_leaving_leader_steps_down_before_its_peer_is_removed() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.terminating("i-1");
    let report = left(bed.terminate("i-1", "t-9").await);
    assert_eq!(
        report,
        LeaveReport {
            instance: "i-1".into(),
            removed_first: vec![],
            stepped_down: true,
            peer_removed: true,
            waited_for_replacement: None,
            completed_now: true,
        }
    );
    let cluster = bed.cluster();
    assert_eq!(cluster.peers(), ["i-2", "i-3"]);
    let leader = cluster.active().expect("a new leader");
    assert_ne!(leader, "i-1");
    assert_eq!(removed_through(&bed, "i-1"), Some(leader));
    assert_eq!(bed.verdict("t-9"), Some(Verdict::Continue));
    assert_eq!(bed.records.stage("t-9"), Some(ActionStage::Continued));
}

#[tokio::test(start_paused = true)]
async fn a_follower_leaves_at_once_when_the_cluster_keeps_its_tolerance() {
    let bed = Bed::running(&["i-1", "i-2", "i-3", "i-4", "i-5"]);
    bed.fleet.terminating("i-5");
    let started = Instant::now();
    let report = left(bed.terminate("i-5", "t-9").await);
    assert!(report.peer_removed && !report.stepped_down, "{report:?}");
    assert_eq!(report.waited_for_replacement, None);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3", "i-4"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-1"));
    assert_eq!(removed_through(&bed, "i-5").as_deref(), Some("i-1"));
}

#[tokio::test(start_paused = true)]
async fn the_last_voters_wait_until_the_joining_replacement_votes() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let cluster = bed.cluster();
    // The replacement has joined and is unsealed: a non-voter until autopilot promotes it.
    cluster.add_node("i-4");
    cluster
        .join(&cluster.addr("i-4"), &cluster.addr("i-1"), None)
        .await
        .expect("join");
    for share in cluster.shares().iter().take(3) {
        cluster
            .unseal(&cluster.addr("i-4"), share)
            .await
            .expect("unseal");
    }
    bed.fleet.add(cluster, "i-4");
    bed.fleet.terminating("i-3");
    let started = Instant::now();
    let report = left(bed.terminate("i-3", "t-9").await);
    assert_eq!(
        report.waited_for_replacement.as_deref(),
        Some("waited until i-4 became a healthy voter")
    );
    assert!(report.peer_removed, "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "it waited for autopilot: {:?}",
        started.elapsed()
    );
    assert_eq!(cluster.voters(), ["i-1", "i-2", "i-4"]);
    assert_eq!(bed.verdict("t-9"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn a_replacement_that_never_votes_is_waited_for_up_to_its_limit() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    // A member that never joins: its node holds nothing.
    bed.cluster().add_node("i-4");
    bed.fleet.add(bed.cluster(), "i-4");
    bed.fleet.terminating("i-3");
    let started = Instant::now();
    let report = left(bed.terminate("i-3", "t-9").await);
    let waited = report.waited_for_replacement.clone().unwrap_or_default();
    assert!(waited.starts_with("gave up after"), "{report:?}");
    assert!(waited.contains("joining: i-4"), "{waited}");
    assert!(started.elapsed() >= Duration::from_secs(590));
    assert!(report.peer_removed, "removed anyway");
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2"]);
    assert!(
        bed.heartbeats() >= 9,
        "the hook was kept alive while it waited: {}",
        bed.heartbeats()
    );
    assert_eq!(bed.verdict("t-9"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn a_dead_leaving_peer_goes_at_once_though_a_replacement_is_joining() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    // A replacement that has not joined yet, for i-3, whose node is already gone.
    bed.cluster().add_node("i-4");
    bed.fleet.add(bed.cluster(), "i-4");
    bed.cluster().kill("i-3");
    bed.fleet.terminating("i-3");
    let started = Instant::now();
    let report = left(bed.terminate("i-3", "t-9").await);
    assert!(report.peer_removed, "{report:?}");
    assert_eq!(report.waited_for_replacement, None);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait for the replacement: {:?}",
        started.elapsed()
    );
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2"]);
    assert_eq!(bed.verdict("t-9"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn with_nothing_joining_the_peer_is_removed_at_once() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.terminating("i-3");
    let started = Instant::now();
    let report = left(bed.terminate("i-3", "t-9").await);
    assert!(report.peer_removed, "{report:?}");
    assert_eq!(report.waited_for_replacement, None);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_is_not_a_peer_is_let_go() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().add_node("i-4");
    bed.fleet.add(bed.cluster(), "i-4");
    bed.fleet.terminating("i-4");
    let report = left(bed.terminate("i-4", "t-9").await);
    assert!(!report.peer_removed && !report.stepped_down, "{report:?}");
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.cluster().calls("remove-peer"), 0);
    assert_eq!(bed.verdict("t-9"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_terminate_removes_nothing_twice() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.terminating("i-1");
    left(bed.terminate("i-1", "t-9").await);
    // The completion went through; the record of it did not.
    bed.records.forget("t-9");
    let report = left(bed.terminate("i-1", "t-9").await);
    assert!(
        !report.peer_removed && !report.stepped_down && !report.completed_now,
        "{report:?}"
    );
    assert_eq!(bed.cluster().calls("remove-peer"), 1);
    assert_eq!(bed.cluster().peers(), ["i-2", "i-3"]);
    assert_eq!(bed.records.stage("t-9"), Some(ActionStage::Continued));
}

/// The action was held: not completed, heartbeats sent, the held terminate counted.
fn assert_held(bed: &Bed, outcome: &Result<Outcome, LifecycleError>, token: &str, why: &str) {
    match outcome {
        Err(e @ LifecycleError::TerminateHeld { reason, .. }) => {
            assert!(reason.contains(why), "{e}");
            assert_eq!(e.name(), "TerminateHeld");
            assert!(e.retry_helps());
        }
        other => panic!("expected a held terminate, got {other:?}"),
    }
    assert_eq!(bed.verdict(token), None, "never completed");
    assert!(bed.heartbeats() >= 1, "the hook was kept alive");
    assert_eq!(
        bed.metrics.0.value("TerminateHeldForQuorum", None),
        Some(1.0)
    );
}

use crate::errors::Classify;

#[tokio::test(start_paused = true)]
async fn a_follower_finds_the_leader_whose_own_instance_is_leaving() {
    // The reproduction: the leader and a follower leave together; the follower's
    // terminate comes first, then the leader's.
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.terminating("i-1");
    bed.fleet.terminating("i-3");
    let follower = left(bed.terminate("i-3", "t-3").await);
    assert!(
        follower.peer_removed && !follower.stepped_down,
        "{follower:?}"
    );
    assert_eq!(removed_through(&bed, "i-3").as_deref(), Some("i-1"));
    let leader = left(bed.terminate("i-1", "t-1").await);
    assert!(leader.peer_removed && leader.stepped_down, "{leader:?}");
    assert_eq!(bed.cluster().peers(), ["i-2"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-2"));
    assert_eq!(bed.verdict("t-3"), Some(Verdict::Continue));
    assert_eq!(bed.verdict("t-1"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_hands_over_to_another_leaving_node_sees_it_lead() {
    // i-1 leads; i-2 leaves too and, first in line, wins the election after the step-down.
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.terminating("i-1");
    bed.fleet.terminating("i-2");
    let started = Instant::now();
    let leader = left(bed.terminate("i-1", "t-1").await);
    assert!(leader.stepped_down && leader.peer_removed, "{leader:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait for a leader it could not see"
    );
    assert_eq!(removed_through(&bed, "i-1").as_deref(), Some("i-2"));
    let follower = left(bed.terminate("i-2", "t-2").await);
    assert!(
        follower.stepped_down && follower.peer_removed,
        "{follower:?}"
    );
    assert_eq!(bed.cluster().peers(), ["i-3"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-3"));
}

#[tokio::test(start_paused = true)]
async fn two_terminates_at_once_go_one_after_the_other() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.fleet.terminating("i-1");
    bed.fleet.terminating("i-3");
    let (a, b) = tokio::join!(bed.terminate("i-3", "t-3"), bed.terminate("i-1", "t-1"));
    assert!(left(a).peer_removed);
    assert!(left(b).peer_removed);
    assert_eq!(bed.cluster().peers(), ["i-2"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-2"));
    let held = bed.locks.held.lock().map(|h| h.len()).unwrap_or(1);
    assert_eq!(held, 0, "the terminate lock is released");
}

#[tokio::test(start_paused = true)]
async fn a_terminate_waits_for_the_terminate_lock() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    let busy = Duration::from_secs(30);
    bed.locks
        .claim("terminate", "i-9 t-other", Duration::from_secs(900))
        .await
        .expect("claim");
    // The other terminate finishes after a while and releases the lock.
    let locks = bed.locks.clone();
    tokio::spawn(async move {
        tokio::time::sleep(busy).await;
        locks.release("terminate", "i-9 t-other").await
    });
    bed.fleet.terminating("i-3");
    let started = Instant::now();
    let report = left(bed.terminate("i-3", "t-9").await);
    assert!(started.elapsed() >= busy, "it waited for the lock");
    assert!(report.peer_removed, "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_terminate_whose_time_runs_out_in_the_queue_keeps_its_action() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.locks
        .claim("terminate", "i-9 t-other", Duration::from_secs(900))
        .await
        .expect("claim");
    bed.fleet.terminating("i-3");
    let event = action_event(Transition::Terminating, "i-3", "t-9");
    let outcome = bed
        .function
        .run(&event, Instant::now() + Duration::from_secs(60))
        .await;
    assert!(
        matches!(&outcome, Err(LifecycleError::TerminateQueued { holder, .. }) if holder.contains("i-9")),
        "{outcome:?}"
    );
    assert_eq!(bed.verdict("t-9"), None);
    assert!(bed.heartbeats() >= 1);
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
}

#[tokio::test(start_paused = true)]
async fn a_voter_whose_departure_would_cost_quorum_is_held() {
    // i-3 crashed but its instance is still in service: nothing can be removed first.
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().kill("i-3");
    bed.fleet.terminating("i-2");
    let outcome = bed.terminate("i-2", "t-9").await;
    assert_held(&bed, &outcome, "t-9", "1 of 2 voters would be healthy");
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-1"));
}

#[tokio::test(start_paused = true)]
async fn a_dead_departed_voter_is_removed_first_and_quorum_kept() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().kill("i-3");
    bed.fleet.gone("i-3");
    bed.fleet.terminating("i-2");
    let report = left(bed.terminate("i-2", "t-9").await);
    assert_eq!(report.removed_first, ["i-3"]);
    assert!(report.peer_removed, "{report:?}");
    assert_eq!(bed.cluster().peers(), ["i-1"]);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-1"));
    assert_eq!(bed.verdict("t-9"), Some(Verdict::Continue));
}

#[tokio::test(start_paused = true)]
async fn without_a_leader_the_terminate_is_held_not_continued() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().kill("i-2");
    bed.cluster().kill("i-3");
    // The leader steps down once its lease runs out without a majority.
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(bed.cluster().active(), None);
    bed.fleet.terminating("i-3");
    let outcome = bed.terminate("i-3", "t-9").await;
    assert_held(&bed, &outcome, "t-9", "no node of the cluster is active");
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
}

#[tokio::test(start_paused = true)]
async fn an_instance_whose_launch_never_completed_counts_as_an_abandoned_launch_once() {
    let bed = Bed::fresh(&["i-1", "i-2"]);
    bed.launched("i-1").await;
    bed.fleet.add(bed.cluster(), "i-2");
    // Its launch fails and is never run again: the hook's timeout abandons it.
    bed.node()
        .fail_on("unseal", "i-2", crate::testing::Failure::Unreachable, 1);
    bed.launch("i-2", "t-2").await.expect_err("unseal fails");
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), None);
    // Auto Scaling terminates the abandoned instance: its terminate counts it.
    bed.fleet.terminating("i-2");
    let report = left(bed.terminate("i-2", "t-9").await);
    assert!(report.completed_now, "{report:?}");
    assert_eq!(bed.metrics.0.value("LaunchAbandoned", None), Some(1.0));
    let again = bed.terminate("i-2", "t-9").await;
    assert!(
        matches!(again, Ok(Outcome::AlreadyCompleted { .. })),
        "{again:?}"
    );
    assert_eq!(
        bed.metrics.0.count("LaunchAbandoned"),
        1,
        "counted once, not per delivery"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_launched_and_leaves_is_not_counted_as_abandoned() {
    let bed = Bed::fresh(&["i-1", "i-2", "i-3"]);
    for instance in ["i-1", "i-2", "i-3"] {
        bed.launched(instance).await;
    }
    bed.fleet.terminating("i-3");
    left(bed.terminate("i-3", "t-9").await);
    assert_eq!(bed.metrics.0.count("LaunchAbandoned"), 0);
}
