//! snapshot-restore's logic: find the snapshot asked for, check it end to end before
//! anything reaches the cluster, take a safety snapshot, stream the snapshot into the
//! active node, and wait until the cluster is healthy again.
//!
//! Every refusal (no such version, nothing as of that time, a checksum that does not
//! match, a snapshot of another cluster without `force`, the source's shares missing)
//! comes before the safety snapshot and the restore: the cluster and the bucket are left
//! as they were.

mod assembly;
mod choose;
mod config;
mod error;
mod plan;
mod rebuild;
mod recover;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use self::recover::checked_stream;
pub use self::{
    assembly::{assemble, from_sdk, DeployedRestore},
    config::{RestoreConfig, RestoreSettings},
    error::{RestoreError, Undo},
    plan::{CanaryCheck, Checked, RestorePlan, RestoreReport, StaleDatabaseCredentials},
    rebuild::Rebuilt,
};
use crate::{
    backup::{BackupSettings, BACKUP_LOCK},
    cluster::{
        auth::VaultLogin,
        find_active,
        locks::{Claim, Locks},
        node::{Health, NodeApi},
        ports::{Fleet, FleetNode, ParameterStore},
    },
    error_chain,
    events::RestoreRequest,
    keys::{generation_for_catalog, RecordedGenerations},
    lambda::{FunctionError, Handler, Invocation},
    secret::Secret,
    snapshots::{
        archive::SnapshotFacts,
        catalog::{BackupKind, Catalog, RestoreRecord},
        store::SnapshotObjects,
        verify::{read_and_check, stored, VerifyError},
    },
};

/// snapshot-restore with its own ports: the fleet and nodes, its login, the backup lock it
/// shares with snapshot-backup, the catalog and bucket, and the parameters the source
/// cluster's shares are read from.
pub struct SnapshotRestore<N, P> {
    /// The snapshots' naming, part size, transfer timeout and lock expiry (the same
    /// variables as snapshot-backup's).
    pub snapshots: BackupSettings,
    /// The cluster's Auto Scaling group.
    pub fleet: Box<dyn Fleet>,
    /// The node port.
    pub vault: N,
    /// This function's Vault login.
    pub login: VaultLogin<P>,
    /// The backup lock.
    pub locks: Box<dyn Locks>,
    /// The catalog.
    pub catalog: Box<dyn Catalog>,
    /// The snapshot bucket.
    pub store: Box<dyn SnapshotObjects>,
    /// Where shares are kept.
    pub parameters: P,
    /// What the operator configured.
    pub settings: RestoreSettings,
}

/// What a restore run did, returned as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RestoreOutcome {
    /// `dry_run`: the snapshot was found and checked; nothing was changed.
    WouldRestore(Box<RestorePlan>),
    /// The snapshot is in force and an active node is healthy.
    Restored(Box<RestoreReport>),
    /// A backup or another restore holds the backup lock: nothing was changed. Retry
    /// when it is done.
    Busy {
        /// Who holds it.
        owner: String,
        /// Until when, at the latest.
        until: DateTime<Utc>,
    },
}

impl<N: NodeApi, P: ParameterStore> SnapshotRestore<N, P> {
    /// Parses `request` and carries it out.
    pub async fn handle(
        &self,
        request: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<RestoreOutcome, FunctionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        info!(time_left_ms = left.as_millis() as u64, "invocation started");
        Ok(self
            .login
            .retry_if_stale(|| self.run(request, request_id, deadline))
            .await?)
    }

    async fn run(
        &self,
        request: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<RestoreOutcome, RestoreError> {
        let request = RestoreRequest::parse(request)?;
        let cluster = self.snapshots.cluster.as_str();
        let chosen = self
            .choose(&request.snapshot, request.include_pre_restore)
            .await?;
        let members = self.fleet.members().await?;
        let asked = members.len();
        let Some((active, health)) = find_active(&self.vault, members).await else {
            return Err(RestoreError::NoActiveNode { asked });
        };
        let this_id = health.cluster_id.clone().unwrap_or_default();
        let other_cluster = match &chosen.entry {
            Some(entry) => {
                entry.cluster != cluster
                    || (!entry.cluster_id.is_empty()
                        && !this_id.is_empty()
                        && entry.cluster_id != this_id)
            }
            None => true,
        };
        if other_cluster && !request.force {
            if chosen.entry.is_none() {
                return Err(self.not_catalogued(&chosen).await?);
            }
            return Err(RestoreError::OtherCluster {
                object: chosen.location.clone(),
                source_cluster: chosen.source_cluster.clone(),
                source_id: chosen
                    .entry
                    .as_ref()
                    .map(|e| e.cluster_id.clone())
                    .unwrap_or_default(),
                cluster: cluster.to_owned(),
                cluster_id: this_id,
            });
        }
        let share_generation = chosen.entry.as_ref().and_then(|e| e.share_generation);
        let mut forced = other_cluster;
        let shares = if other_cluster {
            Some(
                self.source_shares(&active, &chosen.source_cluster, share_generation)
                    .await?,
            )
        } else if let Some(generation) = share_generation {
            self.generation_kept(&active, generation).await?;
            let in_force = generation_for_catalog(
                &self.vault,
                &active.addr,
                &self.parameters,
                &self.snapshots.keys,
            )
            .await;
            if in_force.is_some_and(|g| g != generation) {
                info!(generation, in_force = ?in_force, "the snapshot was taken under another generation of shares: sent with snapshot-force, the nodes unsealed with its generation");
                forced = true;
                Some(
                    self.source_shares(&active, cluster, Some(generation))
                        .await?,
                )
            } else {
                None
            }
        } else {
            None
        };
        let expected = chosen.entry.as_ref().map(|e| (e.sha256.as_str(), e.bytes));
        let facts = read_and_check(self.store.as_ref(), &chosen.object, expected).await?;
        info!(object = %chosen.location, index = facts.index, term = facts.term, sha256 = %facts.sha256, "snapshot read back whole and checked");
        let plan = RestorePlan {
            snapshot: chosen.location.clone(),
            entry: chosen.entry.clone(),
            source_cluster: chosen.source_cluster.clone(),
            other_cluster,
            share_generation,
            forced,
            stale_database_credentials: plan::stale_database_credentials(
                &self.parameters,
                &self.snapshots.keys.of_cluster(&chosen.source_cluster),
                chosen.entry.as_ref(),
            )
            .await,
            checked: facts.clone().into(),
        };
        if request.dry_run {
            info!(object = %plan.snapshot, "dry run: nothing was changed");
            return Ok(RestoreOutcome::WouldRestore(Box::new(plan)));
        }
        let owner = format!("restore {request_id}");
        if let Claim::HeldBy { owner, expires_at } = self
            .locks
            .claim(BACKUP_LOCK, &owner, self.snapshots.lock_ttl)
            .await?
        {
            info!(owner = %owner, "a backup or another restore holds the backup lock; nothing was changed");
            return Ok(RestoreOutcome::Busy {
                owner,
                until: expires_at.into(),
            });
        }
        let result = self
            .locked_restore(plan, &facts, &active, &health, shares, &request, deadline)
            .await;
        if let Err(e) = self.locks.release(BACKUP_LOCK, &owner).await {
            warn!(error = %error_chain(&e), "releasing the backup lock failed; it lapses by itself");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn locked_restore(
        &self,
        plan: RestorePlan,
        facts: &SnapshotFacts,
        active: &FleetNode,
        health: &Health,
        shares: Option<Vec<Secret>>,
        request: &RestoreRequest,
        deadline: Instant,
    ) -> Result<RestoreOutcome, RestoreError> {
        let token = self.login.token(&self.vault, &active.addr).await?;
        let generations = RecordedGenerations::now(
            &self.vault,
            &active.addr,
            &self.parameters,
            &self.snapshots.keys,
        )
        .await;
        let taker = self.snapshots.taker(
            &self.vault,
            self.store.as_ref(),
            self.catalog.as_ref(),
            generations,
        );
        let safety = taker
            .take_from(
                active,
                health,
                &token,
                BackupKind::PreRestore,
                Some(format!("before restoring {}", plan.snapshot)),
            )
            .await
            .map_err(RestoreError::SafetySnapshot)?;
        info!(safety = %safety.object, "safety snapshot taken");
        let object = stored(&plan.snapshot);
        let body = self
            .store
            .open(&object)
            .await
            .map_err(|source| VerifyError::Read {
                object: plan.snapshot.clone(),
                source,
            })?;
        let stream = checked_stream(body, facts.sha256.clone());
        info!(node = %active.addr, object = %plan.snapshot, force = plan.forced, "sending the snapshot to the active node");
        self.vault
            .restore_snapshot(
                &active.addr,
                &token,
                Box::pin(stream),
                plan.forced,
                self.settings.send_timeout,
            )
            .await
            .map_err(|source| RestoreError::Send {
                object: plan.snapshot.clone(),
                node: active.addr.to_string(),
                undo: Undo::Safety(safety.object.clone()),
                source,
            })?;
        // The token may not exist in the restored data.
        self.login.forget();
        let (node, unsealed) = self
            .wait_healthy(
                shares.as_deref(),
                &Undo::Safety(safety.object.clone()),
                deadline,
            )
            .await?;
        let foreign = plan.source_cluster != self.snapshots.cluster.as_str();
        let (autopilot_healthy, failure_tolerance) =
            self.wait_autopilot(&node, foreign, deadline).await;
        let applied_index = self
            .vault
            .leader(&node.addr)
            .await
            .map(|l| l.raft_applied_index)
            .unwrap_or_default();
        let canary = self.check_canary(&node, &plan, foreign).await;
        let record = RestoreRecord {
            restored_at: Utc::now(),
            source: plan.snapshot.clone(),
            source_cluster: plan.source_cluster.clone(),
            index: facts.index,
            term: facts.term,
            safety_snapshot: safety.object.clone(),
            forced: request.force,
            reason: request.reason.clone(),
        };
        self.catalog
            .put_restore(&self.snapshots.cluster, &record)
            .await?;
        info!(object = %plan.snapshot, index = facts.index, term = facts.term, active = %node.addr, applied_index, "restore done: the snapshot is in force");
        Ok(RestoreOutcome::Restored(Box::new(RestoreReport {
            plan,
            safety_snapshot: safety.object,
            active_node: node.addr.to_string(),
            unsealed,
            applied_index,
            autopilot_healthy,
            failure_tolerance,
            canary,
        })))
    }
}

#[async_trait::async_trait]
impl<N: NodeApi, P: ParameterStore> Handler for SnapshotRestore<N, P> {
    type Output = RestoreOutcome;
    async fn handle(&self, invocation: Invocation) -> Result<RestoreOutcome, FunctionError> {
        SnapshotRestore::handle(
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
