//! The cluster's one-time initialisation, and the bootstrap that follows it.
//!
//! Exactly once, whatever number of launch events arrive together: under the init lock,
//! after asking every member node and the initialisation record. The record is written
//! before each step that could be lost (see [`InitStage`]), so a run that dies anywhere
//! is resumed by the next launch, or, if the shares were lost, stopped loudly. A cluster
//! is never initialised over data.

use futures::future::join_all;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{
    records::{InitRecord, InitStage},
    vault_step, LifecycleError, NodeLifecycle, POLL_INTERVAL,
};
use crate::{
    cluster::node::NodeApi,
    cluster::{
        locks::Claim,
        policies::FUNCTIONS,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterError, ParameterStore, Stored},
    },
    error_chain,
    keys::{SealKind, ShareKind},
    secret::Secret,
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

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Converges to an initialised, bootstrapped cluster, initialising `node` if no node
    /// of the cluster is. Waits while another run holds the init lock.
    ///
    /// `owner` names the lifecycle action (its token), not the invocation: a run cut off
    /// under the lock is resumed at once by the redelivery of its own event, instead of
    /// every launch waiting for the lock's expiry. Two deliveries of one event act on the
    /// same node, and Vault itself refuses a second `sys/init` there.
    pub async fn ensure_initialised_once(
        &self,
        node: &FleetNode,
        owner: &str,
        deadline: Instant,
    ) -> Result<Initialised, LifecycleError> {
        let waited = poll_until(
            "the cluster's initialisation",
            self.settings.init_lock_ttl,
            deadline,
            POLL_INTERVAL * 4,
            || async {
                match self.records.init().await? {
                    Some(r) if r.stage == InitStage::Bootstrapped => {
                        return Ok(Look::Ready(Initialised::Elsewhere))
                    }
                    Some(_) => {}
                    None => {
                        if let Some(member) = self.initialised_member().await? {
                            info!(node = %member.instance, "the cluster exists already (initialised outside this function)");
                            return Ok(Look::Ready(Initialised::Elsewhere));
                        }
                    }
                }
                match self
                    .locks
                    .claim(INIT_LOCK, owner, self.settings.init_lock_ttl)
                    .await?
                {
                    Claim::HeldBy { owner, .. } => {
                        Ok(Look::NotYet(format!("init lock held by {owner}")))
                    }
                    Claim::Acquired { .. } => {
                        let result = self.initialise_under_lock(node, deadline).await;
                        if let Err(e) = self.locks.release(INIT_LOCK, owner).await {
                            warn!(error = %error_chain(&e), "init lock not released; it lapses at its expiry");
                        }
                        result.map(Look::Ready)
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
    ) -> Result<Initialised, LifecycleError> {
        let record = self.records.init().await?;
        match &record {
            Some(r) if r.stage == InitStage::Bootstrapped => return Ok(Initialised::Elsewhere),
            Some(r) if r.stage == InitStage::SharesStored => {
                return self.bootstrap(r, node, deadline).await
            }
            _ => {}
        }
        if let Some(existing) = self.initialised_member().await? {
            let Some(started) = record else {
                return Ok(Initialised::Elsewhere);
            };
            // An earlier run sent sys/init. If it stored the shares and died before saying
            // so, carry on; if not, the shares are gone.
            if let Some(recovery) = self.stored_share_kind().await? {
                let resumed = InitRecord {
                    stage: InitStage::SharesStored,
                    recovery,
                    ..started
                };
                self.records.put_init(&resumed).await?;
                return self.bootstrap(&resumed, node, deadline).await;
            }
            let path = self.settings.ssm_path.clone();
            error!(node = %started.node, found_initialised = %existing.instance, path = %path, "cluster initialised by an earlier run but its shares were never stored; refusing to initialise again");
            return Err(LifecycleError::InitialisedWithoutShares {
                node: started.node,
                path,
            });
        }
        if let Some(parameter) = self.earlier_clusters_parameter().await? {
            return Err(LifecycleError::StaleShares { parameter });
        }
        self.initialise(node, deadline).await
    }

    /// `sys/init` on `node`, then the shares and the root token into SSM before anything
    /// else, then bootstrap.
    async fn initialise(
        &self,
        node: &FleetNode,
        deadline: Instant,
    ) -> Result<Initialised, LifecycleError> {
        let status = self.seal_status_of(&node.addr).await?;
        let recovery = SealKind::of(&status).shares() == ShareKind::Recovery;
        let mut record = InitRecord {
            stage: InitStage::Started,
            node: node.instance.clone(),
            cluster_id: None,
            recovery,
        };
        self.records.put_init(&record).await?;
        let s = &self.settings;
        let out = self
            .vault
            .init(&node.addr, s.key_shares, s.key_threshold, recovery)
            .await
            .map_err(vault_step(format!("initialising {}", node.addr)))?;
        info!(node = %node.instance, shares = out.shares.len(), threshold = s.key_threshold, recovery, "cluster initialised; storing the shares");
        for (i, share) in out.shares.iter().enumerate() {
            self.store_new(&s.share_parameter(recovery, i + 1), share)
                .await?;
        }
        self.store_new(&s.root_token_parameter(), &out.root_token)
            .await?;
        record.stage = InitStage::SharesStored;
        self.records.put_init(&record).await?;
        info!(count = out.shares.len(), path = %s.ssm_path, "shares stored in SSM");
        self.bootstrap(&record, node, deadline).await
    }

    /// Writes a secret that must not exist yet: under the lock, after the checks, an
    /// existing one means another cluster's secret and is never replaced.
    async fn store_new(&self, name: &str, value: &Secret) -> Result<(), LifecycleError> {
        match self
            .parameters
            .put_new_secret(name, value, &self.settings.kms_key)
            .await?
        {
            Stored::Written => Ok(()),
            Stored::AlreadyExists => Err(LifecycleError::StaleShares {
                parameter: name.to_owned(),
            }),
        }
    }

    /// Unseal the initialised node, make every function's policy and AppRole, store their
    /// credentials, revoke the root token (unless kept), record the cluster's id.
    async fn bootstrap(
        &self,
        record: &InitRecord,
        launching: &FleetNode,
        deadline: Instant,
    ) -> Result<Initialised, LifecycleError> {
        let here = record.node == launching.instance;
        let node = if here {
            launching.clone()
        } else {
            self.fleet
                .node(&record.node)
                .await?
                .ok_or(LifecycleError::NoActiveNode { asked: 1 })?
        };
        self.ensure_unsealed(&node.addr, deadline).await?;
        let active = poll_until(
            &format!("{} to become active", node.instance),
            self.settings.voter_timeout,
            deadline,
            POLL_INTERVAL,
            || async {
                match self.vault.health(&node.addr).await {
                    Ok(h) if h.is_active() => Ok(Look::Ready(h)),
                    Ok(h) => Ok(Look::NotYet(format!("health {}", h.code))),
                    Err(e) => Ok::<_, LifecycleError>(Look::NotYet(e.to_string())),
                }
            },
        )
        .await??;
        let root_parameter = self.settings.root_token_parameter();
        let root = match self.parameters.secret(&root_parameter).await {
            Ok(root) => Some(root),
            Err(ParameterError::Missing { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let valid = match &root {
            Some(root) => self
                .vault
                .token_is_valid(&node.addr, root)
                .await
                .map_err(vault_step("checking the root token"))?,
            None => false,
        };
        let Some(root) = root.filter(|_| valid) else {
            // Revoked by a run that died before recording it: done if our own login works.
            if self.login.token(&self.vault, &node.addr).await.is_ok() {
                return self
                    .record_bootstrapped(record, active.cluster_id, here)
                    .await;
            }
            return Err(LifecycleError::RootTokenLost {
                parameter: root_parameter,
            });
        };
        let addr = &node.addr;
        let mount = &self.settings.approle_mount;
        self.vault
            .ensure_auth_enabled(addr, &root, mount, "approle")
            .await
            .map_err(vault_step(format!("enabling approle at {mount}")))?;
        for (function, policy) in FUNCTIONS {
            // The policies name the AppRole mount: use the one bootstrap enables.
            let policy = policy.replace("auth/approle/", &format!("auth/{mount}/"));
            self.vault
                .put_policy(addr, &root, function, &policy)
                .await
                .map_err(vault_step(format!("writing policy {function}")))?;
            self.vault
                .put_approle(addr, &root, mount, function, function)
                .await
                .map_err(vault_step(format!("writing approle {function}")))?;
            let role_id = self.settings.approle_parameter(function, "role-id");
            if self.missing(&role_id).await? {
                let value = self
                    .vault
                    .approle_role_id(addr, &root, mount, function)
                    .await
                    .map_err(vault_step(format!("reading the role ID of {function}")))?;
                self.parameters
                    .put_new_secret(&role_id, &value, &self.settings.kms_key)
                    .await?;
            }
            let secret_id = self.settings.approle_parameter(function, "secret-id");
            if self.missing(&secret_id).await? {
                let value = self
                    .vault
                    .new_secret_id(addr, &root, mount, function)
                    .await
                    .map_err(vault_step(format!("creating a secret ID for {function}")))?;
                self.parameters
                    .put_new_secret(&secret_id, &value, &self.settings.kms_key)
                    .await?;
            }
        }
        info!(
            functions = FUNCTIONS.len(),
            "policies and approles written; credentials in SSM"
        );
        if !self.settings.keep_root_token {
            self.vault
                .revoke_self(addr, &root)
                .await
                .map_err(vault_step("revoking the root token"))?;
            info!("root token revoked");
        }
        let initialised = self
            .record_bootstrapped(record, active.cluster_id, here)
            .await?;
        if !self.settings.keep_root_token {
            self.parameters.delete(&root_parameter).await?;
        }
        Ok(initialised)
    }

    async fn record_bootstrapped(
        &self,
        record: &InitRecord,
        cluster_id: Option<String>,
        here: bool,
    ) -> Result<Initialised, LifecycleError> {
        let done = InitRecord {
            stage: InitStage::Bootstrapped,
            cluster_id,
            ..record.clone()
        };
        self.records.put_init(&done).await?;
        info!(cluster_id = done.cluster_id.as_deref().unwrap_or(""), node = %done.node, "cluster bootstrapped");
        Ok(if here {
            Initialised::Here
        } else {
            Initialised::Elsewhere
        })
    }

    async fn missing(&self, name: &str) -> Result<bool, LifecycleError> {
        match self.parameters.secret(name).await {
            Ok(_) => Ok(false),
            Err(ParameterError::Missing { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Before `sys/init`: the first parameter this function would write that exists
    /// already (a share, the root token, an AppRole credential), which can only be an
    /// earlier cluster's. Checked all at once; it runs once in a cluster's life.
    async fn earlier_clusters_parameter(&self) -> Result<Option<String>, LifecycleError> {
        let s = &self.settings;
        let mut names: Vec<String> = (1..=10)
            .flat_map(|n| [s.share_parameter(false, n), s.share_parameter(true, n)])
            .collect();
        names.push(s.root_token_parameter());
        for (function, _) in FUNCTIONS {
            names.push(s.approle_parameter(function, "role-id"));
            names.push(s.approle_parameter(function, "secret-id"));
        }
        let missing = join_all(names.iter().map(|name| self.missing(name))).await;
        for (name, missing) in names.into_iter().zip(missing) {
            if !missing? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Which kind of share is stored, if any: `Some(false)` unseal, `Some(true)` recovery.
    async fn stored_share_kind(&self) -> Result<Option<bool>, LifecycleError> {
        for recovery in [false, true] {
            if !self
                .missing(&self.settings.share_parameter(recovery, 1))
                .await?
            {
                return Ok(Some(recovery));
            }
        }
        Ok(None)
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
