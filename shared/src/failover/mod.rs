//! dr-failover's logic, run in the DR region: confirm the primary is down, then fence it,
//! bring the standby up, restore the newest usable DR copy of the primary's snapshots
//! into the standby's first node, hand the standby the primary's shares so its
//! node-lifecycle joins the other nodes, verify, switch DNS and notify; every phase
//! recorded with its duration in the DR region's state table ([`record`]).
//!
//! Idempotency: a run holds the failover lock; the record says which phases are done, so
//! a run cut off in any phase resumes at the next one, and an alarm delivered again after
//! the end finds the record done and changes nothing. A phase that fails before the DR
//! cluster serves gives the primary's group its size back and rewinds the record to its
//! confirmation, so the next run probes the primary again and fences again; from
//! verification on, the primary stays fenced. The return (`failback`) and the restore
//! drill (`drill`) run under the same lock.

mod adopt;
mod assembly;
mod config;
mod drill;
mod error;
mod failback;
mod phases;
mod plan;
mod ports;
mod rebuild;
pub mod record;
mod verify;

use chrono::Utc;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use self::record::{FailoverRecord, FailoverRecords, Phase, PhaseDone, PhaseFailed};
pub use self::{
    assembly::{assemble, from_sdk, DeployedFailover},
    config::{DnsSettings, FailoverConfig, FailoverSettings},
    drill::DrillReport,
    error::FailoverError,
    plan::{ChosenSnapshot, FailoverPlan, PrimaryView},
    ports::{
        ClusterRebuilt, ClusterRestore, ClusterRestored, PrimaryApi, PrimaryAt, ProbeFailure,
        StandbyBackup,
    },
};
use crate::{
    cluster::{
        dr_ports::{DnsRecords, GroupCapacity, Notifier},
        locks::{Claim, Locks},
        node::NodeApi,
        ports::{Fleet, ParameterStore},
    },
    error_chain,
    events::{AlarmNotice, AlarmState, FailoverRequest},
    lambda::{FunctionError, Handler, Invocation},
    snapshots::catalog::Catalog,
    telemetry::MetricsSink,
};

/// The lock every failover run holds while it changes anything.
pub const FAILOVER_LOCK: &str = "failover";

/// dr-failover with its ports, all in the DR region but the primary's group and API.
pub struct DrFailover<N, P> {
    /// What the operator configured.
    pub settings: FailoverSettings,
    /// The node port, for the standby's nodes.
    pub vault: N,
    /// The standby's group (its members).
    pub standby_fleet: Box<dyn Fleet>,
    /// The standby's group (its size).
    pub standby_group: Box<dyn GroupCapacity>,
    /// The primary's group, in the primary region.
    pub primary_group: Box<dyn GroupCapacity>,
    /// The primary's API.
    pub primary: Box<dyn PrimaryApi>,
    /// The restore into the standby.
    pub restorer: Box<dyn ClusterRestore>,
    /// The primary's group (its members), in the primary region: a failback restores
    /// into it.
    pub primary_fleet: Box<dyn Fleet>,
    /// The restore of the DR cluster's snapshot into the primary (a failback).
    pub primary_restorer: Box<dyn ClusterRestore>,
    /// A snapshot of the DR cluster (a failback).
    pub standby_backup: Box<dyn StandbyBackup>,
    /// The DR region's catalog (the DR copies of the primary's snapshots).
    pub catalog: Box<dyn Catalog>,
    /// The failover record.
    pub records: Box<dyn FailoverRecords>,
    /// The failover lock.
    pub locks: Box<dyn Locks>,
    /// The DR region's SSM: the primary's shares, and the standby's own.
    pub parameters: P,
    /// The record clients use (`None`: not configured, the switch is left to the
    /// operator).
    pub dns: Option<Box<dyn DnsRecords>>,
    /// The operators' topic (`None`: not configured).
    pub notifier: Option<Box<dyn Notifier>>,
    /// CloudWatch: the drill's `LastProvenRestorableAgeSeconds`.
    pub metrics: Box<dyn MetricsSink>,
}

/// What a run did, returned as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FailoverOutcome {
    /// `plan`: what a failover would do now; nothing was changed.
    Planned(Box<FailoverPlan>),
    /// An alarm that does not ask for a failover (OK, insufficient data).
    Ignored {
        /// The alarm.
        alarm: String,
        /// The state it entered.
        state: AlarmState,
    },
    /// The failover ran to its end in this run (perhaps resuming an earlier one).
    FailedOver(FailoverRecord),
    /// The failover had already run to its end: nothing was changed.
    AlreadyFailedOver(FailoverRecord),
    /// The primary serves again with the DR cluster's data; the record is archived.
    FailedBack(FailoverRecord),
    /// `drill`: the newest DR copy restored into the standby and checked.
    Drilled(DrillReport),
    /// `drill` while a failover is recorded: nothing was changed.
    DrillSkipped {
        /// Why.
        why: String,
    },
    /// Another run holds the failover lock: nothing was changed.
    Busy {
        /// Who holds it.
        owner: String,
    },
}

/// What started a failover.
struct Trigger {
    text: String,
    force: bool,
}

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// Parses `request` and carries it out.
    pub async fn handle(
        &self,
        request: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FunctionError> {
        Ok(self.run(request, request_id, deadline).await?)
    }

    async fn run(
        &self,
        request: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        match FailoverRequest::parse(request)? {
            FailoverRequest::Plan => Ok(FailoverOutcome::Planned(Box::new(self.plan().await?))),
            FailoverRequest::Failover { reason, force } => {
                let trigger = Trigger {
                    text: format!(
                        "operator{}: {}",
                        if force { " (forced)" } else { "" },
                        reason.as_deref().unwrap_or("no reason given")
                    ),
                    force,
                };
                self.failover(trigger, request_id, deadline).await
            }
            FailoverRequest::Failback { rebuild } => {
                self.failback(request_id, rebuild, deadline).await
            }
            FailoverRequest::Drill => self.drill(request_id, deadline).await,
            FailoverRequest::Alarm(notice) => {
                self.on_alarms(vec![notice], request_id, deadline).await
            }
            FailoverRequest::Alarms(notices) => self.on_alarms(notices, request_id, deadline).await,
        }
    }

    /// Every notice is checked against `FAILOVER_ALARMS` before anything; the last one in
    /// ALARM starts (or resumes) the one failover, whatever else the delivery holds.
    async fn on_alarms(
        &self,
        notices: Vec<AlarmNotice>,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        if let Some(unknown) = notices
            .iter()
            .find(|n| !self.settings.alarms.contains(&n.name))
        {
            return Err(FailoverError::UnknownAlarm {
                name: unknown.name.clone(),
                configured: self.settings.alarms.join(", "),
            });
        }
        let Some(alarm) = notices.iter().rev().find(|n| n.state == AlarmState::Alarm) else {
            let last = notices.last().cloned().ok_or(FailoverError::UnknownAlarm {
                name: String::new(),
                configured: self.settings.alarms.join(", "),
            })?;
            info!(alarm = %last.name, state = ?last.state, "the alarm does not ask for a failover; nothing was changed");
            return Ok(FailoverOutcome::Ignored {
                alarm: last.name,
                state: last.state,
            });
        };
        let trigger = Trigger {
            text: format!("alarm {} in ALARM ({:?})", alarm.name, alarm.delivery),
            force: false,
        };
        self.failover(trigger, request_id, deadline).await
    }

    async fn failover(
        &self,
        trigger: Trigger,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        let record = self.records.current().await?;
        if let Some(done) = record.as_ref().filter(|r| r.is_done()) {
            info!(started_at = %done.started_at, "the failover already ran to its end; nothing was changed");
            return Ok(FailoverOutcome::AlreadyFailedOver(done.clone()));
        }
        // A run resuming a failover past its fence does not ask again: a fenced primary
        // cannot answer healthy. A record rewound to its confirmation (a failed run gave
        // the primary its size back) is confirmed again: the primary may serve by now.
        let fenced = record.as_ref().is_some_and(|r| r.completed(Phase::Fenced));
        let confirmed = if fenced || trigger.force {
            None
        } else {
            Some(self.confirm_primary_down().await?)
        };
        let owner = format!("failover {request_id}");
        if let Claim::HeldBy { owner, .. } = self
            .locks
            .claim(FAILOVER_LOCK, &owner, self.settings.lock_ttl)
            .await?
        {
            info!(owner = %owner, "another run holds the failover lock; nothing was changed");
            return Ok(FailoverOutcome::Busy { owner });
        }
        let result = self
            .locked_failover(trigger, confirmed, request_id, deadline)
            .await;
        if let Err(e) = self.locks.release(FAILOVER_LOCK, &owner).await {
            warn!(error = %error_chain(&e), "releasing the failover lock failed; it lapses by itself");
        }
        result
    }

    async fn locked_failover(
        &self,
        trigger: Trigger,
        confirmed: Option<String>,
        request_id: &str,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        // Read again under the lock: a run that held it may have finished.
        let mut record = match self.records.current().await? {
            Some(done) if done.is_done() => {
                return Ok(FailoverOutcome::AlreadyFailedOver(done));
            }
            Some(record) => record,
            None => {
                let detail = confirmed.unwrap_or_else(|| trigger.text.clone());
                self.new_record(&trigger.text, detail, request_id).await?
            }
        };
        record.failed = None;
        let last = record.last_phase();
        let next: Vec<Phase> = Phase::ALL.into_iter().filter(|p| Some(*p) > last).collect();
        for phase in next {
            let started = Instant::now();
            match self
                .run_phase(phase, &mut record, request_id, deadline)
                .await
            {
                Ok(detail) => {
                    info!(phase = %phase, took_ms = started.elapsed().as_millis() as u64, detail = %detail, "failover phase done");
                    record.phases.push(PhaseDone {
                        phase,
                        at: Utc::now(),
                        took_ms: started.elapsed().as_millis() as u64,
                        detail,
                    });
                    self.records.put(&record).await?;
                }
                Err(e) => return Err(self.phase_failed(&mut record, phase, e).await),
            }
        }
        info!(
            seconds = record.seconds_so_far(),
            "failover done: the DR cluster serves"
        );
        Ok(FailoverOutcome::FailedOver(record))
    }

    /// Records the failure; before the DR side serves, gives the primary its size back
    /// and rewinds the record to its confirmation (the next run probes the primary and
    /// fences again).
    async fn phase_failed(
        &self,
        record: &mut FailoverRecord,
        phase: Phase,
        error: FailoverError,
    ) -> FailoverError {
        use crate::errors::Classify;
        let retry_helps = error.retry_helps();
        let reason = match error {
            FailoverError::Phase { reason, .. } => reason,
            other => error_chain(&other),
        };
        let mut unfenced = false;
        if record.completed(Phase::Fenced) && !record.dr_serves() {
            unfenced = self.unfence(record).await;
            if unfenced {
                record.phases.retain(|p| p.phase == Phase::Confirmed);
            }
        }
        warn!(phase = %phase, unfenced, error = %reason, "failover phase failed");
        record.failed = Some(PhaseFailed {
            phase,
            at: Utc::now(),
            error: reason.clone(),
            unfenced,
        });
        if let Err(e) = self.records.put(record).await {
            warn!(error = %error_chain(&e), "the failed phase could not be recorded");
        }
        FailoverError::Phase {
            phase,
            reason,
            retry_helps,
        }
    }
}

#[async_trait::async_trait]
impl<N: NodeApi, P: ParameterStore> Handler for DrFailover<N, P> {
    type Output = FailoverOutcome;
    async fn handle(&self, invocation: Invocation) -> Result<FailoverOutcome, FunctionError> {
        DrFailover::handle(
            self,
            &invocation.payload,
            &invocation.request_id,
            invocation.deadline,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
