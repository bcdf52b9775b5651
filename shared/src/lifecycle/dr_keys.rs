//! The cluster's shares in the DR region: every share the primary region's SSM holds is
//! written to the DR region's SSM under the DR region's own KMS key, so that a DR copy of
//! a snapshot can be restored and unsealed with the primary region gone. Written after
//! `sys/init` stored them, and looked over by every reconcile (a region that was down, a
//! cluster from before this setting). A share stored in the DR region is never replaced.

use tracing::{info, warn};

use super::{LifecycleError, NodeLifecycle};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{ParameterError, ParameterStore, Stored},
    },
    error_chain,
};

/// The DR region's parameter store and the key its copies are encrypted under.
pub struct DrKeys<P> {
    /// SSM in the DR region.
    pub parameters: P,
    /// `DR_KMS_KEY_ID`: a key of the DR region (one key per region: a multi-region key
    /// would tie the copies to the primary's key).
    pub kms_key: String,
}

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Copies every share stored in the primary region that the DR region lacks;
    /// returns the parameters written now. Without a DR region, nothing.
    pub async fn mirror_shares_to_dr(&self) -> Result<Vec<String>, LifecycleError> {
        let Some(dr) = &self.dr_keys else {
            return Ok(Vec::new());
        };
        let s = &self.settings;
        let mut written = Vec::new();
        for recovery in [false, true] {
            for n in 1..=usize::from(s.key_shares) {
                let name = s.share_parameter(recovery, n);
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
        if !written.is_empty() {
            info!(count = written.len(), "shares copied to the DR region");
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
