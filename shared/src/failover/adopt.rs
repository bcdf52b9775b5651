//! What the standby needs from the primary once it holds the primary's data: the
//! primary's shares of the snapshot's generation, stored as the standby's newest
//! generation and marked in force (its node-lifecycle unseals restarted and new nodes
//! with the generation in force), and the primary's AppRole credentials (copied to the
//! DR region by the primary's reconcile) in place of the standby's own, which the
//! restored data does not know. Each write is skipped when it is already true.

use tokio::time::Instant;
use tracing::info;

use super::{
    record::{FailoverRecord, Phase},
    DrFailover, FailoverError,
};
use crate::{
    cluster::{
        node::NodeApi,
        policies::FUNCTIONS,
        ports::{ParameterError, ParameterStore},
    },
    error_chain,
    keys::{generations, read_shares, SealKind},
};

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// The shares, then the AppRole credentials.
    pub(super) async fn ensure_adopted(
        &self,
        record: &FailoverRecord,
        deadline: Instant,
    ) -> Result<String, FailoverError> {
        let shares = self.ensure_shares_adopted(record, deadline).await?;
        let approles = self.ensure_approles_adopted().await?;
        Ok(format!("{shares}; {approles}"))
    }

    /// The standby's own parameters get the primary's shares of the snapshot's
    /// generation as a new generation, marked in force: its node-lifecycle unseals
    /// restarted and new nodes with them. Already there: nothing written.
    async fn ensure_shares_adopted(
        &self,
        record: &FailoverRecord,
        deadline: Instant,
    ) -> Result<String, FailoverError> {
        let (active, _) = self.wait_for_active(deadline).await?;
        let status =
            self.vault
                .seal_status(&active.addr)
                .await
                .map_err(|e| FailoverError::Phase {
                    phase: Phase::Adopted,
                    reason: error_chain(&e),
                    retry_helps: true,
                })?;
        let (needed, most) = (status.threshold as usize, status.shares as usize);
        // An auto-unseal standby (the primary's seal): the primary's recovery shares.
        let kind = SealKind::of(&status).shares();
        let from = &self.settings.primary_keys;
        let to = &self.settings.standby_keys;
        let shares = read_shares(
            &self.parameters,
            from,
            (kind, record.share_generation),
            most,
            most,
        )
        .await
        .map_err(|e| FailoverError::Phase {
            phase: Phase::Adopted,
            reason: format!(
                "the primary's shares of generation {}: {}",
                record.share_generation,
                error_chain(&e)
            ),
            retry_helps: false,
        })?;
        let stored = generations(&self.parameters, to, kind).await?;
        let first = self
            .parameters
            .secret(&to.generation_share(kind, stored.in_force, 1))
            .await
            .ok();
        if first.as_ref().map(|s| s.expose()) == shares.first().map(|s| s.expose()) {
            return Ok(format!(
                "generation {} of {} holds them already",
                stored.in_force, to
            ));
        }
        let next = stored.pending.unwrap_or(stored.in_force) + 1;
        for (n, share) in shares.iter().enumerate() {
            self.parameters
                .put_new_secret(
                    &to.generation_share(kind, next, n + 1),
                    share,
                    &self.settings.kms_key,
                )
                .await?;
        }
        self.parameters
            .put_new_secret(
                &to.generation_in_force(kind, next),
                &crate::secret::Secret::new(chrono::Utc::now().to_rfc3339()),
                &self.settings.kms_key,
            )
            .await?;
        Ok(format!(
            "the primary's {most} {} shares of generation {} (threshold {needed}) stored as generation {next} of {to}, in force",
            match kind {
                crate::keys::ShareKind::Unseal => "unseal",
                crate::keys::ShareKind::Recovery => "recovery",
            },
            record.share_generation
        ))
    }

    /// Every function's role ID and secret ID found under the primary's path in this
    /// region replaces the standby's. None found: said, not an error (the standby's
    /// functions then cannot log in until an operator gives them credentials).
    async fn ensure_approles_adopted(&self) -> Result<String, FailoverError> {
        let from = &self.settings.primary_keys;
        let to = &self.settings.standby_keys;
        let (mut copied, mut same) = (Vec::new(), 0);
        for (function, _) in FUNCTIONS {
            for which in ["role-id", "secret-id"] {
                let value = match self.parameters.secret(&from.approle(function, which)).await {
                    Ok(value) => value,
                    Err(ParameterError::Missing { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                let name = to.approle(function, which);
                match self.parameters.secret(&name).await {
                    Ok(current) if current.expose() == value.expose() => same += 1,
                    Ok(_) | Err(ParameterError::Missing { .. }) => {
                        self.parameters
                            .replace_secret(&name, &value, &self.settings.kms_key)
                            .await?;
                        copied.push(format!("{function}/{which}"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        info!(
            copied = copied.len(),
            already = same,
            "the primary's AppRole credentials adopted"
        );
        Ok(match (copied.len(), same) {
            (0, 0) => format!("no AppRole credentials of the primary under {from} in this region: the standby's functions cannot log in to the restored data until they get some"),
            (0, _) => "the AppRole credentials are the primary's already".into(),
            (n, _) => format!("{n} AppRole credentials of the primary copied under {to}"),
        })
    }
}
