//! The bootstrap that follows the cluster's initialisation, with the root token: every
//! deployed function's policy and AppRole, their credentials in SSM, the root token
//! revoked (unless kept), the cluster's id recorded. Each step reads the state first, so
//! a run cut off anywhere is finished by the next launch.

use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    init::Initialised,
    records::{InitRecord, InitStage},
    vault_step, LifecycleError, NodeLifecycle, POLL_INTERVAL,
};
use crate::{
    cluster::{
        node::NodeApi,
        policies::FUNCTIONS,
        polling::{poll_until, Look},
        ports::{FleetNode, ParameterError, ParameterStore},
    },
    error_chain,
};

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// After bootstrap, the root token's parameter is gone unless kept. A run cut off
    /// between the revocation and the delete left it behind: delete it (a revoked token,
    /// but no secret stays where it is not needed). A failure only warns: the next
    /// launch tries again.
    pub(super) async fn forget_revoked_root_token(&self) {
        if self.settings.keep_root_token {
            return;
        }
        let name = self.settings.root_token_parameter();
        if let Err(e) = self.parameters.delete(&name).await {
            warn!(parameter = %name, error = %error_chain(&e), "the root token's parameter could not be deleted; the next launch tries again");
        }
    }

    /// Unseal the initialised node, make every function's policy and AppRole, store their
    /// credentials, revoke the root token (unless kept), record the cluster's id.
    pub(super) async fn bootstrap(
        &self,
        record: &InitRecord,
        launching: &FleetNode,
        deadline: Instant,
    ) -> Result<Look<Initialised>, LifecycleError> {
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
                let done = self
                    .record_bootstrapped(record, active.cluster_id, here)
                    .await?;
                if !self.settings.keep_root_token {
                    self.parameters.delete(&root_parameter).await?;
                }
                return Ok(done);
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
        self.vault
            .ensure_canary_mount(addr, &root)
            .await
            .map_err(vault_step(format!(
                "mounting {}/ for the snapshots' canary",
                crate::cluster::policies::CANARY_MOUNT
            )))?;
        let deployed = FUNCTIONS
            .iter()
            .filter(|(function, _)| self.settings.approle_functions.contains(function));
        for (function, policy) in deployed {
            // The policies name the AppRole mount: use the one bootstrap enables.
            let policy = policy.replace("auth/approle/", &format!("auth/{mount}/"));
            self.vault
                .put_policy(addr, &root, function, &policy)
                .await
                .map_err(vault_step(format!("writing policy {function}")))?;
            self.vault
                .put_approle(
                    addr,
                    &root,
                    mount,
                    function,
                    function,
                    &self.settings.approle_limits,
                )
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
            functions = self.settings.approle_functions.len(),
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

    pub(super) async fn record_bootstrapped(
        &self,
        record: &InitRecord,
        cluster_id: Option<String>,
        here: bool,
    ) -> Result<Look<Initialised>, LifecycleError> {
        let done = InitRecord {
            stage: InitStage::Bootstrapped,
            cluster_id,
            ..record.clone()
        };
        if let Some(look) = self.advance_init(&done).await? {
            return Ok(look);
        }
        info!(cluster_id = done.cluster_id.as_deref().unwrap_or(""), node = %done.node, "cluster bootstrapped");
        Ok(Look::Ready(if here {
            Initialised::Here
        } else {
            Initialised::Elsewhere
        }))
    }
}
