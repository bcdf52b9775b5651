//! The cluster's shares in the DR region: every share the primary region's SSM holds is
//! written to the DR region's SSM under the DR region's own KMS key, so that a DR copy of
//! a snapshot can be restored and unsealed with the primary region gone. Written after
//! `sys/init` stored them, and looked over by every reconcile (a region that was down, a
//! cluster from before this setting). Every generation in force now or before is copied,
//! with its `in-force` mark (a pending generation is copied by the rotation that made
//! it). A share stored in the DR region is never replaced.

use tracing::{info, warn};

use super::{LifecycleError, NodeLifecycle};
pub use crate::keys::DrKeys;
use crate::{
    cluster::{
        node::NodeApi,
        ports::{ParameterError, ParameterStore, Stored},
    },
    error_chain,
    keys::{generations, ShareKind},
};

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Copies every share stored in the primary region that the DR region lacks;
    /// returns the parameters written now. Without a DR region, nothing.
    pub async fn mirror_shares_to_dr(&self) -> Result<Vec<String>, LifecycleError> {
        let Some(dr) = &self.dr_keys else {
            return Ok(Vec::new());
        };
        let keys = self.settings.keys();
        let mut written = Vec::new();
        for kind in [ShareKind::Unseal, ShareKind::Recovery] {
            let in_force = generations(&self.parameters, &keys, kind).await?.in_force;
            for generation in 1..=in_force {
                let mut names: Vec<String> = (1..=usize::from(self.settings.key_shares))
                    .map(|n| keys.generation_share(kind, generation, n))
                    .collect();
                if generation > 1 {
                    names.push(keys.generation_in_force(kind, generation));
                }
                for name in names {
                    let value = match self.parameters.secret(&name).await {
                        Ok(value) => value,
                        Err(ParameterError::Missing { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if dr
                        .parameters
                        .put_new_secret(&name, &value, &dr.kms_key)
                        .await?
                        == Stored::Written
                    {
                        written.push(name);
                    }
                }
            }
        }
        if !written.is_empty() {
            info!(count = written.len(), "shares copied to the DR region");
        }
        Ok(written)
    }

    /// Copies each deployed function's AppRole role ID and secret ID to the DR region,
    /// replacing a copy that differs (credential-rotation replaces secret IDs); returns
    /// the parameters written now. After a failover or a drill restores this cluster's
    /// snapshot into the DR standby, the standby holds this cluster's AppRoles, and the
    /// DR region's functions log in with these copies. A secret ID replaced here reaches
    /// the DR region at the next reconcile, within the replaced one's grace period.
    pub async fn mirror_approles_to_dr(&self) -> Result<Vec<String>, LifecycleError> {
        let Some(dr) = &self.dr_keys else {
            return Ok(Vec::new());
        };
        let keys = self.settings.keys();
        let mut written = Vec::new();
        for function in &self.settings.approle_functions {
            for which in ["role-id", "secret-id"] {
                let name = keys.approle(function, which);
                let value = match self.parameters.secret(&name).await {
                    Ok(value) => value,
                    Err(ParameterError::Missing { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                match dr.parameters.secret(&name).await {
                    Ok(copy) if copy.expose() == value.expose() => continue,
                    Ok(_) => {
                        dr.parameters
                            .replace_secret(&name, &value, &dr.kms_key)
                            .await?
                    }
                    Err(ParameterError::Missing { .. }) => {
                        dr.parameters
                            .put_new_secret(&name, &value, &dr.kms_key)
                            .await?;
                    }
                    Err(e) => return Err(e.into()),
                }
                written.push(name);
            }
        }
        if !written.is_empty() {
            info!(
                count = written.len(),
                "AppRole credentials copied to the DR region"
            );
        }
        Ok(written)
    }

    /// [`NodeLifecycle::mirror_shares_to_dr`], whose failure is only logged: the shares
    /// are safe in the primary region, and reconcile copies them later.
    pub(crate) async fn mirror_shares_or_warn(&self) -> Result<Vec<String>, String> {
        self.mirror_shares_to_dr().await.map_err(|e| {
            let text = error_chain(&e);
            warn!(error = %text, "shares not copied to the DR region; reconcile tries again");
            text
        })
    }
}
