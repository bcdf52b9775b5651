//! The return to the primary region, once it serves again: a snapshot of the DR cluster
//! restored into the primary (forced: another cluster's snapshot, unsealed with the
//! shares the DR cluster holds, which are the primary's own adopted by the failover),
//! verified, the DNS record pointed back, the primary's group and the standby group
//! given their sizes from before, the operators told, and the failover record archived
//! so the next alarm may fail over again.
//!
//! After a region outage whose fence could only be recorded, the primary's nodes come
//! back with their old data and its node-lifecycle unseals them once the failback is
//! asked for; the DR snapshot is restored into them. A primary whose group the fence
//! emptied has no data left: its group is given one node, which its node-lifecycle
//! leaves uninitialised, and the cluster is rebuilt in it from the DR snapshot (throwaway
//! keys, the snapshot forced, the DR cluster's shares, which are the primary's own); the
//! other nodes join it once the group has its size back (`Unfenced`). A primary whose
//! nodes do not answer is refused (`PrimaryNotServing`), nothing changed.
//! Like a failover, every phase is recorded and a run cut off resumes at the next one.

use chrono::Utc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    rebuild::PrimaryNodes,
    record::{Failback, FailbackDone, FailbackPhase, FailoverRecord, Phase},
    verify::{Holding, SnapshotIdentity},
    DrFailover, FailoverError, FailoverOutcome, FAILOVER_LOCK,
};
use crate::{
    cluster::{find_active, locks::Claim, node::NodeApi, ports::ParameterStore},
    error_chain,
    errors::Classify,
    snapshots::catalog::CatalogEntry,
};

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// Runs (or resumes) the failback.
    /// `rebuild_asked`: the operator says the primary's nodes are gone (see
    /// [`FailoverRequest::Failback`](crate::events::FailoverRequest)).
    pub(super) async fn failback(
        &self,
        request_id: &str,
        rebuild_asked: bool,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        let owner = format!("failback {request_id}");
        if let Claim::HeldBy { owner, .. } = self
            .locks
            .claim(FAILOVER_LOCK, &owner, self.settings.lock_ttl)
            .await?
        {
            return Ok(FailoverOutcome::Busy { owner });
        }
        let result = self
            .locked_failback(request_id, rebuild_asked, deadline)
            .await;
        if let Err(e) = self.locks.release(FAILOVER_LOCK, &owner).await {
            warn!(error = %error_chain(&e), "releasing the failover lock failed; it lapses by itself");
        }
        result
    }

    async fn locked_failback(
        &self,
        request_id: &str,
        rebuild_asked: bool,
        deadline: Instant,
    ) -> Result<FailoverOutcome, FailoverError> {
        let mut record = match self.records.current().await? {
            Some(record) if record.is_done() => record,
            Some(record) => {
                return Err(FailoverError::NoFailoverToReturnFrom {
                    state: format!(
                        "a failover is recorded and not complete (last phase {})",
                        record.last_phase().map_or("none", Phase::as_str)
                    ),
                })
            }
            None => {
                return Err(FailoverError::NoFailoverToReturnFrom {
                    state: "no failover is recorded".into(),
                })
            }
        };
        if record.failback.is_none() {
            // Nothing changes unless the primary has a node to restore into, or its
            // group was emptied by the fence: then the cluster is rebuilt in a new
            // node. Recorded then: the primary's node-lifecycle, which leaves a fenced
            // primary sealed, unseals it (or leaves a new node uninitialised for the
            // rebuild) once a failback is asked for.
            let rebuild = match self.primary_nodes().await? {
                PrimaryNodes::Initialised => false,
                PrimaryNodes::NoneInitialised if record.primary_group_was.is_some() => {
                    info!("the fence emptied the primary's group and none of its nodes is initialised: the primary's cluster is rebuilt from the DR snapshot in a new node");
                    true
                }
                PrimaryNodes::NoneInitialised if rebuild_asked => {
                    // The fence could only be recorded: the group's size now is what
                    // `unfenced` gives back once the rebuild is done (unless it is 0,
                    // which would remove the rebuilt node).
                    let now = self.primary_group.capacity().await?;
                    if now.desired > 0 {
                        record.primary_group_was = Some(now);
                    }
                    info!(desired = now.desired, "asked to rebuild: none of the primary's nodes is initialised; its cluster is rebuilt from the DR snapshot in a new node");
                    true
                }
                PrimaryNodes::NoneInitialised | PrimaryNodes::Unanswered => {
                    return Err(FailoverError::PrimaryNotServing {
                        asked: self.primary_fleet.members().await?.len(),
                    })
                }
            };
            record.failback = Some(Failback {
                id: request_id.to_owned(),
                started_at: Utc::now(),
                snapshot: None,
                rebuild,
                phases: Vec::new(),
                failed: None,
            });
            self.records.put(&record).await?;
        }
        let done: Vec<FailbackPhase> = record
            .failback
            .iter()
            .flat_map(|f| f.phases.iter().map(|p| p.phase))
            .collect();
        for phase in FailbackPhase::ALL.into_iter().filter(|p| !done.contains(p)) {
            let started = Instant::now();
            match self
                .run_failback_phase(phase, &mut record, request_id, deadline)
                .await
            {
                Ok(detail) => {
                    info!(phase = ?phase, detail = %detail, "failback phase done");
                    if let Some(f) = record.failback.as_mut() {
                        f.failed = None;
                        f.phases.push(FailbackDone {
                            phase,
                            at: Utc::now(),
                            took_ms: started.elapsed().as_millis() as u64,
                            detail,
                        });
                    }
                    self.records.put(&record).await?;
                }
                Err(e) => {
                    let retry_helps = e.retry_helps();
                    let reason = match e {
                        FailoverError::FailbackPhase { reason, .. } => reason,
                        other => error_chain(&other),
                    };
                    warn!(phase = ?phase, error = %reason, "failback phase failed; the next run resumes here");
                    if let Some(f) = record.failback.as_mut() {
                        f.failed = Some(format!("{phase:?}: {reason}"));
                    }
                    if let Err(e) = self.records.put(&record).await {
                        warn!(error = %error_chain(&e), "the failed failback phase could not be recorded");
                    }
                    return Err(FailoverError::FailbackPhase {
                        phase: format!("{phase:?}"),
                        reason,
                        retry_helps,
                    });
                }
            }
        }
        self.records.archive(&record).await?;
        info!("failback done: the primary serves; the failover record is archived");
        Ok(FailoverOutcome::FailedBack(record))
    }

    /// An active, unsealed primary node.
    async fn primary_serving(&self) -> Result<String, FailoverError> {
        let members = self.primary_fleet.members().await?;
        let asked = members.len();
        match find_active(&self.vault, members).await {
            Some((node, health)) => Ok(format!(
                "node {} active (cluster {})",
                node.instance,
                health.cluster_id.unwrap_or_default()
            )),
            None => Err(FailoverError::FailbackPhase {
                phase: "PrimaryServing".into(),
                reason: format!("no primary node is active yet ({asked} in the group): a fenced primary stays sealed until a failback is asked for, and its node-lifecycle unseals it at its next reconcile now that this one is recorded (or invoke its reconcile); run failback again then"),
                retry_helps: true,
            }),
        }
    }

    async fn run_failback_phase(
        &self,
        phase: FailbackPhase,
        record: &mut FailoverRecord,
        request_id: &str,
        deadline: Instant,
    ) -> Result<String, FailoverError> {
        // A function's failure (the backup's, the restore's) as this phase's.
        let failed = |e: &crate::lambda::FunctionError| FailoverError::FailbackPhase {
            phase: format!("{phase:?}"),
            reason: format!("{}: {}", e.error_type, e.message),
            retry_helps: e.error_type.starts_with("Transient"),
        };
        let rebuild = record.failback.as_ref().is_some_and(|f| f.rebuild);
        match phase {
            FailbackPhase::PrimaryServing if rebuild => self.primary_node_for_rebuild().await,
            FailbackPhase::PrimaryServing => self.primary_serving().await,
            FailbackPhase::DrSnapshot => {
                let reason = format!("failback of {} to the primary", self.settings.primary);
                let entry = self
                    .standby_backup
                    .back_up(
                        &reason,
                        &format!("failback-{}", record.started_at.timestamp()),
                        deadline,
                    )
                    .await
                    .map_err(|e| failed(&e))?;
                let detail = format!("{} at index {}", entry.object, entry.index);
                if let Some(f) = record.failback.as_mut() {
                    f.snapshot = Some(entry);
                }
                Ok(detail)
            }
            FailbackPhase::RestoredIntoPrimary => {
                let entry = self.failback_snapshot(record)?;
                // Only the canary tells: the primary's own index, from its writes before
                // the outage, may well be past the DR snapshot's.
                if entry.canary.is_some() {
                    if let Holding::Held(held) = self.primary_holds(&entry).await? {
                        return Ok(format!("already restored: {held}"));
                    }
                }
                if rebuild {
                    let seal = self.standby_seal_config().await?;
                    let rebuilt = self
                        .primary_restorer
                        .rebuild(&entry.object, seal, deadline)
                        .await
                        .map_err(|e| failed(&e))?;
                    return Ok(format!(
                        "{} restored into {}, a new node of the emptied primary, {} (applied index {}; no safety snapshot: the primary had no data left)",
                        entry.object,
                        rebuilt.node,
                        if rebuilt.sent_now { "initialised with throwaway keys, then given the DR snapshot and unsealed with the DR cluster's shares (or by its own seal, under auto-unseal)" } else { "where an earlier run had sent it" },
                        rebuilt.applied_index
                    ));
                }
                let restored = self
                    .primary_restorer
                    .restore(
                        &entry.object,
                        "failback from the DR region",
                        request_id,
                        deadline,
                    )
                    .await
                    .map_err(|e| failed(&e))?;
                Ok(format!(
                    "{} restored into {} (applied index {}; the primary's safety snapshot {})",
                    entry.object,
                    restored.active_node,
                    restored.applied_index,
                    restored.safety_snapshot
                ))
            }
            FailbackPhase::PrimaryVerified => {
                let entry = self.failback_snapshot(record)?;
                match self.primary_holds(&entry).await? {
                    Holding::Held(held) => Ok(held),
                    Holding::NotHeld(why) | Holding::Unknown(why) => {
                        Err(FailoverError::FailbackPhase {
                            phase: format!("{phase:?}"),
                            reason: format!("the primary does not hold {}: {why}", entry.object),
                            retry_helps: true,
                        })
                    }
                }
            }
            FailbackPhase::SwitchedBack => {
                let (Some(dns), Some(target)) = (
                    &self.dns,
                    self.settings
                        .dns
                        .as_ref()
                        .and_then(|d| d.primary_target.as_ref()),
                ) else {
                    return Ok("no primary DNS target configured (DNS_PRIMARY_TARGET): point the record back by hand".into());
                };
                if dns.current().await?.as_ref() == Some(target) {
                    return Ok("the record points at the primary already".into());
                }
                dns.point_at(target).await?;
                Ok(format!("the record points at {target:?} again"))
            }
            FailbackPhase::Unfenced => match record.primary_group_was {
                Some(was) => {
                    self.primary_group.resize(was.min, was.desired).await?;
                    Ok(format!(
                        "the primary's group has min {} and desired {} again",
                        was.min, was.desired
                    ))
                }
                None if rebuild => Ok("the group's earlier size is not recorded (the fence was only recorded, and the group was empty when the rebuild was asked for): it keeps the one node it was given for the rebuild; give it its size by hand".into()),
                None => Ok("the fence was only recorded: nothing to give back".into()),
            },
            FailbackPhase::StandbyIdle => match record.standby_group_was {
                Some(was) => {
                    // A pilot light goes back to 0: its next raise is rebuilt.
                    self.standby_group.set_desired(was.desired).await?;
                    Ok(format!(
                        "the standby group wants {} instances again",
                        was.desired
                    ))
                }
                None => {
                    Ok("the standby group's earlier size is not recorded: left as it is".into())
                }
            },
            FailbackPhase::Notified => {
                let Some(notifier) = &self.notifier else {
                    return Ok("no topic configured (NOTIFY_TOPIC_ARN)".into());
                };
                let subject = format!(
                    "Vault failback: {} served by the primary again",
                    self.settings.primary
                );
                let mut message = String::from("Failback phases:\n");
                for p in record.failback.iter().flat_map(|f| f.phases.iter()) {
                    message.push_str(&format!(
                        "- {:?} ({} ms): {}\n",
                        p.phase, p.took_ms, p.detail
                    ));
                }
                notifier.notify(&subject, &message).await?;
                Ok("the operators' topic was told".into())
            }
        }
    }

    fn failback_snapshot(&self, record: &FailoverRecord) -> Result<CatalogEntry, FailoverError> {
        record
            .failback
            .as_ref()
            .and_then(|f| f.snapshot.clone())
            .ok_or_else(|| FailoverError::FailbackPhase {
                phase: "DrSnapshot".into(),
                reason: "no snapshot of the DR cluster is recorded".into(),
                retry_helps: true,
            })
    }

    /// Whether the primary holds the DR cluster's snapshot `entry`.
    async fn primary_holds(&self, entry: &CatalogEntry) -> Result<Holding, FailoverError> {
        self.cluster_holds(
            self.primary_fleet.as_ref(),
            self.primary_restorer.as_ref(),
            &SnapshotIdentity {
                cluster_id: &entry.cluster_id,
                index: entry.index,
                canary: entry.canary.as_deref(),
            },
        )
        .await
    }
}
