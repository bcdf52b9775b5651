//! Unsealing one node: with the Shamir shares stored in SSM, or, under auto-unseal, by
//! verifying that the seal did it.

use tokio::time::Instant;
use tracing::info;

use super::{vault_step, LifecycleError, NodeLifecycle, POLL_INTERVAL};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        polling::{poll_until, Look, WaitExpired},
        ports::ParameterStore,
    },
    ids::NodeAddr,
    keys::{
        generations, read_shares, unseal_with, Generation, SealKind, ShareKind, SharesMissing,
        UnsealError,
    },
};

/// How a node came to be unsealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unsealed {
    /// It was unsealed already.
    Already,
    /// This run entered the Shamir shares.
    WithShares,
    /// Auto-unseal did it; this run checked.
    ByAutoUnseal,
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Converges `node` to unsealed. A half-entered unseal from an earlier run is reset
    /// first, because a wrong or repeated share counts as progress.
    pub(crate) async fn ensure_unsealed(
        &self,
        node: &NodeAddr,
        deadline: Instant,
    ) -> Result<Unsealed, LifecycleError> {
        let status = self.seal_status_of(node).await?;
        if !status.sealed {
            return Ok(Unsealed::Already);
        }
        if let SealKind::Auto(seal) = SealKind::of(&status) {
            let waited = self
                .wait_until_unsealed(node, &format!("auto-unseal of {node}"), deadline)
                .await;
            return match waited {
                Ok(()) => {
                    info!(node = %node, seal = %seal, "auto-unseal verified");
                    Ok(Unsealed::ByAutoUnseal)
                }
                Err(expired) => Err(LifecycleError::AutoUnsealFailed {
                    node: node.clone(),
                    seal,
                    last: expired.last,
                }),
            };
        }
        let needed = if status.threshold > 0 {
            status.threshold as usize
        } else {
            usize::from(self.settings.key_threshold)
        };
        let keys = self.settings.keys();
        let stored = generations(&self.parameters, &keys, ShareKind::Unseal).await?;
        let shares = self
            .generation_shares(node, needed, stored.in_force)
            .await?;
        let rejected = |e| match e {
            UnsealError::Rejected { node, tried } => LifecycleError::SharesRejected {
                node,
                tried,
                path: keys.shares(ShareKind::Unseal),
            },
            UnsealError::Vault { node, source } => vault_step(format!("unsealing {node}"))(source),
        };
        let unsealed = match unseal_with(&self.vault, node, &shares).await {
            // A rotation that saw its new generation verified and was cut off before it
            // marked it in force: the pending generation is the one the server holds.
            Err(UnsealError::Rejected { .. }) if stored.pending.is_some() => {
                let pending = stored.pending.unwrap_or_default();
                let shares = self.generation_shares(node, needed, pending).await?;
                let unsealed = unseal_with(&self.vault, node, &shares)
                    .await
                    .map_err(rejected)?;
                info!(node = %node, generation = pending, "unsealed with the pending generation of shares (a rotation verified it and has not marked it in force yet)");
                unsealed
            }
            other => other.map_err(rejected)?,
        };
        if unsealed {
            return Ok(Unsealed::WithShares);
        }
        // A node that has just joined takes the threshold, then finishes joining (it
        // answers the leader's challenge) before it reports unsealed.
        self.wait_until_unsealed(node, &format!("{node} to finish unsealing"), deadline)
            .await?;
        info!(node = %node, "unsealed with the stored shares");
        Ok(Unsealed::WithShares)
    }

    /// Polls the seal status until `node` reports unsealed (what it last saw, if not).
    async fn wait_until_unsealed(
        &self,
        node: &NodeAddr,
        what: &str,
        deadline: Instant,
    ) -> Result<(), WaitExpired> {
        let looked = poll_until(
            what,
            self.settings.node_api_timeout,
            deadline,
            POLL_INTERVAL,
            || async {
                Ok::<_, std::convert::Infallible>(match self.vault.seal_status(node).await {
                    Ok(s) if !s.sealed => Look::Ready(()),
                    Ok(s) => Look::NotYet(format!(
                        "sealed ({} seal), progress {}/{}",
                        s.seal_type, s.progress, s.threshold
                    )),
                    Err(e) => Look::NotYet(e.to_string()),
                })
            },
        )
        .await;
        match looked {
            Ok(waited) => waited,
            Err(never) => match never {},
        }
    }

    /// `needed` Shamir shares of the generation in force, or
    /// [`LifecycleError::MissingShares`] naming the parameters that are not there.
    /// Checked before a join too, so a node is never joined when it could not be unsealed.
    pub(crate) async fn stored_unseal_shares(
        &self,
        node: &NodeAddr,
        needed: usize,
    ) -> Result<Vec<crate::secret::Secret>, LifecycleError> {
        let stored =
            generations(&self.parameters, &self.settings.keys(), ShareKind::Unseal).await?;
        self.generation_shares(node, needed, stored.in_force).await
    }

    /// `needed` Shamir shares of one generation.
    async fn generation_shares(
        &self,
        node: &NodeAddr,
        needed: usize,
        generation: Generation,
    ) -> Result<Vec<crate::secret::Secret>, LifecycleError> {
        let most = usize::from(self.settings.key_shares);
        read_shares(
            &self.parameters,
            &self.settings.keys(),
            (ShareKind::Unseal, generation),
            needed,
            most,
        )
        .await
        .map_err(|e| match e {
            SharesMissing::Missing {
                needed,
                found,
                missing,
                ..
            } => LifecycleError::MissingShares {
                node: node.clone(),
                needed,
                found,
                missing,
            },
            SharesMissing::Parameter(e) => e.into(),
        })
    }
}
