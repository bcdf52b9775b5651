//! The phases after the confirmation, each converging: it checks what is already true
//! and acts on the difference, so a run that resumes after a cut-off repeats nothing
//! harmful.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    record::{FailoverRecord, Phase},
    verify::Holding,
    DrFailover, FailoverError,
};
use crate::{
    cluster::{
        find_active,
        node::{Health, NodeApi},
        ports::{FleetNode, ParameterStore},
    },
    error_chain,
    errors::Classify,
};

/// The restore errors that say the copy itself is unusable, found before anything is
/// sent to the standby: its bytes do not match its catalog entry, or its version is gone.
const UNSENT_SNAPSHOT_FAULTS: [&str; 2] = ["ChecksumMismatch", "NoSuchVersion"];

/// The name in an error type (`Permanent.ChecksumMismatch` -> `ChecksumMismatch`).
pub(super) fn fault_name(error_type: &str) -> &str {
    error_type.rsplit('.').next().unwrap_or_default()
}

/// How often the standby is asked whether a node is active (node-lifecycle polls as
/// often: a pilot light's node is ready at no particular second).
const POLL: Duration = Duration::from_millis(250);

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// Runs one phase; its answer is the phase's detail for the record.
    pub(super) async fn run_phase(
        &self,
        phase: Phase,
        record: &mut FailoverRecord,
        request_id: &str,
        deadline: Instant,
    ) -> Result<String, FailoverError> {
        match phase {
            Phase::Confirmed => Ok("confirmed".into()),
            Phase::Fenced => self.ensure_primary_fenced(record).await,
            Phase::StandbyUp => {
                // Its size first, so a failback gives it back (a pilot light: 0).
                if record.standby_group_was.is_none() {
                    record.standby_group_was = Some(self.standby_group.capacity().await?);
                    self.records.put(record).await?;
                }
                let (detail, rebuild) = self
                    .wait_until_standby_up(record.standby_group_was, deadline)
                    .await?;
                if rebuild && !record.standby_rebuild {
                    record.standby_rebuild = true;
                    self.records.put(record).await?;
                }
                Ok(detail)
            }
            Phase::Restored => self.ensure_restored(record, request_id, deadline).await,
            Phase::Adopted => self.ensure_adopted(record, deadline).await,
            Phase::Scaled => self.ensure_standby_scaled().await,
            Phase::Verified => self.verify(record).await,
            Phase::Switched => self.ensure_dns_switched().await,
            Phase::Notified => self.notify(record).await,
        }
    }

    /// The primary's group scaled to 0, its size kept in the record first (so a run
    /// cut off after the resize still knows what to give back). A primary region that
    /// does not answer cannot be scaled: the record alone says it is fenced.
    async fn ensure_primary_fenced(
        &self,
        record: &mut FailoverRecord,
    ) -> Result<String, FailoverError> {
        let group = &self.settings.primary_group;
        if record.primary_group_was.is_none() {
            match self.primary_group.capacity().await {
                Ok(was) => {
                    record.primary_group_was = Some(was);
                    self.records.put(record).await?;
                }
                Err(e) if !e.retry_helps() => return Err(e.into()),
                Err(e) => {
                    warn!(group = %group, error = %error_chain(&e), "the primary region's Auto Scaling API does not answer; the primary is recorded fenced only");
                    return Ok(format!(
                        "group {group} not reachable ({}): recorded fenced only",
                        error_chain(&e)
                    ));
                }
            }
        }
        match self.primary_group.resize(0, 0).await {
            Ok(()) => Ok(format!(
                "group {group} scaled to 0 (was {:?})",
                record.primary_group_was
            )),
            Err(e) if !e.retry_helps() => Err(e.into()),
            Err(e) => {
                warn!(group = %group, error = %error_chain(&e), "the primary region's Auto Scaling API does not answer; the primary is recorded fenced only");
                Ok(format!(
                    "group {group} not scaled ({}): recorded fenced only",
                    error_chain(&e)
                ))
            }
        }
    }

    /// Gives the primary's group the size it had; whether it did.
    pub(super) async fn unfence(&self, record: &FailoverRecord) -> bool {
        let Some(was) = record.primary_group_was else {
            return false;
        };
        match self.primary_group.resize(was.min, was.desired).await {
            Ok(()) => {
                info!(group = %self.settings.primary_group, min = was.min, desired = was.desired, "the DR side does not serve: the primary's group has its size back");
                true
            }
            Err(e) => {
                warn!(group = %self.settings.primary_group, error = %error_chain(&e), "the primary's group could not be given its size back; do it by hand");
                false
            }
        }
    }

    /// At least one standby instance, then a node answering active whose instance is
    /// InService. A pilot light's first node answers active in the middle of its
    /// bootstrap, before the standby's node-lifecycle has made dr-failover's AppRole and
    /// stored its credentials: the restore's login would fail for good. Its launch
    /// completes (InService) only once the bootstrap is done. A warm standby's node is
    /// InService already. A pilot light emptied again after its first use has no node
    /// of its cluster left: its new node, in service and left uninitialised by its
    /// node-lifecycle, is up for a rebuild (`true`).
    pub(super) async fn wait_until_standby_up(
        &self,
        was: Option<crate::cluster::dr_ports::Capacity>,
        deadline: Instant,
    ) -> Result<(String, bool), FailoverError> {
        let capacity = self.standby_group.capacity().await?;
        if capacity.desired < 1 {
            self.standby_group.set_desired(1).await?;
        }
        // The size before any run raised it: a run resumed after the raise still knows
        // it started from 0.
        let warm = was.unwrap_or(capacity).desired >= 1;
        let how = if warm {
            "warm standby"
        } else {
            "started from 0"
        };
        let until = deadline.min(Instant::now() + self.settings.standby_timeout);
        loop {
            let in_service = self.standby_fleet.in_service().await?;
            let asked = in_service.len();
            if let Some((node, _)) = find_active(&self.vault, in_service.clone()).await {
                return Ok((format!("node {} active ({how})", node.instance), false));
            }
            if let Some(node) = self.standby_to_rebuild(&in_service).await? {
                return Ok((
                    format!(
                        "node {} in service, left uninitialised: the standby's cluster is rebuilt in it ({how})",
                        node.instance
                    ),
                    true,
                ));
            }
            if Instant::now() + POLL > until {
                return Err(FailoverError::Phase {
                    phase: Phase::StandbyUp,
                    reason: format!(
                        "no standby node answered as active in time ({asked} in service)"
                    ),
                    retry_helps: true,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A member of the standby's group (launching or in service) that answers active.
    pub(super) async fn wait_for_active(
        &self,
        until: Instant,
    ) -> Result<(FleetNode, Health), FailoverError> {
        loop {
            let nodes = self.standby_fleet.members().await?;
            let asked = nodes.len();
            if let Some(found) = find_active(&self.vault, nodes).await {
                return Ok(found);
            }
            if Instant::now() + POLL > until {
                return Err(FailoverError::Phase {
                    phase: Phase::StandbyUp,
                    reason: format!(
                        "no standby node answered as active in time ({asked} in the group)"
                    ),
                    retry_helps: true,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Restores the record's snapshot into the standby. A copy found corrupted or gone
    /// before anything was sent (its bytes no longer match its catalog entry, or its
    /// version is missing) is marked failed in the catalog, as a drill would, and the
    /// next usable copy takes its place in the record: the standby is untouched, and a
    /// next run would only meet the same copy again.
    async fn ensure_restored(
        &self,
        record: &mut FailoverRecord,
        request_id: &str,
        deadline: Instant,
    ) -> Result<String, FailoverError> {
        // Only a canary tells that the standby holds this very snapshot (a drill's older
        // one, or the tokens of logins since, also move the index on): without one the
        // snapshot is restored again, which a forced restore of the same data allows.
        if record.snapshot_canary.is_some() {
            if let Holding::Held(already) = self.holds_snapshot(record).await? {
                return Ok(format!("already restored: {already}"));
            }
        }
        let reason = format!("failover of {}: {}", self.settings.primary, record.trigger);
        let mut set_aside = Vec::new();
        let mut detail = loop {
            match self
                .restore_or_rebuild(
                    &record.snapshot,
                    record.standby_rebuild,
                    &reason,
                    request_id,
                    deadline,
                )
                .await
            {
                Ok(detail) => break detail,
                Err(e) if UNSENT_SNAPSHOT_FAULTS.contains(&fault_name(&e.error_type)) => {
                    let why = format!("{}: {}", e.error_type, e.message);
                    warn!(snapshot = %record.snapshot, error = %why, "the chosen copy is unusable and was not sent; marked failed, the next usable copy takes its place");
                    self.mark_copy_failed(&record.snapshot, &why).await?;
                    set_aside.push(format!("{} ({why})", record.snapshot));
                    let entry = self
                        .choose_snapshot()
                        .await
                        .map_err(|e| FailoverError::Phase {
                            phase: Phase::Restored,
                            reason: format!(
                                "every usable copy was set aside ({}): {}",
                                set_aside.join("; "),
                                error_chain(&e)
                            ),
                            retry_helps: false,
                        })?;
                    self.check_shares(&entry).await?;
                    record.choose(&entry);
                    self.records.put(record).await?;
                }
                Err(e) => {
                    return Err(FailoverError::Phase {
                        phase: Phase::Restored,
                        reason: format!("{}: {}", e.error_type, e.message),
                        retry_helps: e.error_type.starts_with("Transient"),
                    })
                }
            }
        };
        if !set_aside.is_empty() {
            detail.push_str(&format!(
                "; set aside and marked failed first: {}",
                set_aside.join("; ")
            ));
        }
        Ok(detail)
    }

    /// Marks the catalog entry of `copy` failed (never chosen again, never drilled).
    pub(super) async fn mark_copy_failed(
        &self,
        copy: &crate::snapshots::store::Location,
        why: &str,
    ) -> Result<(), FailoverError> {
        let entries = self.catalog.entries(&self.settings.primary).await?;
        if let Some(mut entry) = entries.into_iter().find(|e| e.object == *copy) {
            entry.drill = Some(crate::snapshots::catalog::DrillResult {
                at: chrono::Utc::now(),
                passed: false,
                detail: format!("a failover could not use it: {why}"),
            });
            self.catalog.put(&entry).await?;
        }
        Ok(())
    }

    async fn ensure_standby_scaled(&self) -> Result<String, FailoverError> {
        let size = self.settings.standby_size;
        let capacity = self.standby_group.capacity().await?;
        if capacity.desired >= size {
            return Ok(format!(
                "the group already wants {} nodes",
                capacity.desired
            ));
        }
        self.standby_group.set_desired(size).await?;
        Ok(format!(
            "desired capacity {} -> {size}; node-lifecycle joins and unseals the new nodes",
            capacity.desired
        ))
    }

    async fn ensure_dns_switched(&self) -> Result<String, FailoverError> {
        let (Some(dns), Some(settings)) = (&self.dns, &self.settings.dns) else {
            return Ok("no DNS record configured (DNS_ZONE_ID): switch clients by hand".into());
        };
        if dns.current().await?.as_ref() == Some(&settings.target) {
            return Ok(format!(
                "{} already points at the DR cluster",
                settings.record_name
            ));
        }
        dns.point_at(&settings.target).await?;
        Ok(format!(
            "{} now points at {:?}",
            settings.record_name, settings.target
        ))
    }

    async fn notify(&self, record: &FailoverRecord) -> Result<String, FailoverError> {
        let Some(notifier) = &self.notifier else {
            return Ok("no topic configured (NOTIFY_TOPIC_ARN)".into());
        };
        let subject = format!(
            "Vault failover: {} now served by {} in the DR region",
            self.settings.primary, self.settings.standby_keys
        );
        let mut message = format!(
            "Trigger: {}\nSnapshot: {} taken {} (share generation {})\n\nPhases:\n",
            record.trigger, record.snapshot, record.snapshot_taken_at, record.share_generation
        );
        for p in &record.phases {
            message.push_str(&format!("- {} ({} ms): {}\n", p.phase, p.took_ms, p.detail));
        }
        notifier.notify(&subject, &message).await?;
        Ok("the operators' topic was told".into())
    }
}
