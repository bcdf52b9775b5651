//! health-probe's logic: ask every in-service node for its health, ask autopilot for the
//! cluster's, and turn both into CloudWatch metrics and a JSON report. A node that does
//! not answer is a metric (`NodeReachable` 0), never a failed invocation. In the DR
//! region it also asks the primary's API (see [`primary`]).

mod assembly;
mod config;
mod primary;
mod report;

use futures::future::join_all;
use tracing::{info, warn};

use self::report::summarise;
pub use self::{
    assembly::{assemble, from_sdk, DeployedProbe},
    config::ProbeConfig,
    primary::{PrimaryReport, PrimaryWatch},
    report::{metrics, ClusterReport, ClusterSummary, NodeReport},
};
use crate::{
    cluster::{
        auth::{LoginError, VaultLogin},
        node::{AutopilotState, Health, NodeApi, VaultError},
        ports::{Fleet, FleetError, FleetNode, ParameterStore},
    },
    error_chain,
    errors::Classify,
    ids::ClusterName,
    lambda::{FunctionError, Handler, Invocation},
    snapshots::catalog::Catalog,
    telemetry::{MetricsError, MetricsSink},
};

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
    Denied(#[source] VaultError),
}

impl Classify for ProbeError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Fleet(e) => e.retry_helps(),
            Self::Metrics(e) => e.retry_helps(),
            Self::Login(_) | Self::Denied(_) => false,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Fleet(e) => e.name(),
            Self::Metrics(e) => e.name(),
            Self::Login(_) => "LoginRefused",
            Self::Denied(_) => "PolicyDenied",
        }
    }
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
    /// The primary, when this probe runs in the DR region (`PRIMARY_API_ADDR` set): asked
    /// once per run, beside the nodes, and published as `PrimaryReachable`.
    pub primary: Option<PrimaryWatch>,
}

impl<F: Fleet, A: NodeApi, P: ParameterStore, M: MetricsSink> HealthProbe<F, A, P, M> {
    /// Probes every node, publishes the metrics, returns the report. Fails only when the
    /// fleet cannot be listed, the metrics cannot be published, or the probe's own login
    /// is misconfigured (after publishing what it could).
    pub async fn run(&self) -> Result<ClusterReport, ProbeError> {
        let fleet = self.fleet.in_service().await?;
        let (healths, primary) = tokio::join!(
            join_all(fleet.iter().map(|node| self.api.health(&node.addr))),
            self.probe_primary(),
        );
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
            primary,
        };
        info!(
            cluster = %report.cluster,
            in_service = report.summary.in_service,
            reachable = report.summary.reachable,
            unsealed = report.summary.unsealed,
            leader_present = report.summary.leader_present,
            failure_tolerance = ?report.summary.failure_tolerance,
            primary_reachable = ?report.primary.as_ref().map(|p| p.reachable),
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

impl<F, A: NodeApi, P, M> HealthProbe<F, A, P, M> {
    /// The primary's answer, when one is watched.
    async fn probe_primary(&self) -> Option<PrimaryReport> {
        match &self.primary {
            Some(watch) => Some(watch.probe(&self.api).await),
            None => None,
        }
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
    Denied(VaultError),
    Vault(String),
}

impl<F: Fleet, A: NodeApi, P: ParameterStore, M: MetricsSink> HealthProbe<F, A, P, M> {
    /// The Lambda handler: checks the event is a schedule tick or `{}`, then probes.
    pub async fn handle(&self, event: &serde_json::Value) -> Result<ClusterReport, FunctionError> {
        crate::events::ProbeRequest::parse(event)?;
        Ok(self.run().await?)
    }
}

#[async_trait::async_trait]
impl<F: Fleet, A: NodeApi, P: ParameterStore, M: MetricsSink> Handler for HealthProbe<F, A, P, M> {
    type Output = ClusterReport;
    async fn handle(&self, invocation: Invocation) -> Result<ClusterReport, FunctionError> {
        HealthProbe::handle(self, &invocation.payload).await
    }
}

#[cfg(test)]
mod tests;
