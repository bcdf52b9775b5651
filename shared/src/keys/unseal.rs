//! Reading the threshold of shares from SSM, and the one unseal procedure: reset what an
//! earlier run left half-entered, enter the shares, report shares that are not this
//! cluster's.

use tracing::info;

use super::{Generation, KeyLayout, ShareKind};
use crate::{
    cluster::{
        node::{NodeApi, VaultError},
        ports::{ParameterError, ParameterStore},
    },
    ids::NodeAddr,
    secret::Secret,
};

/// Fewer shares are stored than the threshold needs, or SSM could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SharesMissing {
    /// These parameters are not there.
    #[error("{needed} shares are needed and {found} are stored under {folder} (missing: {})", missing.join(", "))]
    Missing {
        /// Where they were looked for.
        folder: String,
        /// The threshold.
        needed: usize,
        /// How many were found.
        found: usize,
        /// The parameters looked for and not found.
        missing: Vec<String>,
    },
    /// SSM failed or refused.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
}

/// `needed` shares of `kind` and `generation` from `keys`, trying share 1 up to `most`. A
/// missing share is skipped (any `needed` of them reconstruct the key); an SSM failure
/// stops at once.
pub async fn read_shares(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
    (kind, generation): (ShareKind, Generation),
    needed: usize,
    most: usize,
) -> Result<Vec<Secret>, SharesMissing> {
    let mut shares = Vec::with_capacity(needed);
    let mut missing = Vec::new();
    for n in 1..=most.max(needed) {
        if shares.len() == needed {
            break;
        }
        let name = keys.generation_share(kind, generation, n);
        match parameters.secret(&name).await {
            Ok(share) => shares.push(share),
            Err(ParameterError::Missing { .. }) => missing.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    if shares.len() < needed {
        return Err(SharesMissing::Missing {
            folder: keys.generation(kind, generation),
            needed,
            found: shares.len(),
            missing,
        });
    }
    Ok(shares)
}

/// Why the shares did not unseal a node. No variant holds a share.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    /// The node took the threshold and refused: the shares are not this cluster's.
    #[error("node {node} refused the {tried} shares entered: they are not its cluster's")]
    Rejected {
        /// The node.
        node: NodeAddr,
        /// How many were entered.
        tried: usize,
    },
    /// A call failed.
    #[error("unsealing {node} failed")]
    Vault {
        /// The node.
        node: NodeAddr,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
}

/// Enters `shares` into `node` after resetting any progress an earlier run left (a
/// wrong or repeated share counts as progress). Returns whether the node reports
/// unsealed now; a node that has just joined takes the threshold, then finishes joining
/// before it does, so `false` means "wait", not "failed".
pub async fn unseal_with(
    vault: &(impl NodeApi + ?Sized),
    node: &NodeAddr,
    shares: &[Secret],
) -> Result<bool, UnsealError> {
    let failed = |source| UnsealError::Vault {
        node: node.clone(),
        source,
    };
    let status = vault.seal_status(node).await.map_err(failed)?;
    if !status.sealed {
        return Ok(true);
    }
    if status.progress > 0 {
        vault.unseal_reset(node).await.map_err(failed)?;
    }
    for share in shares {
        match vault.unseal(node, share).await {
            Ok(after) if !after.sealed => {
                info!(node = %node, "unsealed with the stored shares");
                return Ok(true);
            }
            Ok(_) => {}
            // 400 at the threshold: the shares do not reconstruct this cluster's key.
            Err(e) if e.status() == Some(400) => {
                return Err(UnsealError::Rejected {
                    node: node.clone(),
                    tried: shares.len(),
                })
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{capture_logs, FakeCluster, FakeParameters};

    #[tokio::test]
    async fn a_half_entered_unseal_is_reset_and_the_node_unsealed() {
        let cluster = FakeCluster::healthy(&["i-1"]);
        cluster.seal("i-1");
        let node = cluster.addr("i-1");
        let wrong = Secret::new("d3JvbmctY2FuYXJ5LXNoYXJlLTAxMjM0NTY3ODlhYmM=");
        cluster
            .unseal(&node, &wrong)
            .await
            .expect("counts as progress");
        let shares = cluster.shares();
        assert!(unseal_with(&cluster, &node, &shares[..3])
            .await
            .expect("unseal"));
        assert!(!cluster.is_sealed("i-1"));
        assert_eq!(
            cluster.calls("unseal-reset i-1"),
            1,
            "the wrong share was forgotten"
        );
    }

    #[tokio::test]
    async fn another_clusters_shares_are_rejected_and_leak_nothing() {
        let logs = capture_logs();
        let cluster = FakeCluster::healthy(&["i-1"]);
        cluster.seal("i-1");
        let node = cluster.addr("i-1");
        let foreign: Vec<Secret> = (1..=3)
            .map(|n| Secret::new(format!("canary-share-{n}")))
            .collect();
        let err = unseal_with(&cluster, &node, &foreign)
            .await
            .expect_err("rejected");
        assert!(
            matches!(err, UnsealError::Rejected { tried: 3, .. }),
            "{err}"
        );
        assert!(cluster.is_sealed("i-1"));
        for text in [
            logs.contents(),
            crate::error_chain(&err),
            format!("{err:?}"),
        ] {
            assert!(!text.contains("canary-share"), "share leaked: {text}");
        }
    }

    #[tokio::test]
    async fn missing_shares_are_named_and_a_gap_is_skipped() {
        let keys = KeyLayout::new("/p", "prod");
        let parameters = FakeParameters::with(&[
            ("/p/prod/unseal/share-1", "a"),
            ("/p/prod/unseal/share-3", "c"),
        ]);
        let two = read_shares(&parameters, &keys, (ShareKind::Unseal, 1), 2, 5)
            .await
            .expect("two");
        assert_eq!(two.len(), 2);
        let err = read_shares(&parameters, &keys, (ShareKind::Unseal, 1), 3, 5)
            .await
            .expect_err("only two stored");
        let text = err.to_string();
        assert!(
            text.contains("/p/prod/unseal/share-2") && text.contains("3 shares are needed and 2"),
            "{text}"
        );
    }
}
