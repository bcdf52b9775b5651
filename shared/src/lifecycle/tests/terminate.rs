//! Terminate: a leaving leader steps down first, the last voters wait for a joining
//! replacement, nothing joining means no wait, and without a leader the peer is left to
//! reconcile. The action is completed CONTINUE every time.

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
            stepped_down: true,
            peer_removed: true,
            waited_for_replacement: None,
            completed_now: true,
            left_to_reconcile: None,
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
async fn without_a_leader_the_peer_is_left_to_reconcile() {
    let bed = Bed::running(&["i-1", "i-2", "i-3"]);
    bed.cluster().kill("i-2");
    bed.cluster().kill("i-3");
    // The leader steps down once its lease runs out without a majority.
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(bed.cluster().active(), None);
    bed.fleet.terminating("i-3");
    let report = left(bed.terminate("i-3", "t-9").await);
    assert!(
        report
            .left_to_reconcile
            .as_deref()
            .is_some_and(|r| r.contains("no node of the cluster is active")),
        "{report:?}"
    );
    assert!(!report.peer_removed);
    assert_eq!(bed.cluster().peers(), ["i-1", "i-2", "i-3"]);
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
