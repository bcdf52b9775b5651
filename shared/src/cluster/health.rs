//! health-probe's logic: ask every in-service node for its health, ask autopilot for the
//! cluster's, and turn both into CloudWatch metrics and a JSON report. A node that does
//! not answer is a metric (`NodeReachable` 0), never a failed invocation.

use std::collections::BTreeSet;

use futures::future::join_all;
use serde::Serialize;
use tracing::{info, warn};

use super::{
    auth::{LoginError, VaultLogin},
    node::NodeApi,
    ports::{Fleet, FleetError, FleetNode, ParameterStore},
};
use crate::{
    error_chain,
    ids::{ClusterName, InstanceId, NodeAddr},
    snapshots::catalog::Catalog,
    telemetry::{Metric, MetricsError, MetricsSink, Unit},
    vault::{AutopilotServer, AutopilotState, Health},
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
}

/// Why a probe failed as a whole (a node's failure is in the report, not here).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The fleet could not be listed, so nothing was probed.
    #[error("nothing was probed")]
    Fleet(#[from] FleetError),
    /// The metrics could not be published; a one-line summary of the probe is in the log.
    #[error("the probe ran but its metrics were not published")]
    Metrics(#[from] MetricsError),
    /// The probe's own Vault login is misconfigured. Health metrics were published;
    /// autopilot metrics were not, until the login is fixed.
    #[error("health metrics were published, autopilot could not be read")]
    Login(#[source] LoginError),
    /// Vault refused autopilot's state to a fresh token: the probe's policy lacks
    /// `sys/storage/raft/autopilot/state`. Health metrics were published.
    #[error("health metrics were published; vault denied the probe autopilot's state, so its policy lacks read on sys/storage/raft/autopilot/state")]
    Denied(#[source] crate::vault::VaultError),
}

/// health-probe: one cluster, its fleet, its nodes' API, the probe's login and a sink.
pub struct HealthProbe<F, A, P, M> {
    /// The cluster probed.
    pub cluster: ClusterName,
    /// Its Auto Scaling group.
    pub fleet: F,
    /// Its nodes' API.
    pub api: A,
    /// The probe's own login, for autopilot.
    pub login: VaultLogin<P>,
    /// Where metrics go.
    pub metrics: M,
    /// The snapshot catalog, when `STATE_TABLE` is set: the probe publishes the age of
    /// the newest snapshot every minute, so a backup that stopped is seen.
    pub catalog: Option<Box<dyn Catalog>>,
}

impl<F: Fleet, A: NodeApi, P: ParameterStore, M: MetricsSink> HealthProbe<F, A, P, M> {
    /// Probes every node, publishes the metrics, returns the report. Fails only when the
    /// fleet cannot be listed, the metrics cannot be published, or the probe's own login
    /// is misconfigured (after publishing what it could).
    pub async fn run(&self) -> Result<ClusterReport, ProbeError> {
        let fleet = self.fleet.in_service().await?;
        let healths = join_all(fleet.iter().map(|node| self.api.health(&node.addr))).await;
        let mut nodes: Vec<NodeReport> = fleet
            .into_iter()
            .zip(healths)
            .map(|(FleetNode { instance, addr }, answer)| match answer {
                Ok(health) => NodeReport { instance, addr, health: Some(health), error: None, autopilot: None },
                Err(e) => {
                    warn!(node = %instance, addr = %addr, error = %error_chain(&e), "node did not answer");
                    NodeReport { instance, addr, health: None, error: Some(error_chain(&e)), autopilot: None }
                }
            })
            .collect();

        let (autopilot, autopilot_error, misconfigured) = match self.read_autopilot(&nodes).await {
            Ok(state) => (state, None, None),
            Err(AutopilotUnread::NoLeader) => {
                (None, Some("no unsealed node to ask".to_owned()), None)
            }
            Err(AutopilotUnread::Login(e)) if e.is_configuration() => {
                (None, Some(error_chain(&e)), Some(ProbeError::Login(e)))
            }
            Err(AutopilotUnread::Denied(e)) => {
                (None, Some(error_chain(&e)), Some(ProbeError::Denied(e)))
            }
            Err(AutopilotUnread::Login(e)) => (None, Some(error_chain(&e)), None),
            Err(AutopilotUnread::Vault(text)) => (None, Some(text), None),
        };
        if let Some(state) = &autopilot {
            for node in &mut nodes {
                node.autopilot = state.servers.get(node.instance.as_str()).cloned();
            }
        }
        let mut summary = summarise(&nodes, autopilot.as_ref());
        summary.last_good_backup_age_secs = self.backup_age().await;
        let report = ClusterReport {
            cluster: self.cluster.clone(),
            nodes,
            summary,
            autopilot_error,
        };
        info!(
            cluster = %report.cluster,
            in_service = report.summary.in_service,
            reachable = report.summary.reachable,
            unsealed = report.summary.unsealed,
            leader_present = report.summary.leader_present,
            failure_tolerance = ?report.summary.failure_tolerance,
            "probed cluster"
        );
        self.metrics.publish(&metrics(&report)).await?;
        match misconfigured {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Autopilot's state, asked of the active node (else any unsealed node, which
    /// forwards to the active one). A 403 to a cached token means it was revoked: log in
    /// again once.
    async fn read_autopilot(
        &self,
        nodes: &[NodeReport],
    ) -> Result<Option<AutopilotState>, AutopilotUnread> {
        let answering = |n: &&NodeReport| {
            n.health
                .as_ref()
                .is_some_and(|h| h.initialized && !h.sealed)
        };
        let Some(node) = nodes
            .iter()
            .filter(answering)
            .find(|n| n.health.as_ref().is_some_and(Health::is_active))
            .or_else(|| nodes.iter().find(answering))
        else {
            return Err(AutopilotUnread::NoLeader);
        };
        for attempt in 1..=2 {
            let token = self
                .login
                .token(&self.api, &node.addr)
                .await
                .map_err(AutopilotUnread::Login)?;
            match self.api.autopilot_state(&node.addr, &token).await {
                Ok(state) => return Ok(Some(state)),
                Err(e) if e.status() == Some(403) => {
                    if attempt == 2 {
                        // A fresh token refused too: the probe's policy lacks the path.
                        return Err(AutopilotUnread::Denied(e));
                    }
                    self.login.forget()
                }
                Err(e) => return Err(AutopilotUnread::Vault(error_chain(&e))),
            }
        }
        Ok(None)
    }
}

impl<F, A, P, M> HealthProbe<F, A, P, M> {
    /// The newest snapshot's age; `None` (no figure, which the backup-age alarm treats
    /// as breaching) when there is no catalog, no snapshot, or the catalog cannot be read.
    async fn backup_age(&self) -> Option<u64> {
        let catalog = self.catalog.as_ref()?;
        match catalog.newest(&self.cluster).await {
            Ok(Some(newest)) => {
                Some((chrono::Utc::now() - newest.taken_at).num_seconds().max(0) as u64)
            }
            Ok(None) => None,
            Err(e) => {
                warn!(error = %error_chain(&e), "the snapshot catalog could not be read; no backup age published");
                None
            }
        }
    }
}

enum AutopilotUnread {
    NoLeader,
    Login(LoginError),
    Denied(crate::vault::VaultError),
    Vault(String),
}

fn summarise(nodes: &[NodeReport], autopilot: Option<&AutopilotState>) -> ClusterSummary {
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
/// judges every server healthy.
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

impl<F: Fleet, A: NodeApi, P: ParameterStore, M: MetricsSink> HealthProbe<F, A, P, M> {
    /// The Lambda handler: checks the event is a schedule tick or `{}`, then probes.
    pub async fn handle(
        &self,
        event: &serde_json::Value,
    ) -> Result<ClusterReport, crate::lambda::FunctionError> {
        crate::events::ProbeRequest::parse(event)?;
        Ok(self.run().await?)
    }
}

#[cfg(test)]
mod tests;
