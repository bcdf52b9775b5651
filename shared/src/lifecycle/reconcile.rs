//! reconcile: converge the cluster with the group. Unseal sealed in-service nodes, and
//! remove at most one Raft peer per run that maps to no member instance and that
//! autopilot has judged unhealthy for longer than the grace period, never when the
//! removal would cost quorum. Report (metric `InServiceNotPeer`) in-service instances
//! that are not Raft peers. Every action and every refusal is in the report.

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{vault_step, LifecycleError, NodeLifecycle};
use crate::{
    cluster::node::NodeApi,
    cluster::ports::{FleetNode, ParameterStore},
    error_chain,
    ids::InstanceId,
    telemetry::{Metric, Unit},
    vault::{AutopilotState, RaftServer},
};

/// What reconcile did and did not do.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReconcileReport {
    /// Nodes unsealed now.
    pub unsealed: Vec<InstanceId>,
    /// The peer removed now, if any.
    pub removed: Option<String>,
    /// Peers without an instance that are left for now, each with the reason.
    pub kept: Vec<String>,
    /// Things reconcile would have done and refused, or could not do, with the reason.
    pub refused: Vec<String>,
    /// In-service instances that are not Raft peers: serving nothing, and each one an
    /// instance the group counts on (a launch that completed without its node joining).
    pub not_peers: Vec<InstanceId>,
    /// Share parameters copied to the DR region now (names, never values).
    pub dr_shares_copied: Vec<String>,
    /// AppRole credential parameters copied to the DR region now (names, never values).
    pub dr_approles_copied: Vec<String>,
    /// The DR region's dr-failover has this cluster fenced and no failback is asked for:
    /// sealed nodes were left sealed (an unsealed primary would take writes that the
    /// failback then replaces with the DR cluster's data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fenced: Option<crate::failover::record::Fence>,
}

/// What to do about the peers that map to no member instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartedPlan {
    /// The one peer to remove this run.
    pub remove: Option<String>,
    /// Peers left alone, with the reason.
    pub kept: Vec<String>,
    /// Removals refused, with the reason.
    pub refused: Vec<String>,
}

/// Decides which departed peer to remove: unhealthy for at least `grace` (by autopilot's
/// `stable_since`), at most one, and only if the healthy voters left still make a
/// quorum of the voters left.
pub fn plan_departed_removal(
    peers: &[RaftServer],
    autopilot: &AutopilotState,
    members: &BTreeSet<String>,
    now: DateTime<Utc>,
    grace: Duration,
) -> DepartedPlan {
    let mut plan = DepartedPlan {
        remove: None,
        kept: Vec::new(),
        refused: Vec::new(),
    };
    for peer in peers.iter().filter(|p| !members.contains(&p.node_id)) {
        let id = &peer.node_id;
        let Some(server) = autopilot.servers.get(id) else {
            plan.kept
                .push(format!("{id}: autopilot does not report it yet"));
            continue;
        };
        if server.healthy {
            plan.kept.push(format!("{id}: no member instance, but autopilot judges it healthy (still answering); not removed"));
            continue;
        }
        let unhealthy_for = server
            .stable_since
            .and_then(|since| (now - since).to_std().ok())
            .or(server.last_contact);
        let Some(unhealthy_for) = unhealthy_for.filter(|d| *d >= grace) else {
            plan.kept.push(format!(
                "{id}: unhealthy for {}s, under the {}s grace",
                unhealthy_for.map_or(0, |d| d.as_secs()),
                grace.as_secs()
            ));
            continue;
        };
        if plan.remove.is_some() {
            plan.kept
                .push(format!("{id}: one removal per run; next run"));
            continue;
        }
        // Voting as Raft has it (autopilot's status lags after an election), health as
        // autopilot judges it.
        let voters_after: Vec<&RaftServer> = peers
            .iter()
            .filter(|p| p.node_id != *id && p.voter)
            .collect();
        let healthy_after = voters_after
            .iter()
            .filter(|p| autopilot.servers.get(&p.node_id).is_some_and(|s| s.healthy))
            .count();
        let voters_after = voters_after.len();
        let quorum_after = voters_after / 2 + 1;
        if healthy_after < quorum_after {
            plan.refused.push(format!(
                "{id}: removing it would leave {healthy_after} healthy of {voters_after} voters, under a quorum of {quorum_after}"
            ));
            continue;
        }
        info!(peer = %id, unhealthy_secs = unhealthy_for.as_secs(), "departed peer past its grace");
        plan.remove = Some(id.clone());
    }
    plan
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// One reconcile pass.
    pub async fn reconcile(&self, deadline: Instant) -> Result<ReconcileReport, LifecycleError> {
        let mut report = ReconcileReport::default();
        match self.mirror_shares_or_warn().await {
            Ok(copied) => report.dr_shares_copied = copied,
            Err(e) => report
                .refused
                .push(format!("copying the shares to the DR region: {e}")),
        }
        match self.mirror_approles_to_dr().await {
            Ok(copied) => report.dr_approles_copied = copied,
            Err(e) => {
                let text = error_chain(&e);
                warn!(error = %text, "AppRole credentials not copied to the DR region; the next reconcile tries again");
                report.refused.push(format!(
                    "copying the AppRole credentials to the DR region: {text}"
                ));
            }
        }
        if let Some(records) = &self.fence {
            report.fenced = crate::failover::record::fence_of(records.as_ref())
                .await
                .filter(|fence| !fence.failback_started);
        }
        let in_service = self.fleet.in_service().await?;
        let healths = join_all(in_service.iter().map(|n| self.vault.health(&n.addr))).await;
        for (node, health) in in_service.iter().zip(healths) {
            match health {
                Ok(h) if h.initialized && h.sealed && report.fenced.is_some() => {
                    warn!(instance = %node.instance, "the DR region failed this cluster over and fenced it: the node is left sealed until a failback is asked for");
                    report.refused.push(format!(
                        "unseal {}: the cluster is fenced by the DR region's failover; left sealed until a failback is asked for",
                        node.instance
                    ));
                }
                Ok(h) if h.initialized && h.sealed => {
                    match self.ensure_unsealed(&node.addr, deadline).await {
                        Ok(_) => {
                            info!(instance = %node.instance, "unsealed a sealed in-service node");
                            report.unsealed.push(node.instance.clone());
                        }
                        Err(e) => {
                            warn!(instance = %node.instance, error = %error_chain(&e), "cannot unseal");
                            report.refused.push(format!(
                                "unseal {}: {}",
                                node.instance,
                                error_chain(&e)
                            ));
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => report
                    .refused
                    .push(format!("{}: {}", node.instance, error_chain(&e))),
            }
        }
        let (active, token) = match self.active_with_token(None).await {
            Ok(found) => found,
            Err(e @ LifecycleError::NoActiveNode { .. }) => {
                warn!(error = %e, "no active node; departed peers cannot be removed");
                report.refused.push(format!("removing departed peers: {e}"));
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let peers = self.raft_peers(&active, &token).await?;
        let autopilot = self
            .vault
            .autopilot_state(&active.addr, &token)
            .await
            .map_err(vault_step("reading autopilot state"))?;
        self.report_not_peers(&in_service, &peers, &mut report)
            .await;
        let members = self.member_ids().await?;
        let plan = plan_departed_removal(
            &peers,
            &autopilot,
            &members,
            Utc::now(),
            self.settings.departed_peer_grace,
        );
        for kept in &plan.kept {
            info!(reason = %kept, "departed peer kept for now");
        }
        for refused in &plan.refused {
            warn!(reason = %refused, "departed peer removal refused");
        }
        report.kept = plan.kept;
        report.refused.extend(plan.refused);
        if let Some(id) = plan.remove {
            self.vault
                .remove_peer(&active.addr, &token, &id)
                .await
                .map_err(vault_step(format!("removing raft peer {id}")))?;
            info!(peer = %id, "removed departed raft peer");
            report.removed = Some(id);
        }
        Ok(report)
    }

    /// Names the in-service instances that are not Raft peers and publishes how many
    /// (`InServiceNotPeer`, 0 included, so an alarm sees it clear).
    async fn report_not_peers(
        &self,
        in_service: &[FleetNode],
        peers: &[RaftServer],
        report: &mut ReconcileReport,
    ) {
        report.not_peers = in_service
            .iter()
            .filter(|n| !peers.iter().any(|p| p.node_id == n.instance.as_str()))
            .map(|n| n.instance.clone())
            .collect();
        for instance in &report.not_peers {
            warn!(instance = %instance, "in-service instance is not a raft peer");
        }
        let count = report.not_peers.len() as f64;
        let cluster = self.settings.cluster.as_str();
        let metric = Metric::cluster(cluster, "InServiceNotPeer", count, Unit::Count);
        if let Err(e) = self.metrics.publish(&[metric]).await {
            warn!(error = %error_chain(&e), "in-service instances that are not peers not counted in metrics");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::vault::AutopilotServer;

    const GRACE: Duration = Duration::from_secs(300);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// (id, status, healthy, seconds in that state)
    fn cluster(servers: &[(&str, &str, bool, i64)]) -> (Vec<RaftServer>, AutopilotState) {
        let peers = servers
            .iter()
            .map(|(id, status, _, _)| RaftServer {
                node_id: id.to_string(),
                address: format!("{id}:8201"),
                leader: *status == "leader",
                voter: *status != "non-voter",
            })
            .collect();
        let state = AutopilotState {
            healthy: false,
            failure_tolerance: 0,
            leader: None,
            servers: servers
                .iter()
                .map(|(id, status, healthy, secs)| {
                    let server = AutopilotServer {
                        id: id.to_string(),
                        healthy: *healthy,
                        status: status.to_string(),
                        last_contact: None,
                        stable_since: Some(now() - chrono::Duration::seconds(*secs)),
                    };
                    (id.to_string(), server)
                })
                .collect::<BTreeMap<_, _>>(),
        };
        (peers, state)
    }

    fn members(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn removes_a_departed_peer_unhealthy_past_the_grace() {
        let (peers, state) = cluster(&[
            ("i-a", "leader", true, 900),
            ("i-b", "voter", true, 900),
            ("i-c", "voter", false, 301),
        ]);
        let plan = plan_departed_removal(&peers, &state, &members(&["i-a", "i-b"]), now(), GRACE);
        assert_eq!(plan.remove.as_deref(), Some("i-c"));
        assert!(plan.refused.is_empty(), "{plan:?}");
    }

    #[test]
    fn keeps_a_peer_inside_the_grace_or_still_healthy() {
        let (peers, state) = cluster(&[
            ("i-a", "leader", true, 900),
            ("i-b", "voter", true, 900),
            ("i-c", "voter", false, 120),
            ("i-d", "voter", true, 900),
        ]);
        let plan = plan_departed_removal(&peers, &state, &members(&["i-a", "i-b"]), now(), GRACE);
        assert_eq!(plan.remove, None);
        assert_eq!(plan.kept.len(), 2, "{plan:?}");
        assert!(plan.kept[0].contains("under the 300s grace"), "{plan:?}");
        assert!(plan.kept[1].contains("healthy"), "{plan:?}");
    }

    #[test]
    fn removes_at_most_one_per_run() {
        let (peers, state) = cluster(&[
            ("i-a", "leader", true, 900),
            ("i-b", "voter", true, 900),
            ("i-c", "voter", true, 900),
            ("i-d", "voter", false, 900),
            ("i-e", "voter", false, 900),
        ]);
        let plan = plan_departed_removal(
            &peers,
            &state,
            &members(&["i-a", "i-b", "i-c"]),
            now(),
            GRACE,
        );
        assert_eq!(plan.remove.as_deref(), Some("i-d"));
        assert_eq!(
            plan.kept,
            vec!["i-e: one removal per run; next run".to_owned()]
        );
    }

    #[test]
    fn refuses_a_removal_that_loses_quorum() {
        // Five voters, two healthy: removing a dead one leaves 2 healthy of 4, quorum 3.
        let (peers, state) = cluster(&[
            ("i-a", "leader", true, 900),
            ("i-b", "voter", true, 900),
            ("i-c", "voter", false, 900),
            ("i-d", "voter", false, 900),
            ("i-e", "voter", false, 900),
        ]);
        let plan = plan_departed_removal(
            &peers,
            &state,
            &members(&["i-a", "i-b", "i-c"]),
            now(),
            GRACE,
        );
        assert_eq!(plan.remove, None);
        assert_eq!(plan.refused.len(), 2, "{plan:?}");
        assert!(plan.refused[0].contains("under a quorum of 3"), "{plan:?}");
    }
}
