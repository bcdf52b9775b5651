//! Where a rotation keeps the generations of shares: reading one, storing a new one in
//! the primary and the DR region, marking it in force (DR region first), deleting a
//! pending one that the server never put in force.

use chrono::Utc;

use super::On;
use crate::{
    cluster::{
        node::NodeApi,
        ports::{Fleet, ParameterStore, Stored},
    },
    keys::{read_shares, Generation},
    rotation::{CredentialRotation, RotationError},
    secret::Secret,
};

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    /// `needed` shares of `generation`, all of them stored.
    pub(super) async fn read_generation(
        &self,
        on: &On<'_>,
        generation: Generation,
        needed: u8,
    ) -> Result<Vec<Secret>, RotationError> {
        read_shares(
            &self.parameters,
            &self.shares.layout,
            (on.kind, generation),
            usize::from(needed),
            usize::from(on.shares),
        )
        .await
        .map_err(|source| RotationError::SharesMissing { generation, source })
    }

    /// Stores the new shares as generation `next`: the primary region, then the DR
    /// region.
    pub(super) async fn store_pending(
        &self,
        on: &On<'_>,
        next: Generation,
        shares: &[Secret],
    ) -> Result<(), RotationError> {
        let layout = &self.shares.layout;
        for (n, share) in shares.iter().enumerate() {
            let name = layout.generation_share(on.kind, next, n + 1);
            if self
                .parameters
                .put_new_secret(&name, share, &self.shares.kms_key)
                .await?
                == Stored::AlreadyExists
            {
                return Err(RotationError::GenerationConflict { name });
            }
        }
        self.copy_to_dr(on, next, shares).await
    }

    /// Copies a generation's shares to the DR region; a copy there must hold the same
    /// value.
    pub(super) async fn copy_to_dr(
        &self,
        on: &On<'_>,
        generation: Generation,
        shares: &[Secret],
    ) -> Result<(), RotationError> {
        let Some(dr) = &self.shares.dr else {
            return Ok(());
        };
        for (n, share) in shares.iter().enumerate() {
            let name = self
                .shares
                .layout
                .generation_share(on.kind, generation, n + 1);
            if dr
                .parameters
                .put_new_secret(&name, share, &dr.kms_key)
                .await?
                == Stored::AlreadyExists
                && dr.parameters.secret(&name).await? != *share
            {
                return Err(RotationError::GenerationConflict {
                    name: format!("{name} (DR region)"),
                });
            }
        }
        Ok(())
    }

    /// Writes the `in-force` mark of `generation`: the DR region first, so that a run cut
    /// off between the two finds it still pending in the primary and settles it again.
    pub(super) async fn mark_in_force(
        &self,
        on: &On<'_>,
        generation: Generation,
    ) -> Result<(), RotationError> {
        let name = self.shares.layout.generation_in_force(on.kind, generation);
        let when = Secret::new(Utc::now().to_rfc3339());
        if let Some(dr) = &self.shares.dr {
            dr.parameters
                .put_new_secret(&name, &when, &dr.kms_key)
                .await?;
        }
        self.parameters
            .put_new_secret(&name, &when, &self.shares.kms_key)
            .await?;
        Ok(())
    }

    /// Deletes a pending generation: the DR region first, then the primary, each from
    /// the last share to the first (the first share is what marks it pending, so a
    /// deletion cut off half-way is found and finished by the next run).
    pub(super) async fn discard(
        &self,
        on: &On<'_>,
        generation: Generation,
    ) -> Result<(), RotationError> {
        let layout = &self.shares.layout;
        let names: Vec<String> = (1..=usize::from(on.shares).max(1))
            .rev()
            .map(|n| layout.generation_share(on.kind, generation, n))
            .collect();
        if let Some(dr) = &self.shares.dr {
            for name in &names {
                dr.parameters.delete(name).await?;
            }
        }
        for name in &names {
            self.parameters.delete(name).await?;
        }
        Ok(())
    }
}
