//! A cluster rebuilt from another cluster's snapshot when it has no initialised node
//! left: dr-failover's failback into a primary whose group its fence emptied. A new node
//! (its node-lifecycle leaves it uninitialised while that failback is asked for) is
//! initialised with throwaway keys (the source's share count and threshold, held in this
//! run's memory only),
//! unsealed, and sent the snapshot with `force`; it seals itself with the snapshot's
//! keyring and is unsealed with the source's shares of the snapshot's generation. There
//! is nothing to take a safety snapshot of: the source still holds the data.
//!
//! A run cut off half-way is resumed by the next: an initialised node found sealed is
//! unsealed with the source's shares (the snapshot was sent), one found unsealed is
//! rebuilt once this function's login works in it (the restored data knows the adopted
//! credentials; the throwaway cluster knows none). A node initialised by a run cut off
//! before its send holds throwaway data whose keys are gone: refused by name, nothing
//! changed. `sys/init` is sent only with time left for a send and the wait after it.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{error::Undo, recover::checked_stream, RestoreError, SnapshotRestore};
use crate::{
    cluster::{
        node::NodeApi,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterStore},
    },
    error_chain,
    events::SnapshotSelector,
    keys::{unseal_with, SealKind, UnsealError},
    snapshots::{
        store::Location,
        verify::{read_and_check, stored, VerifyError},
    },
};

/// How often the rebuilt node is asked how it stands.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a resumed rebuild waits for an unsealed node that refuses this function's
/// login to seal itself (an earlier run cut off just after its send: the node seals
/// about 5 s after it) before taking its keys for lost.
const RESUMED_SEAL_WAIT: Duration = Duration::from_secs(30);

/// Time kept for the send, at the least, before `sys/init` is sent: a snapshot of 100 MB
/// is sent in about a second here, and a run cut off between the init and the end of the
/// send leaves a node whose throwaway keys are gone (its instance is then replaced; the
/// data is safe in the source).
const SEND_RESERVE: Duration = Duration::from_secs(60);

/// What a rebuild left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The node the cluster was rebuilt in, active now.
    pub node: FleetNode,
    /// The Raft index it applied.
    pub applied_index: u64,
    /// This run initialised the node and sent the snapshot (false: an earlier run had).
    pub initialised_now: bool,
}

impl<N: NodeApi, P: ParameterStore> SnapshotRestore<N, P> {
    /// Rebuilds the cluster from `snapshot` (another cluster's, catalogued here) in an
    /// in-service node that is not initialised, when none of the group's nodes is. The
    /// snapshot is read back whole and checked, and the source's shares looked up,
    /// before anything is sent.
    ///
    /// `(shares, threshold)` are the source cluster's: the throwaway keys are made with
    /// the same counts, because a node keeps the seal configuration it was initialised
    /// with until it restarts, and unseals after the restore only with the source's
    /// shares entered under it (measured: a 1-of-1 throwaway refused the source's
    /// shares).
    pub async fn rebuild(
        &self,
        snapshot: &Location,
        (shares, threshold): (u8, u8),
        deadline: Instant,
    ) -> Result<Rebuilt, RestoreError> {
        let selector = SnapshotSelector::Exact {
            key: snapshot.key.clone(),
            version_id: snapshot.version_id.clone().unwrap_or_default(),
        };
        let chosen = self.choose(&selector, true).await?;
        let Some(entry) = chosen.entry.clone() else {
            return Err(self.not_catalogued(&chosen).await?);
        };
        let source = chosen.source_cluster.clone();
        let generation = entry.share_generation;
        let members = self.fleet.in_service().await?;
        let healths = join_all(members.iter().map(|m| self.vault.health(&m.addr))).await;
        let initialised = members
            .iter()
            .zip(&healths)
            .find(|(_, h)| h.as_ref().is_ok_and(|h| h.initialized))
            .map(|(m, _)| m.clone());
        if let Some(node) = initialised {
            info!(node = %node.instance, "a node of the group is initialised: an earlier run's rebuild, resumed");
            let limit = RESUMED_SEAL_WAIT.min(self.settings.healthy_timeout);
            let applied_index = self
                .rebuilt(&node, &source, generation, limit, true, deadline)
                .await?;
            return Ok(Rebuilt {
                node,
                applied_index,
                initialised_now: false,
            });
        }
        let Some(node) = members
            .iter()
            .zip(&healths)
            .find(|(_, h)| h.is_ok())
            .map(|(m, _)| m.clone())
        else {
            return Err(RestoreError::NoNodeToRebuild {
                asked: members.len(),
            });
        };
        let facts = read_and_check(
            self.store.as_ref(),
            &chosen.object,
            Some((entry.sha256.as_str(), entry.bytes)),
        )
        .await?;
        // An auto-unseal node (the source's seal: its KMS key's replica) is initialised
        // with recovery shares and opens by itself, now and after the restore.
        let status = self.vault.seal_status(&node.addr).await.map_err(|source| {
            RestoreError::SealStatus {
                node: node.addr.to_string(),
                source,
            }
        })?;
        let kind = SealKind::of(&status);
        let shamir = kind == SealKind::Shamir;
        // Before anything is sent: the source's shares of the snapshot's generation are
        // there (as many as its threshold, which only the restored node tells).
        self.source_share_exists(&source, kind.shares(), generation)
            .await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let needed = SEND_RESERVE.min(self.settings.send_timeout) + self.settings.healthy_timeout;
        if left < needed {
            return Err(RestoreError::NoTimeToRebuild {
                left_s: left.as_secs(),
                needed_s: needed.as_secs(),
            });
        }
        let init = self
            .vault
            .init(&node.addr, shares, threshold, !shamir)
            .await
            .map_err(|source| RestoreError::RebuildInit {
                node: node.addr.to_string(),
                source,
            })?;
        info!(node = %node.instance, shamir, "initialised with throwaway keys (held in memory only, until the snapshot replaces them)");
        if shamir {
            self.unseal(&node, &init.shares, &Undo::NewCluster).await?;
        }
        self.wait_throwaway_active(&node, deadline).await?;
        let body = self
            .store
            .open(&stored(&chosen.location))
            .await
            .map_err(|source| VerifyError::Read {
                object: chosen.location.clone(),
                source,
            })?;
        info!(node = %node.addr, object = %chosen.location, "sending the snapshot to the new node, forced");
        self.vault
            .restore_snapshot(
                &node.addr,
                &init.root_token,
                Box::pin(checked_stream(body, facts.sha256.clone())),
                true,
                self.settings.send_timeout,
            )
            .await
            .map_err(|source| RestoreError::Send {
                object: chosen.location.clone(),
                node: node.addr.to_string(),
                undo: Undo::NewCluster,
                source,
            })?;
        drop(init);
        let applied_index = self
            .rebuilt(
                &node,
                &source,
                generation,
                self.settings.healthy_timeout,
                false,
                deadline,
            )
            .await?;
        info!(node = %node.instance, object = %chosen.location, applied_index, "cluster rebuilt from the snapshot");
        Ok(Rebuilt {
            node,
            applied_index,
            initialised_now: true,
        })
    }

    /// At least one of `source`'s shares of `kind` and `generation` is stored (its
    /// newest generation when the entry predates them).
    async fn source_share_exists(
        &self,
        source: &str,
        kind: crate::keys::ShareKind,
        generation: Option<crate::keys::Generation>,
    ) -> Result<(), RestoreError> {
        let keys = crate::keys::KeyLayout::new(&self.settings.ssm_prefix, source);
        let generation = match generation {
            Some(generation) => generation,
            None => {
                crate::keys::generations(&self.parameters, &keys, kind)
                    .await?
                    .in_force
            }
        };
        crate::keys::read_shares(&self.parameters, &keys, (kind, generation), 1, 1)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                crate::keys::SharesMissing::Missing {
                    folder,
                    needed,
                    found,
                    ..
                } => RestoreError::SourceSharesMissing {
                    source_cluster: source.to_owned(),
                    path: folder,
                    needed,
                    found,
                },
                crate::keys::SharesMissing::Parameter(e) => e.into(),
            })
    }

    /// Waits until the throwaway cluster's node is active (a one-node cluster elects
    /// itself).
    async fn wait_throwaway_active(
        &self,
        node: &FleetNode,
        deadline: Instant,
    ) -> Result<(), RestoreError> {
        poll_until(
            "the new node to be active with its throwaway keys",
            self.settings.healthy_timeout,
            deadline,
            POLL_INTERVAL,
            || async {
                Ok::<_, RestoreError>(match self.vault.health(&node.addr).await {
                    Ok(h) if h.initialized && !h.sealed && !h.standby => Look::Ready(()),
                    Ok(h) => Look::NotYet(format!("sealed {}, standby {}", h.sealed, h.standby)),
                    Err(e) => Look::NotYet(error_chain(&e)),
                })
            },
        )
        .await?
        .map_err(|source| RestoreError::NotHealthy {
            undo: Undo::NewCluster,
            source,
        })
    }

    /// Waits (at most `limit`) until `node` holds the snapshot: sealed by it, then
    /// unsealed with the source's shares (as many as the restored seal configuration's
    /// threshold), active, and this function's login accepted. The applied index.
    /// `resumed`: an earlier run's node, whose keys are taken for lost if it never seals
    /// and never accepts the login, or refuses the source's shares.
    async fn rebuilt(
        &self,
        node: &FleetNode,
        source: &str,
        generation: Option<crate::keys::Generation>,
        limit: Duration,
        resumed: bool,
        deadline: Instant,
    ) -> Result<u64, RestoreError> {
        // The instance, which the operator terminates, and its address.
        let lost = |why: String| RestoreError::RebuildKeysLost {
            node: format!("{} ({})", node.instance, node.addr),
            why,
        };
        let waited = poll_until(
            "the rebuilt node to hold the snapshot",
            limit,
            deadline,
            POLL_INTERVAL,
            || async {
                let status = match self.vault.seal_status(&node.addr).await {
                    Ok(status) => status,
                    Err(e) => return Ok(Look::NotYet(format!("no answer: {}", error_chain(&e)))),
                };
                if status.sealed && SealKind::of(&status) != SealKind::Shamir {
                    return Ok(Look::NotYet(
                        "sealed by the snapshot; its seal opens it by itself".into(),
                    ));
                }
                if status.sealed {
                    let shares = self.source_shares(node, source, generation).await?;
                    return match unseal_with(&self.vault, &node.addr, &shares).await {
                        Ok(_) => {
                            info!(node = %node.addr, "unsealed with the source cluster's shares");
                            Ok(Look::NotYet("unsealed; waiting for it to be active".into()))
                        }
                        Err(UnsealError::Rejected { tried, .. }) if resumed => Err(lost(
                            format!("it is sealed and refuses the {tried} shares of {source}"),
                        )),
                        Err(UnsealError::Rejected { tried, .. }) => {
                            Err(RestoreError::SharesRejected {
                                node: node.addr.to_string(),
                                tried,
                                undo: Undo::NewCluster,
                            })
                        }
                        Err(UnsealError::Vault { source, .. }) => Err(RestoreError::Unseal {
                            node: node.addr.to_string(),
                            undo: Undo::NewCluster,
                            source,
                        }),
                    };
                }
                match self.vault.health(&node.addr).await {
                    Ok(h) if h.initialized && !h.sealed && !h.standby => {}
                    Ok(_) => return Ok(Look::NotYet("unsealed, not active yet".into())),
                    Err(e) => return Ok(Look::NotYet(error_chain(&e))),
                }
                self.login.forget();
                match self.login.token(&self.vault, &node.addr).await {
                    Ok(_) => Ok(Look::Ready(())),
                    Err(e) => Ok(Look::NotYet(format!(
                        "active, and this function's login is refused (the throwaway cluster, not sealed by the snapshot yet): {}",
                        error_chain(&e)
                    ))),
                }
            },
        )
        .await?;
        if let Err(expired) = waited {
            if resumed {
                warn!(node = %node.addr, "the earlier run's node never held the snapshot: its throwaway keys are gone");
                return Err(lost(format!(
                    "it stayed unsealed with data that refuses this function's login for {} s: {}",
                    limit.as_secs(),
                    expired
                )));
            }
            return Err(RestoreError::NotHealthy {
                undo: Undo::NewCluster,
                source: expired,
            });
        }
        Ok(self
            .vault
            .leader(&node.addr)
            .await
            .map(|l| l.raft_applied_index)
            .unwrap_or_default())
    }
}
