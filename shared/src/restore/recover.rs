//! After the snapshot is sent: unseal with the source's shares when it brought another
//! cluster's keys, wait for a healthy active node, then for autopilot's verdict. The
//! body sent is checked again as it streams.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{error::Undo, RestoreError, SnapshotRestore};
use crate::{
    cluster::{
        find_active,
        node::NodeApi,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterStore},
    },
    error_chain,
    keys::{unseal_with, SealKind, UnsealError},
    secret::Secret,
    snapshots::{
        archive::{ArchiveError, SnapshotCheck},
        store::ObjectBody,
    },
};

/// How often the restored cluster is asked whether it is healthy: a health call costs a
/// few milliseconds, and a failover waits on this (measured: 500 ms left 0.4 s of the
/// 2.3 s a failover spent beyond the raw API steps).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl<N: NodeApi, P: ParameterStore> SnapshotRestore<N, P> {
    /// Waits for an active, unsealed node; unseals sealed Shamir nodes with `shares`
    /// (the source cluster's, after a forced restore) on the way.
    pub(super) async fn wait_healthy(
        &self,
        shares: Option<&[Secret]>,
        undo: &Undo,
        deadline: Instant,
    ) -> Result<(FleetNode, Vec<String>), RestoreError> {
        let unsealed = std::sync::Mutex::new(Vec::new());
        let waited = poll_until(
            "a healthy active node after the restore",
            self.settings.healthy_timeout,
            deadline,
            POLL_INTERVAL,
            || {
                let unsealed = &unsealed;
                async move {
                    let members = self.fleet.members().await?;
                    let mut seen = Vec::new();
                    for node in &members {
                        let Ok(status) = self.vault.seal_status(&node.addr).await else {
                            seen.push(format!("{}: no answer", node.addr));
                            continue;
                        };
                        if status.sealed && SealKind::of(&status) == SealKind::Shamir {
                            if let Some(shares) = shares {
                                self.unseal(node, shares, undo).await?;
                                if let Ok(mut list) = unsealed.lock() {
                                    list.push(node.addr.to_string());
                                }
                                continue;
                            }
                        }
                        seen.push(format!("{}: sealed {}", node.addr, status.sealed));
                    }
                    match find_active(&self.vault, members).await {
                        Some((node, h)) if !h.sealed => Ok::<_, RestoreError>(Look::Ready(node)),
                        _ => Ok(Look::NotYet(seen.join(", "))),
                    }
                }
            },
        )
        .await?;
        let node = waited.map_err(|source| RestoreError::NotHealthy {
            undo: undo.clone(),
            source,
        })?;
        Ok((node, unsealed.into_inner().unwrap_or_default()))
    }

    /// Waits (within the healthy timeout) until autopilot judges every server healthy
    /// again; returns what it saw last. The snapshot is in force whatever this finds, so
    /// a follower still catching up is reported, not an error. After another cluster's
    /// snapshot (`foreign`), a refused login is expected: the restored data knows that
    /// cluster's credentials, which this function holds only once they are adopted.
    pub(super) async fn wait_autopilot(
        &self,
        node: &FleetNode,
        foreign: bool,
        deadline: Instant,
    ) -> (bool, Option<u32>) {
        let last = std::sync::Mutex::new(None);
        let waited = poll_until(
            "autopilot to judge every server healthy after the restore",
            self.settings.healthy_timeout,
            deadline,
            POLL_INTERVAL,
            || {
                let last = &last;
                async move {
                    // The token from before the restore may not exist in the restored data.
                    let token = self.login.token(&self.vault, &node.addr).await?;
                    let state = match self.vault.autopilot_state(&node.addr, &token).await {
                        Ok(state) => state,
                        Err(e) => {
                            self.login.forget();
                            return Ok::<_, crate::cluster::auth::LoginError>(Look::NotYet(
                                error_chain(&e),
                            ));
                        }
                    };
                    if let Ok(mut seen) = last.lock() {
                        *seen = Some(state.failure_tolerance);
                    }
                    Ok(if state.healthy {
                        Look::Ready(())
                    } else {
                        Look::NotYet(format!("failure tolerance {}", state.failure_tolerance))
                    })
                }
            },
        )
        .await;
        let tolerance = last.into_inner().unwrap_or_default();
        match waited {
            Ok(Ok(())) => (true, tolerance),
            Ok(Err(expired)) => {
                warn!(error = %expired, "the snapshot is in force; autopilot does not judge every server healthy yet");
                (false, tolerance)
            }
            Err(crate::cluster::auth::LoginError::Refused { .. }) if foreign => {
                info!("the snapshot is in force; autopilot not read: the restored data is another cluster's, whose credentials this function does not hold until they are adopted");
                (false, tolerance)
            }
            Err(e) => {
                warn!(error = %error_chain(&e), "the snapshot is in force; autopilot could not be read");
                (false, tolerance)
            }
        }
    }

    /// Reads the canary back and compares it with the one the snapshot's entry records.
    pub(super) async fn check_canary(
        &self,
        node: &FleetNode,
        plan: &super::RestorePlan,
        foreign: bool,
    ) -> super::plan::CanaryCheck {
        use super::plan::CanaryCheck;
        let Some(expected) = plan.entry.as_ref().and_then(|e| e.canary.clone()) else {
            return CanaryCheck::NotRecorded;
        };
        if foreign {
            return CanaryCheck::NotChecked {
                why: "another cluster's snapshot: the restored data refuses this function's login until that cluster's credentials are adopted".into(),
            };
        }
        let found = async {
            let token = self
                .login
                .token(&self.vault, &node.addr)
                .await
                .map_err(|e| error_chain(&e))?;
            self.vault
                .read_canary(&node.addr, &token)
                .await
                .map_err(|e| error_chain(&e))
        }
        .await;
        match found {
            Ok(Some(found)) if found == expected => {
                info!(canary = %expected, "the cluster holds the snapshot's canary");
                CanaryCheck::Matched { value: expected }
            }
            Ok(found) => {
                warn!(expected = %expected, found = ?found, "the cluster does not hold the snapshot's canary: its data is not what the catalog says this snapshot holds");
                CanaryCheck::Different { expected, found }
            }
            Err(why) => {
                warn!(error = %why, "the snapshot's canary could not be read back");
                CanaryCheck::NotChecked { why }
            }
        }
    }

    pub(super) async fn unseal(
        &self,
        node: &FleetNode,
        shares: &[Secret],
        undo: &Undo,
    ) -> Result<(), RestoreError> {
        unseal_with(&self.vault, &node.addr, shares)
            .await
            .map_err(|e| match e {
                UnsealError::Rejected { node, tried } => RestoreError::SharesRejected {
                    node: node.to_string(),
                    tried,
                    undo: undo.clone(),
                },
                UnsealError::Vault { node, source } => RestoreError::Unseal {
                    node: node.to_string(),
                    source,
                    undo: undo.clone(),
                },
            })?;
        info!(node = %node.addr, "unsealed with the source cluster's shares");
        Ok(())
    }
}

/// The object's body as a stream for the request, checked as it passes: if the archive
/// fails its check or its SHA-256 is not `sha256`, the stream ends in an error before
/// its last chunk, so the node never receives a whole (and wrong) snapshot.
pub(super) fn checked_stream(
    body: Box<ObjectBody>,
    sha256: String,
) -> impl futures::Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
    type Failure = Box<dyn std::error::Error + Send + Sync>;
    let state = Some((body, SnapshotCheck::new()));
    futures::stream::unfold(state, move |state| {
        let sha256 = sha256.clone();
        async move {
            let (mut body, mut check) = state?;
            match body.next_chunk().await {
                Ok(Some(chunk)) => match check.update(&chunk) {
                    Ok(()) => Some((Ok(chunk), Some((body, check)))),
                    Err(e) => Some((Err(Box::new(e) as Failure), None)),
                },
                Ok(None) => match check.finish() {
                    Ok(facts) if facts.sha256 == sha256 => None,
                    Ok(facts) => Some((
                        Err(Box::new(ArchiveError::Mismatch {
                            file: format!(
                                "the whole object (SHA-256 {} read, {sha256} checked before)",
                                facts.sha256
                            ),
                        }) as Failure),
                        None,
                    )),
                    Err(e) => Some((Err(Box::new(e) as Failure), None)),
                },
                Err(e) => Some((Err(Box::new(e) as Failure), None)),
            }
        }
    })
}
