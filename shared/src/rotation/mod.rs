//! credential-rotation: rotates what the cluster's security rests on, on a schedule or
//! when asked, one kind at a time under a lock, each step safe to run again.
//!
//! This version rotates the barrier keyring (`keyring`): it makes the server's own
//! automatic rotation policy match the configured one, and rotates the keyring when its
//! current key is older than the configured age; a re-run after a cut-off finds a fresh
//! key and does nothing. And it rotates the unseal shares (`unseal-shares`) or the
//! recovery shares (`recovery-shares`) to a new generation, stored in every region
//! before it is verified ([`shares`]). The other targets are refused before anything
//! changes, naming the target.

mod assembly;
mod config;
mod database_root;
mod error;
mod keyring;
mod root_key;
mod secret_ids;
mod shares;

use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

pub use self::{
    assembly::{assemble, from_sdk, DeployedRotation},
    config::{DatabaseConnection, KeyringSettings, RotationConfig, SecretIdSettings},
    database_root::DatabaseRootReport,
    error::RotationError,
    keyring::KeyringReport,
    root_key::RootKeyReport,
    secret_ids::SecretIdReport,
    shares::{ShareStore, SharesReport},
};
use crate::{
    cluster::{
        auth::VaultLogin,
        find_active,
        locks::{Claim, Locks},
        node::NodeApi,
        ports::{Fleet, ParameterStore},
    },
    error_chain,
    events::{RotationRequest, RotationTarget},
    lambda::{FunctionError, Handler, Invocation},
};

/// How long a rotation lock outlives the run's deadline, so a run cut off mid-step holds
/// it until it surely stopped.
const LOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What a run rotated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// The `keyring` action, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyring: Option<KeyringReport>,
    /// The `root-key` action, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_key: Option<RootKeyReport>,
    /// The `unseal-shares` action, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseal_shares: Option<SharesReport>,
    /// The `recovery-shares` action, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_shares: Option<SharesReport>,
    /// The `database-root` action, when it ran: one report per connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_root: Option<Vec<DatabaseRootReport>>,
    /// The `approle-secret-ids` action, when it ran: one report per function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approle_secret_ids: Option<Vec<SecretIdReport>>,
    /// The snapshot asked of the backup path after this run's rotations, with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupAsked>,
    /// The DR region's dr-failover fenced this cluster: nothing was rotated until a
    /// failback ends the failover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fenced: Option<crate::failover::record::Fence>,
    /// In a DR standby serving the primary's data after a failover: the targets left
    /// for after the failback (the primary's shares and secret IDs, which the failback
    /// does not carry back).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_for_failback: Vec<RotationTarget>,
    /// The targets another run was rotating: this run left them alone (one rotation of a
    /// kind at a time; a held lock is an answer, not an error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub busy: Vec<Busy>,
}

/// The snapshot asked for after a run's rotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupAsked {
    /// The reason recorded with the snapshot.
    pub reason: String,
    /// Whether the backup path accepted the request.
    pub requested: bool,
    /// Why not, when it did not (the rotation stands; the next scheduled backup is the
    /// first taken after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one action did.
enum Done {
    Keyring(KeyringReport),
    Shares(SharesReport),
    SecretIds(Vec<SecretIdReport>),
    RootKey(RootKeyReport),
    DatabaseRoot(Vec<DatabaseRootReport>),
}

/// A target this run left to the run that holds its lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Busy {
    /// The target.
    pub target: RotationTarget,
    /// The run holding its lock.
    pub holder: String,
}

/// credential-rotation: the cluster's nodes, its own login, and the locks.
pub struct CredentialRotation<F, N, P> {
    /// The cluster's Auto Scaling group.
    pub fleet: F,
    /// Its nodes' API.
    pub vault: N,
    /// The function's own login (AppRole `credential-rotation`).
    pub login: VaultLogin<P>,
    /// SSM in the primary region: the shares' generations.
    pub parameters: P,
    /// Where the shares' generations are kept, and their DR copies.
    pub shares: ShareStore<P>,
    /// The `approle-secret-ids` action's aims.
    pub secret_ids: SecretIdSettings,
    /// The backup path (`BACKUP_FUNCTION`): asked for a snapshot after every rotation
    /// that an older snapshot cannot follow (`unseal-shares`, `recovery-shares`,
    /// `root-key`, `database-root`). `None`: not asked; the report says so.
    pub backup: Option<Box<dyn crate::cluster::ports::BackupTrigger>>,
    /// `DATABASE_CONNECTIONS`: what `database-root` rotates.
    pub databases: Vec<DatabaseConnection>,
    /// `ROOT_KEY_MAX_AGE_DAYS`: the root key is rotated when this function last rotated
    /// it longer ago (or never).
    pub root_key_max_age: std::time::Duration,
    /// One rotation of a kind at a time.
    pub locks: Box<dyn Locks>,
    /// What a schedule tick rotates.
    pub on_schedule: Vec<RotationTarget>,
    /// This cluster's failover record in the DR region's table (`None`: none
    /// configured): a cluster that dr-failover fenced rotates nothing, as its shares and
    /// credentials are the ones the DR cluster adopted.
    pub fence: Option<Box<dyn crate::failover::record::FailoverRecords>>,
    /// In a DR standby (`PRIMARY_CLUSTER`): the primary's failover record in this
    /// stack's table. While a failover is recorded, the standby serves the primary's
    /// data, and the shares and secret IDs a rotation would make there are ones the
    /// failback does not carry back to the primary: those targets wait.
    pub serving_for: Option<Box<dyn crate::failover::record::FailoverRecords>>,
    /// The `keyring` action's aims.
    pub keyring: KeyringSettings,
}

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    /// The Lambda handler: a schedule tick rotates the configured targets, a direct
    /// `{"rotate": [...]}` the ones named.
    pub async fn handle(
        &self,
        event: &serde_json::Value,
        request_id: &str,
        deadline: Instant,
    ) -> Result<RotationReport, FunctionError> {
        let request = RotationRequest::parse(event).map_err(RotationError::from)?;
        let targets = request.rotate.unwrap_or_else(|| self.on_schedule.clone());
        Ok(self
            .rotate_as(&targets, request.force, request_id, deadline)
            .await?)
    }

    /// Rotates `targets` in order, each under its lock, what is older than its maximum
    /// age. A target this version does not rotate is refused before anything changes.
    pub async fn rotate(
        &self,
        targets: &[RotationTarget],
        run: &str,
        deadline: Instant,
    ) -> Result<RotationReport, RotationError> {
        self.rotate_as(targets, false, run, deadline).await
    }

    /// [`rotate`](Self::rotate); with `force`, whatever its age.
    pub async fn rotate_as(
        &self,
        targets: &[RotationTarget],
        force: bool,
        run: &str,
        deadline: Instant,
    ) -> Result<RotationReport, RotationError> {
        if targets.contains(&RotationTarget::DatabaseRoot) && self.databases.is_empty() {
            return Err(RotationError::NoDatabaseConnections);
        }
        let mut report = RotationReport::default();
        if let Some(records) = &self.fence {
            if let Some(fence) = crate::failover::record::fence_of(records.as_ref()).await {
                warn!(since = %fence.since, trigger = %fence.trigger, last_phase = %fence.last_phase, "the DR region failed this cluster over and fenced it; nothing is rotated until the failback (the DR cluster holds these shares and credentials)");
                report.fenced = Some(fence);
                return Ok(report);
            }
        }
        let held = self.failover_recorded().await;
        for target in targets {
            if held
                && matches!(
                    target,
                    RotationTarget::UnsealShares
                        | RotationTarget::RecoveryShares
                        | RotationTarget::ApproleSecretIds
                )
            {
                warn!(target = target.as_str(), "a failover of the primary is recorded: this standby serves the primary's data, and what this rotation would make the failback does not carry back; left for after the failback");
                report.held_for_failback.push(*target);
                continue;
            }
            let done = self
                .under_lock(*target, run, deadline, || self.on_active(*target, force))
                .await?;
            match done {
                Ok(Done::Keyring(k)) => report.keyring = Some(k),
                Ok(Done::Shares(r)) if *target == RotationTarget::RecoveryShares => {
                    report.recovery_shares = Some(r)
                }
                Ok(Done::Shares(r)) => report.unseal_shares = Some(r),
                Ok(Done::SecretIds(r)) => report.approle_secret_ids = Some(r),
                Ok(Done::RootKey(r)) => report.root_key = Some(r),
                Ok(Done::DatabaseRoot(r)) => report.database_root = Some(r),
                Err(busy) => report.busy.push(busy),
            }
        }
        report.backup = self.backup_after(&report).await;
        Ok(report)
    }

    /// In a DR standby: whether a failover of the primary is recorded (a record that
    /// cannot be read counts as one: those rotations can wait, a lost key cannot).
    async fn failover_recorded(&self) -> bool {
        let Some(records) = &self.serving_for else {
            return false;
        };
        match records.current().await {
            Ok(record) => record.is_some(),
            Err(e) => {
                warn!(error = %crate::error_chain(&e), "the primary's failover record could not be read; the shares and secret IDs wait");
                true
            }
        }
    }

    /// Asks the backup path for a snapshot when this run changed what an older
    /// snapshot needs (shares, root key, database root credentials), so that the newest
    /// backup never needs a retired one. A failure is reported, never an error: the
    /// rotation stands.
    async fn backup_after(&self, report: &RotationReport) -> Option<BackupAsked> {
        let mut changed = Vec::new();
        for (what, shares) in [
            ("unseal-shares", &report.unseal_shares),
            ("recovery-shares", &report.recovery_shares),
        ] {
            if let Some(s) = shares.as_ref().filter(|s| s.rotated || s.settled.is_some()) {
                changed.push(format!("{what} generation {}", s.generation));
            }
        }
        if report.root_key.as_ref().is_some_and(|r| r.rotated) {
            changed.push("root-key".to_owned());
        }
        if let Some(dbs) = report.database_root.as_ref().filter(|d| !d.is_empty()) {
            let names: Vec<&str> = dbs.iter().map(|d| d.connection.as_str()).collect();
            changed.push(format!("database-root {}", names.join(" ")));
        }
        if changed.is_empty() {
            return None;
        }
        let reason = format!("after credential-rotation: {}", changed.join(", "));
        let Some(backup) = &self.backup else {
            warn!(reason = %reason, "no BACKUP_FUNCTION: no snapshot asked for; the next scheduled backup is the first after this rotation");
            return Some(BackupAsked {
                reason,
                requested: false,
                error: Some("BACKUP_FUNCTION is not set".into()),
            });
        };
        match backup.request_backup(&reason).await {
            Ok(()) => {
                info!(reason = %reason, "a snapshot was asked of the backup path");
                Some(BackupAsked {
                    reason,
                    requested: true,
                    error: None,
                })
            }
            Err(e) => {
                let text = error_chain(&e);
                warn!(error = %text, "no snapshot could be asked for after the rotation; the next scheduled backup is the first after it");
                Some(BackupAsked {
                    reason,
                    requested: false,
                    error: Some(text),
                })
            }
        }
    }

    /// Runs `step` holding the lock of `target`; when another run holds it, nothing is
    /// changed and the answer says who holds it.
    async fn under_lock<T, Fut>(
        &self,
        target: RotationTarget,
        run: &str,
        deadline: Instant,
        step: impl FnOnce() -> Fut,
    ) -> Result<Result<T, Busy>, RotationError>
    where
        Fut: std::future::Future<Output = Result<T, RotationError>>,
    {
        let name = format!("rotation/{}", target.as_str());
        let owner = format!("{run}#{:08x}", fastrand::u32(..));
        let ttl = deadline.saturating_duration_since(Instant::now()) + LOCK_MARGIN;
        if let Claim::HeldBy { owner: holder, .. } = self.locks.claim(&name, &owner, ttl).await? {
            info!(target = target.as_str(), holder = %holder, "another run is rotating this; left to it");
            return Ok(Err(Busy { target, holder }));
        }
        let result = step().await;
        if let Err(e) = self.locks.release(&name, &owner).await {
            warn!(lock = %name, error = %error_chain(&e), "rotation lock not released; it lapses at its expiry");
        }
        result.map(Ok)
    }

    /// One action on the active node, logged in.
    async fn on_active(&self, target: RotationTarget, force: bool) -> Result<Done, RotationError> {
        let members = self.fleet.members().await?;
        let asked = members.len();
        let (active, _) = find_active(&self.vault, members)
            .await
            .ok_or(RotationError::NoActiveNode { asked })?;
        self.login
            .retry_if_stale(|| async {
                let token = self.login.token(&self.vault, &active.addr).await?;
                Ok(match target {
                    RotationTarget::Keyring => {
                        Done::Keyring(self.keyring_on(&active.addr, &token, force).await?)
                    }
                    RotationTarget::DatabaseRoot => {
                        Done::DatabaseRoot(self.database_root_on(&active.addr, &token).await?)
                    }
                    RotationTarget::RootKey => {
                        Done::RootKey(self.root_key_on(&active.addr, &token, force).await?)
                    }
                    RotationTarget::ApproleSecretIds => {
                        Done::SecretIds(self.secret_ids_on(&active.addr, &token, force).await?)
                    }
                    _ => Done::Shares(self.shares_on(target, &active.addr, &token, force).await?),
                })
            })
            .await
    }
}

#[async_trait::async_trait]
impl<F: Fleet, N: NodeApi, P: ParameterStore> Handler for CredentialRotation<F, N, P> {
    type Output = RotationReport;
    async fn handle(&self, invocation: Invocation) -> Result<RotationReport, FunctionError> {
        CredentialRotation::handle(
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
