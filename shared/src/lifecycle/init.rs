//! The cluster's one-time initialisation; the bootstrap that follows it is in
//! `bootstrap`.
//!
//! Exactly once, whatever number of launch events arrive together: under the init lock,
//! after asking every member node and the initialisation record. The record is written
//! before each step that could be lost (see [`InitStage`]), so a run that dies anywhere
//! is resumed by the next launch, or, if the shares were lost, stopped loudly. A cluster
//! is never initialised over data.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{
    records::{InitRecord, InitStage, InitWrite},
    vault_step, LifecycleError, NodeLifecycle, POLL_INTERVAL,
};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        locks::Claim,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterStore},
    },
    error_chain,
    keys::{SealKind, ShareKind},
};

/// Where the cluster came from, as the launching node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initialised {
    /// This node was initialised now (it is unsealed and active).
    Here,
    /// The cluster exists elsewhere: join this node to it.
    Elsewhere,
}

const INIT_LOCK: &str = "init";

/// Kept between the end of an invocation and the end of its hold on the init lock, for
/// the clocks of two invocations that disagree a little.
const LOCK_MARGIN: Duration = Duration::from_secs(30);

/// Time kept after `sys/init` answers, at the least, to store the shares it returned.
pub(super) const STORE_RESERVE: Duration = Duration::from_secs(60);

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Converges to an initialised, bootstrapped cluster, initialising `node` if no node
    /// of the cluster is. Waits while another run holds the init lock.
    ///
    /// The lock is this invocation's alone (`owner`, the lifecycle action, plus a random
    /// run id): a second delivery of the same event running at the same time waits like
    /// any other launch. It holds until the invocation's deadline (plus a margin), the
    /// moment Lambda has cut the run off for sure, so the redelivery of a run cut off
    /// under the lock claims it without waiting for a longer expiry.
    pub async fn ensure_initialised_once(
        &self,
        node: &FleetNode,
        owner: &str,
        deadline: Instant,
    ) -> Result<Initialised, LifecycleError> {
        let owner = format!("{owner}/run-{:08x}", fastrand::u32(..));
        let owner = owner.as_str();
        let waited = poll_until(
            "the cluster's initialisation",
            self.settings.init_lock_ttl,
            deadline,
            POLL_INTERVAL * 4,
            || async {
                match self.records.init().await? {
                    Some(r) if r.stage == InitStage::Bootstrapped => {
                        self.forget_revoked_root_token().await;
                        return Ok(Look::Ready(Initialised::Elsewhere));
                    }
                    Some(_) => {}
                    None => {
                        // A run writes the record before it sends sys/init: a member found
                        // initialised while there is still no record was initialised
                        // outside this function. Read the record again after the member,
                        // or another run's init that began in between looks like one, and
                        // this launch would join before the shares are stored.
                        if let Some(member) = self.initialised_member().await? {
                            if self.records.init().await?.is_none() {
                                info!(node = %member.instance, "the cluster exists already (initialised outside this function)");
                                return Ok(Look::Ready(Initialised::Elsewhere));
                            }
                        }
                    }
                }
                let hold = deadline.saturating_duration_since(Instant::now()) + LOCK_MARGIN;
                match self.locks.claim(INIT_LOCK, owner, hold).await? {
                    Claim::HeldBy { owner, .. } => {
                        Ok(Look::NotYet(format!("init lock held by {owner}")))
                    }
                    Claim::Acquired { .. } => {
                        let result = self.initialise_under_lock(node, deadline).await;
                        if let Err(e) = self.locks.release(INIT_LOCK, owner).await {
                            warn!(error = %error_chain(&e), "init lock not released; it lapses at its expiry");
                        }
                        result
                    }
                }
            },
        )
        .await?;
        Ok(waited?)
    }

    /// Under the init lock: read the record again and take the next step from where it
    /// stands.
    async fn initialise_under_lock(
        &self,
        node: &FleetNode,
        deadline: Instant,
    ) -> Result<Look<Initialised>, LifecycleError> {
        let record = self.records.init().await?;
        match &record {
            Some(r) if r.stage == InitStage::Bootstrapped => {
                return Ok(Look::Ready(Initialised::Elsewhere))
            }
            Some(r) if r.stage == InitStage::SharesStored => {
                return self.bootstrap(r, node, deadline).await
            }
            _ => {}
        }
        if let Some(existing) = self.initialised_member().await? {
            let Some(started) = record else {
                return Ok(Look::Ready(Initialised::Elsewhere));
            };
            // An earlier run sent sys/init. If it stored every share and the root token and
            // died before saying so, carry on; if anything is missing, the keys are lost.
            let missing = self.missing_init_values(started.recovery).await?;
            if missing.is_empty() {
                let resumed = InitRecord {
                    stage: InitStage::SharesStored,
                    ..started
                };
                if let Some(look) = self.advance_init(&resumed).await? {
                    return Ok(look);
                }
                return self.bootstrap(&resumed, node, deadline).await;
            }
            let path = self.settings.ssm_path.clone();
            error!(node = %started.node, found_initialised = %existing.instance, path = %path, missing = %missing.join(", "), "cluster initialised by an earlier run but its shares were never stored in full (every share and the root token); refusing to initialise again");
            return Err(LifecycleError::InitialisedWithoutShares {
                node: started.node,
                path,
                missing,
            });
        }
        if let Some(parameter) = self.earlier_clusters_parameter().await? {
            return Err(LifecycleError::StaleShares { parameter });
        }
        self.initialise(node, deadline).await
    }

    /// `sys/init` on `node`, then the shares and the root token into SSM before anything
    /// else, then bootstrap. `sys/init` is sent only when the invocation has time left
    /// for its whole timeout and for storing what it returns.
    async fn initialise(
        &self,
        node: &FleetNode,
        deadline: Instant,
    ) -> Result<Look<Initialised>, LifecycleError> {
        let s = &self.settings;
        let left = deadline.saturating_duration_since(Instant::now());
        let needed = s.init_timeout + STORE_RESERVE;
        if left < needed {
            warn!(
                left_s = left.as_secs(),
                needed_s = needed.as_secs(),
                "too little of the invocation is left to initialise safely; nothing sent"
            );
            return Err(LifecycleError::NoTimeToInitialise {
                left_s: left.as_secs(),
                init_timeout_s: s.init_timeout.as_secs(),
                reserve_s: STORE_RESERVE.as_secs(),
            });
        }
        let status = self.seal_status_of(&node.addr).await?;
        let recovery = SealKind::of(&status).shares() == ShareKind::Recovery;
        let mut record = InitRecord {
            stage: InitStage::Started,
            node: node.instance.clone(),
            cluster_id: None,
            recovery,
        };
        if let Some(look) = self.advance_init(&record).await? {
            return Ok(look);
        }
        let out = self
            .vault
            .init(&node.addr, s.key_shares, s.key_threshold, recovery)
            .await
            .map_err(vault_step(format!("initialising {}", node.addr)))?;
        info!(node = %node.instance, shares = out.shares.len(), threshold = s.key_threshold, recovery, "cluster initialised; storing the shares");
        self.store_init_output(&node.instance, &out, recovery, deadline)
            .await?;
        record.stage = InitStage::SharesStored;
        if let Some(look) = self.advance_init(&record).await? {
            return Ok(look);
        }
        info!(count = out.shares.len(), path = %s.ssm_path, "shares stored in SSM");
        let _ = self.mirror_shares_or_warn().await;
        self.bootstrap(&record, node, deadline).await
    }

    /// Writes the init record unless the stored one is further along. `Some` when it is:
    /// another run moved on, and this one looks again instead of acting.
    pub(super) async fn advance_init(
        &self,
        record: &InitRecord,
    ) -> Result<Option<Look<Initialised>>, LifecycleError> {
        match self.records.put_init(record).await? {
            InitWrite::Written => Ok(None),
            InitWrite::Behind { stored } => {
                warn!(
                    stage = record.stage.as_str(),
                    stored = stored.as_str(),
                    "the init record is further along than this run; not going back"
                );
                Ok(Some(Look::NotYet(format!(
                    "another run took the initialisation to {}",
                    stored.as_str()
                ))))
            }
        }
    }

    /// A member node that reports itself initialised, asking all of them at once.
    pub(crate) async fn initialised_member(&self) -> Result<Option<FleetNode>, LifecycleError> {
        let members = self.fleet.members().await?;
        let healths = join_all(members.iter().map(|m| self.vault.health(&m.addr))).await;
        Ok(members
            .into_iter()
            .zip(healths)
            .find(|(_, h)| h.as_ref().is_ok_and(|h| h.initialized))
            .map(|(m, _)| m))
    }
}
