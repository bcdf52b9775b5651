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
    /// Not unsealed, nor initialised: the cluster has no initialised node left (the DR
    /// region's fence emptied this primary's group, or dr-failover emptied this standby's
    /// to a pilot light), and dr-failover rebuilds the cluster in this node from a
    /// snapshot.
    LeftForRebuild,
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
        let rejected = |e| match e {
            UnsealError::Rejected { node, tried } => LifecycleError::SharesRejected {
                node,
                tried,
                path: keys.shares(ShareKind::Unseal),
            },
            UnsealError::Vault { node, source } => vault_step(format!("unsealing {node}"))(source),
        };
        // The generation in force first; then a pending one (a rotation saw it verified
        // and was cut off before it marked it); then older ones, newest first (a restored
        // snapshot taken before a rotation holds the root key under its own generation).
        let mut unsealed = None;
        for (i, generation) in stored.unseal_order().into_iter().enumerate() {
            let shares = match self.generation_shares(node, needed, generation).await {
                Ok(shares) => shares,
                // Only the generation in force must be whole; an older one may be
                // partly deleted by an operator.
                Err(LifecycleError::MissingShares { .. }) if i > 0 => continue,
                Err(e) => return Err(e),
            };
            match unseal_with(&self.vault, node, &shares).await {
                Ok(done) => {
                    if generation != stored.in_force {
                        info!(node = %node, generation, in_force = stored.in_force, "unsealed with a generation of shares other than the newest in force (a pending one, or a restored older snapshot's)");
                    }
                    unsealed = Some(done);
                    break;
                }
                Err(UnsealError::Rejected { .. }) => continue,
                Err(e) => return Err(rejected(e)),
            }
        }
        let unsealed = unsealed.ok_or_else(|| {
            rejected(UnsealError::Rejected {
                node: node.clone(),
                tried: needed,
            })
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
