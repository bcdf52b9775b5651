//! The `unseal-shares` and `recovery-shares` actions: a new generation of shares for the
//! same root key, which never exists only in memory.
//!
//! 1. The threshold of the generation in force is entered into a rotation that requires
//!    verification; the server hands out the new shares and keeps the old ones in force.
//! 2. The new shares are stored as generation N+1 in SSM, in the primary region and then
//!    the DR region: stored, not in force (pending).
//! 3. The threshold of the new shares is entered back (verification): from then on only
//!    they open the seal.
//! 4. N+1 is marked in force (DR region first), and N is kept (older snapshots need it).
//!
//! A run that finds a pending generation settles it before anything else: if the server
//! still waits for verification, verification resumes; if the server forgot the rotation
//! (a restart, a new leader) or finished it before the mark was written, a probe rotation
//! entered with the pending shares tells which (it reaches the threshold only with shares
//! in force, and is cancelled at once): in force, the mark is written; worthless, the
//! pending generation is deleted and reported. A crash at any step leaves the shares in
//! force stored and working.

use chrono::Utc;
use serde::Serialize;
use tracing::{info, warn};

mod store;

use super::{CredentialRotation, RotationError};
use crate::{
    cluster::{
        node::{NodeApi, RotationStep, ShareKind, VerifyStep},
        ports::{Fleet, ParameterStore},
    },
    events::RotationTarget,
    ids::NodeAddr,
    keys::{generations, read_shares, DrKeys, Generation, KeyLayout, SealKind, SharesMissing},
    secret::Secret,
};

/// Where the generations of shares are kept, and how old the one in force may grow.
pub struct ShareStore<P> {
    /// `SHARES_MAX_AGE_DAYS`.
    pub max_age: std::time::Duration,
    /// The cluster's parameters.
    pub layout: KeyLayout,
    /// `KMS_KEY_ID`.
    pub kms_key: String,
    /// The DR region's copies, if configured.
    pub dr: Option<DrKeys<P>>,
}

/// The shares after an `unseal-shares` or `recovery-shares` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharesReport {
    /// The generation in force before the run.
    pub previous_generation: Generation,
    /// The generation in force now.
    pub generation: Generation,
    /// Whether this run made a new generation and saw it verified.
    pub rotated: bool,
    /// A pending generation an earlier run left, that this run found verified (or
    /// verified) and marked in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled: Option<Generation>,
    /// A pending generation an earlier run left, that the server no longer held: deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discarded: Option<Generation>,
    /// The shares' count and threshold (unchanged by a rotation).
    pub shares: u8,
    /// See `shares`.
    pub threshold: u8,
}

/// What a pending generation turned out to be.
enum Settled {
    InForce,
    Discarded,
}

/// A rotation's node and token, and the kind of share, passed along every step.
struct On<'a> {
    node: &'a NodeAddr,
    token: &'a Secret,
    kind: ShareKind,
    shares: u8,
    threshold: u8,
}

fn failed(step: &'static str) -> impl FnOnce(crate::vault::VaultError) -> RotationError {
    move |source| RotationError::Vault { step, source }
}

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    /// Rotates the shares of `kind` through the active node `node`.
    pub(super) async fn shares_on(
        &self,
        target: RotationTarget,
        node: &NodeAddr,
        token: &Secret,
        force: bool,
    ) -> Result<SharesReport, RotationError> {
        let kind = match target {
            RotationTarget::RecoveryShares => ShareKind::Recovery,
            _ => ShareKind::Unseal,
        };
        let status = self
            .vault
            .seal_status(node)
            .await
            .map_err(failed("cannot read the seal status"))?;
        let seal = SealKind::of(&status);
        if seal.shares() != kind {
            return Err(RotationError::SealMismatch {
                target: target.as_str(),
                seal: status.seal_type.clone(),
                instead: match seal.shares() {
                    ShareKind::Unseal => "unseal-shares",
                    ShareKind::Recovery => "recovery-shares",
                },
            });
        }
        let on = On {
            node,
            token,
            kind,
            shares: u8::try_from(status.shares).unwrap_or(u8::MAX),
            threshold: u8::try_from(status.threshold).unwrap_or(u8::MAX),
        };
        let stored = generations(&self.parameters, &self.shares.layout, kind).await?;
        let mut report = SharesReport {
            previous_generation: stored.in_force,
            generation: stored.in_force,
            rotated: false,
            settled: None,
            discarded: None,
            shares: on.shares,
            threshold: on.threshold,
        };
        if let Some(pending) = stored.pending {
            match self.settle(&on, pending).await? {
                Settled::InForce => {
                    report.generation = pending;
                    report.settled = Some(pending);
                    return Ok(report);
                }
                Settled::Discarded => report.discarded = Some(pending),
            }
        }
        let age = stored
            .in_force_since
            .and_then(|since| (Utc::now() - since).to_std().ok());
        if let Some(age) = age.filter(|age| *age < self.shares.max_age && !force) {
            info!(
                generation = stored.in_force,
                age_days = age.as_secs() / 86_400,
                max_age_days = self.shares.max_age.as_secs() / 86_400,
                "the shares in force are younger than the maximum age; not rotated"
            );
            return Ok(report);
        }
        let server = self
            .vault
            .share_rotation(node, token, kind)
            .await
            .map_err(failed("cannot read the share rotation in progress"))?;
        if server.started {
            // No stored generation goes with it: a run cut off before it stored the new
            // shares, or a rotation started by hand. Its new shares (if handed out) exist
            // nowhere; cancelling keeps the shares in force.
            warn!(progress = server.progress, "a share rotation with no stored generation was in progress; cancelled (the shares in force stay in force)");
            self.cancel(&on).await?;
        }
        let next = stored.in_force + 1;
        self.rotate_to(&on, stored.in_force, next).await?;
        report.generation = next;
        report.rotated = true;
        Ok(report)
    }

    /// A fresh rotation from generation `in_force` to `next`.
    async fn rotate_to(
        &self,
        on: &On<'_>,
        in_force: Generation,
        next: Generation,
    ) -> Result<(), RotationError> {
        let started = self
            .vault
            .start_share_rotation(on.node, on.token, on.kind, on.shares, on.threshold)
            .await
            .map_err(failed("cannot start the share rotation"))?;
        // The generation in force opens the seal, unless a snapshot taken under an older
        // one was restored since: then that one does (a refusal starts the count again,
        // under the same nonce).
        let mut handed = None;
        for generation in (1..=in_force).rev() {
            let current = match self.read_generation(on, generation, on.threshold).await {
                Ok(shares) => shares,
                Err(RotationError::SharesMissing { .. }) if generation < in_force => continue,
                Err(e) => {
                    self.cancel(on).await?;
                    return Err(e);
                }
            };
            if let Some(found) = self.enter(on, &started.nonce, &current).await? {
                if generation != in_force {
                    info!(generation, in_force, "the server holds an older generation (a restored snapshot's); rotating from it");
                }
                handed = Some(found);
                break;
            }
        }
        let Some((new, verification_nonce)) = handed else {
            self.cancel(on).await?;
            return Err(RotationError::SharesRejected {
                generation: in_force,
                folder: self.shares.layout.generation(on.kind, in_force),
            });
        };
        if let Err(e) = self.store_pending(on, next, &new).await {
            // Never verify shares that are not stored in both regions.
            self.cancel(on).await?;
            self.discard(on, next).await?;
            return Err(e);
        }
        info!(
            generation = next,
            "new shares stored as pending, in every region; verifying"
        );
        if let Some(nonce) = verification_nonce {
            if !self.verify(on, &nonce, &new).await? {
                self.cancel(on).await?;
                self.discard(on, next).await?;
                return Err(RotationError::VerificationRefused { generation: next });
            }
        }
        self.mark_in_force(on, next).await?;
        info!(
            previous_generation = in_force,
            generation = next,
            "shares rotated and verified; the new generation is in force, the previous one kept for older snapshots"
        );
        Ok(())
    }

    /// Settles a generation an earlier run stored and did not mark in force.
    async fn settle(&self, on: &On<'_>, pending: Generation) -> Result<Settled, RotationError> {
        let all = usize::from(on.shares);
        let stored = match read_shares(
            &self.parameters,
            &self.shares.layout,
            (on.kind, pending),
            all,
            all,
        )
        .await
        {
            Ok(shares) => shares,
            // Cut off while storing it: never entered back, worthless.
            Err(SharesMissing::Missing { found, .. }) => {
                warn!(
                    generation = pending,
                    found, "a pending generation was stored only in part; discarded"
                );
                self.cancel(on).await?;
                self.discard(on, pending).await?;
                return Ok(Settled::Discarded);
            }
            Err(SharesMissing::Parameter(e)) => return Err(e.into()),
        };
        // Its copies in the DR region, should the earlier run have stopped between the
        // regions.
        self.copy_to_dr(on, pending, &stored).await?;
        let server = self
            .vault
            .share_rotation(on.node, on.token, on.kind)
            .await
            .map_err(failed("cannot read the share rotation in progress"))?;
        if server.verification_nonce.is_some() {
            let nonce = self
                .vault
                .restart_verification(on.node, on.token, on.kind)
                .await
                .map_err(failed("cannot restart the verification of the new shares"))?;
            if let Some(nonce) = nonce {
                if self.verify(on, &nonce, &stored).await? {
                    info!(
                        generation = pending,
                        "verification of the pending generation resumed and completed"
                    );
                    self.mark_in_force(on, pending).await?;
                    return Ok(Settled::InForce);
                }
                warn!(generation = pending, "the rotation the server waits on is not the stored pending generation's; cancelled");
                self.cancel(on).await?;
                self.discard(on, pending).await?;
                return Ok(Settled::Discarded);
            }
        }
        if server.started {
            self.cancel(on).await?;
        }
        // The server holds no rotation for these shares: it forgot it (they are
        // worthless), or verified them before this product marked them (they are in
        // force). A probe rotation reaches its threshold only with shares in force.
        let probe = self
            .vault
            .start_share_rotation(on.node, on.token, on.kind, on.shares, on.threshold)
            .await
            .map_err(failed("cannot start a probe rotation"))?;
        let opened = self
            .enter(on, &probe.nonce, &stored[..usize::from(on.threshold)])
            .await?
            .is_some();
        self.cancel(on).await?;
        if opened {
            info!(
                generation = pending,
                "the pending generation was verified before it was marked; marked in force now"
            );
            self.mark_in_force(on, pending).await?;
            Ok(Settled::InForce)
        } else {
            warn!(generation = pending, "the server forgot the rotation of the pending generation (a restart or a new leader): its shares are worthless and deleted; the shares in force are unchanged");
            self.discard(on, pending).await?;
            Ok(Settled::Discarded)
        }
    }

    /// Enters `shares` into the rotation `nonce`: the new shares (and their verification
    /// nonce) once the threshold is reached, `None` when the server refused them there.
    async fn enter(
        &self,
        on: &On<'_>,
        nonce: &str,
        shares: &[Secret],
    ) -> Result<Option<(Vec<Secret>, Option<String>)>, RotationError> {
        for share in shares {
            match self
                .vault
                .submit_rotation_share(on.node, on.token, on.kind, nonce, share)
                .await
            {
                Ok(RotationStep::Progress(_)) => {}
                Ok(RotationStep::NewShares {
                    shares,
                    verification_nonce,
                }) => return Ok(Some((shares, verification_nonce))),
                Err(e) if e.status() == Some(400) => return Ok(None),
                Err(e) => return Err(failed("cannot enter a share into the rotation")(e)),
            }
        }
        Ok(None)
    }

    /// Enters the new shares back: whether the server took them (they are in force).
    async fn verify(
        &self,
        on: &On<'_>,
        nonce: &str,
        shares: &[Secret],
    ) -> Result<bool, RotationError> {
        for share in &shares[..usize::from(on.threshold).min(shares.len())] {
            match self
                .vault
                .submit_verification_share(on.node, on.token, on.kind, nonce, share)
                .await
            {
                Ok(VerifyStep::Progress(_)) => {}
                Ok(VerifyStep::Complete) => return Ok(true),
                Err(e) if e.status() == Some(400) => return Ok(false),
                Err(e) => return Err(failed("cannot enter a new share back (verification)")(e)),
            }
        }
        Ok(false)
    }

    async fn cancel(&self, on: &On<'_>) -> Result<(), RotationError> {
        self.vault
            .cancel_share_rotation(on.node, on.token, on.kind)
            .await
            .map_err(failed("cannot cancel the share rotation"))
    }
}
