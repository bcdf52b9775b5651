//! The primary cluster, watched from the DR region: health-probe there asks the
//! primary's `sys/health` once per run and publishes `PrimaryReachable`, which the alarm
//! that starts dr-failover watches.
//!
//! The primary is asked through the node port, not a port of its own: its API is one
//! more Vault address, reached with the client the probe already holds (the same CA
//! bundle, request timeout and retries), as dr-failover's `PrimaryAt` does. A unit test
//! puts a fake node at the primary's address in the `FakeCluster` it already has, and
//! leaves it out of the fleet.

use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use crate::{
    cluster::node::{Health, NodeApi},
    config::PrimaryCluster,
    error_chain,
    ids::{ClusterName, NodeAddr},
    telemetry::{Metric, Unit},
};

/// The primary to watch, and how long one probe of it may take.
#[derive(Debug, Clone)]
pub struct PrimaryWatch {
    /// `PRIMARY_CLUSTER` and `PRIMARY_API_ADDR`.
    pub primary: PrimaryCluster,
    /// The longest the probe waits for the primary's answer (`VAULT_REQUEST_TIMEOUT_SECS`):
    /// one request's time, so the client's retries after a refused connection stop there
    /// and the primary never holds the probe longer than its own nodes do.
    pub timeout: Duration,
}

/// What the primary answered.
#[derive(Debug, Clone, Serialize)]
pub struct PrimaryReport {
    /// The primary's cluster name, the `Cluster` dimension of `PrimaryReachable`.
    pub cluster: ClusterName,
    /// The address asked.
    pub addr: NodeAddr,
    /// It answered as an initialised, unsealed active or standby node (200, 429, 473).
    pub reachable: bool,
    /// Its `sys/health` answer, when it answered (a sealed node's too).
    pub health: Option<Health>,
    /// Why it did not answer: the error chain, or the timeout.
    pub error: Option<String>,
}

impl PrimaryWatch {
    /// Asks the primary's `sys/health` once, within [`PrimaryWatch::timeout`]. Never
    /// fails: no answer, or an answer from a node that does not serve, is `reachable`
    /// false with what was seen.
    pub(crate) async fn probe(&self, api: &impl NodeApi) -> PrimaryReport {
        let addr = &self.primary.api;
        let (health, error) = match tokio::time::timeout(self.timeout, api.health(addr)).await {
            Ok(Ok(health)) => (Some(health), None),
            Ok(Err(e)) => (None, Some(error_chain(&e))),
            Err(_) => (
                None,
                Some(format!(
                    "{addr} did not answer sys/health within {:?}",
                    self.timeout
                )),
            ),
        };
        let reachable = health.as_ref().is_some_and(Health::is_serving);
        let code = health.as_ref().map(|h| h.code);
        if reachable {
            info!(primary = %self.primary.name, addr = %addr, code, "primary reachable");
        } else {
            warn!(primary = %self.primary.name, addr = %addr, code, error = error.as_deref(), "primary unreachable");
        }
        PrimaryReport {
            cluster: self.primary.name.clone(),
            addr: addr.clone(),
            reachable,
            health,
            error,
        }
    }
}

impl PrimaryReport {
    /// `PrimaryReachable` (1 or 0) with the dimension `Cluster=<PRIMARY_CLUSTER>`.
    pub fn metric(&self) -> Metric {
        let value = if self.reachable { 1.0 } else { 0.0 };
        Metric::cluster(self.cluster.as_str(), "PrimaryReachable", value, Unit::None)
    }
}
