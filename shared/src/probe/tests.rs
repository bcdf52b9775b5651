use serde_json::json;

use super::*;
use crate::{
    config::{AuthSettings, PrimaryCluster},
    testing::{
        capture_logs, FailingNode, Failure, FakeCluster, FakeFleet, FakeMetrics, FakeParameters,
    },
};

const NODES: [&str; 3] = ["i-1", "i-2", "i-3"];

fn probe<A: NodeApi>(
    cluster: A,
    fleet: FakeFleet,
) -> HealthProbe<FakeFleet, A, FakeParameters, FakeMetrics> {
    let auth = AuthSettings::AppRole {
        mount: "approle".into(),
        role_id_parameter: "/r".into(),
        secret_id_parameter: "/s".into(),
    };
    HealthProbe {
        cluster: "prod".parse().expect("name"),
        fleet,
        api: cluster,
        login: VaultLogin::new(
            auth,
            FakeParameters::with(&[("/r", "role-canary"), ("/s", "secret-canary")]),
        ),
        metrics: FakeMetrics::default(),
        catalog: None,
        primary: None,
    }
}

#[tokio::test]
async fn a_healthy_cluster_reports_every_node_and_its_tolerance() {
    let cluster = FakeCluster::healthy(&NODES);
    let fleet = FakeFleet::of(&cluster, &NODES);
    let probe = probe(cluster, fleet);
    let report = probe.run().await.expect("probe");
    let m = |name, node| probe.metrics.value(name, node);
    assert_eq!(m("NodesInService", None), Some(3.0));
    assert_eq!(m("NodesUnsealed", None), Some(3.0));
    assert_eq!(m("HealthyVoters", None), Some(3.0));
    assert_eq!(m("FailureTolerance", None), Some(1.0));
    assert_eq!(m("LeaderPresent", None), Some(1.0));
    assert_eq!(m("ClusterHealthy", None), Some(1.0));
    assert_eq!(m("NodeActive", Some("i-1")), Some(1.0));
    assert_eq!(m("NodeActive", Some("i-2")), Some(0.0));
    assert_eq!(m("NodeLastContact", Some("i-3")), Some(5.0));
    assert_eq!(report.summary.peers_without_instance, Vec::<String>::new());
}

#[tokio::test]
async fn a_sealed_and_a_dead_node_are_metrics_not_failures() {
    let cluster = FakeCluster::healthy(&NODES);
    cluster.seal("i-2");
    cluster.kill("i-3");
    let fleet = FakeFleet::of(&cluster, &NODES);
    let probe = probe(cluster, fleet);
    let report = probe
        .run()
        .await
        .expect("a dead node is not a failed probe");
    let m = |name, node| probe.metrics.value(name, node);
    assert_eq!(m("NodesReachable", None), Some(2.0));
    assert_eq!(m("NodesUnsealed", None), Some(1.0));
    assert_eq!(m("NodeReachable", Some("i-3")), Some(0.0));
    assert_eq!(
        m("NodeSealed", Some("i-3")),
        None,
        "a dead node's seal state is unknown, not 0"
    );
    assert_eq!(m("NodeSealed", Some("i-2")), Some(1.0));
    assert_eq!(m("NodeHealthy", Some("i-2")), Some(0.0));
    assert_eq!(m("ClusterHealthy", None), Some(0.0));
    assert!(
        report.nodes[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("fake node is down")),
        "{:?}",
        report.nodes[2]
    );
}

#[tokio::test]
async fn without_a_leader_autopilot_figures_are_left_out_not_zero() {
    let cluster = FakeCluster::healthy(&NODES);
    for node in NODES {
        cluster.kill(node);
    }
    let fleet = FakeFleet::of(&cluster, &NODES);
    let probe = probe(cluster, fleet);
    let report = probe.run().await.expect("probe");
    assert_eq!(probe.metrics.value("LeaderPresent", None), Some(0.0));
    assert_eq!(probe.metrics.value("AutopilotReadable", None), Some(0.0));
    assert_eq!(probe.metrics.value("FailureTolerance", None), None);
    assert_eq!(
        report.autopilot_error.as_deref(),
        Some("no unsealed node to ask")
    );
    assert_eq!(
        probe.api.logins(),
        0,
        "no login is tried without a node to ask"
    );
}

#[tokio::test]
async fn raft_peers_without_an_instance_are_named() {
    let cluster = FakeCluster::healthy(&NODES);
    let fleet = FakeFleet::of(&cluster, &NODES[..2]);
    let probe = probe(cluster, fleet);
    let report = probe.run().await.expect("probe");
    assert_eq!(
        report.summary.peers_without_instance,
        vec!["i-3".to_owned()]
    );
    assert_eq!(
        probe.metrics.value("RaftPeersWithoutInstance", None),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_refused_login_publishes_health_then_fails_without_leaking() {
    let logs = capture_logs();
    let cluster = FakeCluster::healthy(&NODES).refusing_logins();
    let fleet = FakeFleet::of(&cluster, &NODES);
    let probe = probe(cluster, fleet);
    let err = probe.run().await.expect_err("misconfigured login");
    assert!(matches!(err, ProbeError::Login(_)), "{err:?}");
    assert_eq!(
        probe.metrics.value("NodesUnsealed", None),
        Some(3.0),
        "health metrics still published"
    );
    assert_eq!(probe.metrics.value("AutopilotReadable", None), Some(0.0));
    for text in [logs.contents(), error_chain(&err), format!("{err:?}")] {
        assert!(
            !text.contains("role-canary") && !text.contains("secret-canary"),
            "credential leaked: {text}"
        );
    }
}

#[tokio::test]
async fn a_policy_without_autopilot_is_named_after_one_fresh_login() {
    let cluster = FailingNode::new(FakeCluster::healthy(&NODES));
    cluster.fail("autopilot_state", Failure::Status(403), usize::MAX);
    let fleet = FakeFleet::of(&cluster.inner, &NODES);
    let probe = probe(cluster, fleet);
    let err = probe.run().await.expect_err("denied");
    assert!(matches!(err, ProbeError::Denied(_)), "{err:?}");
    let text = crate::error_chain(&err);
    assert!(
        text.contains("autopilot_state") && text.contains("403"),
        "{text}"
    );
    assert_eq!(
        probe.api.inner.logins(),
        2,
        "one fresh login, not one per retry forever"
    );
    assert_eq!(
        probe.metrics.value("NodesUnsealed", None),
        Some(3.0),
        "health still published"
    );
    let mapped = crate::lambda::FunctionError::from(err);
    assert_eq!(mapped.error_type, "Permanent.PolicyDenied");
}

#[tokio::test]
async fn an_unavailable_fleet_fails_and_publishes_nothing() {
    let cluster = FakeCluster::healthy(&NODES);
    let fleet = FakeFleet::of(&cluster, &NODES);
    fleet
        .fail_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let probe = probe(cluster, fleet);
    assert!(matches!(probe.run().await, Err(ProbeError::Fleet(_))));
    assert!(probe.metrics.published.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn the_handler_refuses_a_misdirected_event_before_probing() {
    let cluster = FakeCluster::healthy(&NODES);
    let fleet = FakeFleet::of(&cluster, &NODES);
    let probe = probe(cluster, fleet);
    let err = probe
        .handle(&json!({"snapshot": "latest"}))
        .await
        .expect_err("not a probe event");
    assert_eq!(err.error_type, "Permanent.UnrecognisedEvent");
    assert!(
        err.message
            .contains("health-probe does not take an object with keys [snapshot]"),
        "{}",
        err.message
    );
    assert!(
        probe.metrics.published.lock().expect("lock").is_empty(),
        "nothing was probed"
    );
    let report = probe.handle(&json!({})).await.expect("{} probes");
    assert_eq!(report.nodes.len(), 3);
}

/// The standby's fake also answers for the primary, at `https://primary.test:8200`: a
/// node that no fleet lists and no Raft peer names, initialised and unsealed, so it
/// answers as a standby (429) of a cluster of its own.
fn standby_and_primary() -> FakeCluster {
    let cluster = FakeCluster::healthy(&NODES);
    cluster.add_node("primary");
    if let Some(node) = cluster.state().nodes.get_mut("primary") {
        node.initialised = true;
    }
    cluster
}

/// A probe of the standby `prod` that watches the primary `prod-primary`.
fn watching_primary(
    cluster: FakeCluster,
) -> HealthProbe<FakeFleet, FakeCluster, FakeParameters, FakeMetrics> {
    let fleet = FakeFleet::of(&cluster, &NODES);
    let api = cluster.addr("primary");
    let mut probe = probe(cluster, fleet);
    probe.primary = Some(PrimaryWatch {
        primary: PrimaryCluster {
            name: "prod-primary".parse().expect("name"),
            api,
        },
        timeout: std::time::Duration::from_secs(5),
    });
    probe
}

/// The `PrimaryReachable` data points published, with their `Cluster` dimension.
fn primary_reachable(metrics: &FakeMetrics) -> Vec<(f64, Vec<(&'static str, String)>)> {
    metrics
        .published
        .lock()
        .expect("lock")
        .iter()
        .filter(|m| m.name == "PrimaryReachable")
        .map(|m| (m.value, m.dimensions.clone()))
        .collect()
}

fn primary_dimension() -> Vec<(&'static str, String)> {
    vec![("Cluster", "prod-primary".to_owned())]
}

#[tokio::test]
async fn a_serving_primary_is_reachable_under_its_own_cluster_dimension() {
    let probe = watching_primary(standby_and_primary());
    let report = probe.run().await.expect("probe");
    assert_eq!(
        primary_reachable(&probe.metrics),
        vec![(1.0, primary_dimension())]
    );
    let primary = report.primary.expect("the primary is reported");
    assert!(primary.reachable);
    assert_eq!(primary.health.map(|h| h.code), Some(429));
    assert_eq!(primary.addr.as_str(), "https://primary.test:8200");
    // The primary is not one of the standby's nodes.
    assert_eq!(report.nodes.len(), 3);
    assert_eq!(probe.metrics.value("NodesInService", None), Some(3.0));
    assert_eq!(
        probe.api.calls("primary"),
        0,
        "nothing but sys/health asked of it"
    );
}

#[tokio::test]
async fn a_down_primary_is_unreachable_and_the_probe_still_succeeds() {
    let cluster = standby_and_primary();
    cluster.kill("primary");
    let probe = watching_primary(cluster);
    let report = probe
        .run()
        .await
        .expect("a dead primary is a metric, not a failure");
    assert_eq!(
        primary_reachable(&probe.metrics),
        vec![(0.0, primary_dimension())]
    );
    let primary = report.primary.expect("the primary is reported");
    assert!(!primary.reachable && primary.health.is_none());
    assert!(
        primary
            .error
            .as_deref()
            .is_some_and(|e| e.contains("primary.test") && e.contains("fake node is down")),
        "{primary:?}"
    );
    assert_eq!(
        probe.metrics.value("ClusterHealthy", None),
        Some(1.0),
        "the standby's own metrics are unchanged"
    );
}

#[tokio::test]
async fn a_sealed_or_uninitialised_primary_is_unreachable_with_its_answer() {
    for (state, code) in [("sealed", 503), ("uninitialised", 501)] {
        let cluster = standby_and_primary();
        if let Some(node) = cluster.state().nodes.get_mut("primary") {
            match state {
                "sealed" => node.sealed = true,
                _ => node.initialised = false,
            }
        }
        let probe = watching_primary(cluster);
        let report = probe.run().await.expect("probe");
        assert_eq!(
            primary_reachable(&probe.metrics),
            vec![(0.0, primary_dimension())],
            "{state}"
        );
        let primary = report.primary.expect("the primary is reported");
        assert_eq!(primary.health.map(|h| h.code), Some(code), "{state}");
        assert_eq!(primary.error, None, "it answered: {state}");
    }
}

#[tokio::test]
async fn without_a_primary_nothing_is_said_of_one() {
    let cluster = standby_and_primary();
    let fleet = FakeFleet::of(&cluster, &NODES);
    let probe = probe(cluster, fleet);
    let report = probe.run().await.expect("probe");
    assert_eq!(probe.metrics.count("PrimaryReachable"), 0);
    assert!(report.primary.is_none());
    assert_eq!(
        serde_json::to_value(&report).expect("json")["primary"],
        serde_json::Value::Null
    );
}
