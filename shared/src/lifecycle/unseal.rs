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
    keys::{read_shares, unseal_with, SealKind, ShareKind, SharesMissing, UnsealError},
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
        let shares = self.stored_unseal_shares(node, needed).await?;
        let unsealed = unseal_with(&self.vault, node, &shares)
            .await
            .map_err(|e| match e {
                UnsealError::Rejected { node, tried } => LifecycleError::SharesRejected {
                    node,
                    tried,
                    path: self.settings.keys().shares(ShareKind::Unseal),
                },
                UnsealError::Vault { node, source } => {
                    vault_step(format!("unsealing {node}"))(source)
                }
            })?;
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

    /// `needed` Shamir shares from SSM, or [`LifecycleError::MissingShares`] naming the
    /// parameters that are not there. Checked before a join too, so a node is never
    /// joined when it could not be unsealed.
    pub(crate) async fn stored_unseal_shares(
        &self,
        node: &NodeAddr,
        needed: usize,
    ) -> Result<Vec<crate::secret::Secret>, LifecycleError> {
        let most = usize::from(self.settings.key_shares);
        read_shares(
            &self.parameters,
            &self.settings.keys(),
            ShareKind::Unseal,
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
