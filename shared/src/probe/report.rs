//! What a probe saw, and the metrics it becomes.

use std::collections::BTreeSet;

use serde::Serialize;

use super::PrimaryReport;
use crate::{
    cluster::node::{AutopilotServer, AutopilotState, Health},
    ids::{ClusterName, InstanceId, NodeAddr},
    telemetry::{Metric, Unit},
};

/// One node as the probe saw it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// The instance (and, by convention, Raft node id).
    pub instance: InstanceId,
    /// The API address asked.
    pub addr: NodeAddr,
    /// Its `sys/health` answer, when it answered.
    pub health: Option<Health>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// Autopilot's view of it, when autopilot could be read and knows it.
    pub autopilot: Option<AutopilotServer>,
}

/// The cluster as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    /// Instances the Auto Scaling group has in service.
    pub in_service: u32,
    /// Nodes that answered `sys/health`.
    pub reachable: u32,
    /// Nodes that are initialised.
    pub initialized: u32,
    /// Nodes that are initialised and unsealed.
    pub unsealed: u32,
    /// A node answered as active.
    pub leader_present: bool,
    /// Autopilot could be read (a leader exists and the probe could log in).
    pub autopilot_readable: bool,
    /// Autopilot judges every server healthy.
    pub autopilot_healthy: Option<bool>,
    /// Voters autopilot judges healthy.
    pub healthy_voters: Option<u32>,
    /// Voters, healthy or not.
    pub voters: Option<u32>,
    /// How many voters may fail before quorum is lost.
    pub failure_tolerance: Option<u32>,
    /// Raft peers whose node id matches no in-service instance.
    pub peers_without_instance: Vec<String>,
    /// Seconds since the newest snapshot in the catalog was taken (unknown without a
    /// catalog, when it cannot be read, or when it holds none).
    pub last_good_backup_age_secs: Option<u64>,
}

/// What one probe found.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// The cluster.
    pub cluster: ClusterName,
    /// Every in-service node, sorted by instance id.
    pub nodes: Vec<NodeReport>,
    /// Cluster-wide figures.
    pub summary: ClusterSummary,
    /// Why autopilot could not be read, if it could not.
    pub autopilot_error: Option<String>,
    /// What the primary answered, when this probe watches one (the DR region's).
    pub primary: Option<PrimaryReport>,
}

pub(crate) fn summarise(
    nodes: &[NodeReport],
    autopilot: Option<&AutopilotState>,
) -> ClusterSummary {
    let count = |pred: &dyn Fn(&Health) -> bool| {
        nodes
            .iter()
            .filter(|n| n.health.as_ref().is_some_and(pred))
            .count() as u32
    };
    let instances: BTreeSet<&str> = nodes.iter().map(|n| n.instance.as_str()).collect();
    ClusterSummary {
        in_service: nodes.len() as u32,
        reachable: count(&|_| true),
        initialized: count(&|h| h.initialized),
        unsealed: count(&|h| h.initialized && !h.sealed),
        leader_present: count(&Health::is_active) > 0,
        autopilot_readable: autopilot.is_some(),
        autopilot_healthy: autopilot.map(|a| a.healthy),
        healthy_voters: autopilot.map(|a| {
            a.servers
                .values()
                .filter(|s| s.is_voter() && s.healthy)
                .count() as u32
        }),
        voters: autopilot.map(|a| a.servers.values().filter(|s| s.is_voter()).count() as u32),
        failure_tolerance: autopilot.map(|a| a.failure_tolerance),
        peers_without_instance: autopilot
            .map(|a| {
                a.servers
                    .keys()
                    .filter(|id| !instances.contains(id.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        last_good_backup_age_secs: None,
    }
}

/// The metrics a report becomes. Cluster-wide ones carry the `Cluster` dimension; per-node
/// ones `Cluster` and `Node`. A figure that is unknown (autopilot unreadable) is left out
/// rather than published as 0, so alarms on it treat missing data as breaching. The one
/// exception is `ClusterHealthy`, a verdict: 0 unless a leader is present and autopilot
/// judges every server healthy. A watched primary adds `PrimaryReachable`, under the
/// primary's own `Cluster` dimension.
pub fn metrics(report: &ClusterReport) -> Vec<Metric> {
    let cluster = report.cluster.as_str();
    let s = &report.summary;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let mut out = vec![
        Metric::cluster(cluster, "NodesInService", s.in_service as f64, Unit::Count),
        Metric::cluster(cluster, "NodesReachable", s.reachable as f64, Unit::Count),
        Metric::cluster(
            cluster,
            "NodesInitialized",
            s.initialized as f64,
            Unit::Count,
        ),
        Metric::cluster(cluster, "NodesUnsealed", s.unsealed as f64, Unit::Count),
        Metric::cluster(cluster, "LeaderPresent", flag(s.leader_present), Unit::None),
        Metric::cluster(
            cluster,
            "AutopilotReadable",
            flag(s.autopilot_readable),
            Unit::None,
        ),
        Metric::cluster(
            cluster,
            "ClusterHealthy",
            flag(s.leader_present && s.autopilot_healthy == Some(true)),
            Unit::None,
        ),
    ];
    let known = [
        ("HealthyVoters", s.healthy_voters),
        ("Voters", s.voters),
        ("FailureTolerance", s.failure_tolerance),
        (
            "RaftPeersWithoutInstance",
            s.autopilot_readable
                .then_some(s.peers_without_instance.len() as u32),
        ),
    ];
    out.extend(
        known.into_iter().filter_map(|(name, v)| {
            v.map(|v| Metric::cluster(cluster, name, v as f64, Unit::Count))
        }),
    );
    if let Some(age) = s.last_good_backup_age_secs {
        out.push(Metric::cluster(
            cluster,
            "LastGoodBackupAgeSeconds",
            age as f64,
            Unit::Seconds,
        ));
    }
    out.extend(report.primary.as_ref().map(PrimaryReport::metric));
    for node in &report.nodes {
        let id = node.instance.as_str();
        out.push(Metric::node(
            cluster,
            id,
            "NodeReachable",
            flag(node.health.is_some()),
            Unit::None,
        ));
        if let Some(h) = &node.health {
            out.push(Metric::node(
                cluster,
                id,
                "NodeInitialized",
                flag(h.initialized),
                Unit::None,
            ));
            out.push(Metric::node(
                cluster,
                id,
                "NodeSealed",
                flag(h.sealed),
                Unit::None,
            ));
            out.push(Metric::node(
                cluster,
                id,
                "NodeActive",
                flag(h.is_active()),
                Unit::None,
            ));
        }
        if let Some(a) = &node.autopilot {
            out.push(Metric::node(
                cluster,
                id,
                "NodeHealthy",
                flag(a.healthy),
                Unit::None,
            ));
            out.push(Metric::node(
                cluster,
                id,
                "NodeVoter",
                flag(a.is_voter()),
                Unit::None,
            ));
            if let Some(contact) = a.last_contact {
                out.push(Metric::node(
                    cluster,
                    id,
                    "NodeLastContact",
                    contact.as_secs_f64() * 1000.0,
                    Unit::Milliseconds,
                ));
            }
        }
    }
    out
}
