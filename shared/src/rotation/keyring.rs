//! The `keyring` action: the server's own automatic rotation policy made to match the
//! configured one, and the keyring rotated when its current key is older than the
//! configured age. A re-run after a cut-off finds a fresh key and does nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use super::{CredentialRotation, RotationError};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{Fleet, ParameterStore},
    },
    ids::NodeAddr,
    secret::Secret,
};

/// The keyring after a `keyring` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyringReport {
    /// The term before the run.
    pub previous_term: u64,
    /// The term now.
    pub term: u64,
    /// When the current key was installed.
    pub installed_at: DateTime<Utc>,
    /// Whether this run rotated it.
    pub rotated: bool,
    /// Whether this run changed the server's automatic rotation policy to the configured
    /// one.
    pub policy_updated: bool,
}

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    pub(super) async fn keyring_on(
        &self,
        node: &NodeAddr,
        token: &Secret,
        force: bool,
    ) -> Result<KeyringReport, RotationError> {
        let failed = |step: &'static str| move |source| RotationError::Vault { step, source };
        let wanted = &self.keyring.policy;
        let policy = self
            .vault
            .keyring_policy(node, token)
            .await
            .map_err(failed(
                "cannot read the keyring's rotation policy (sys/rotate/config)",
            ))?;
        let policy_updated = policy != *wanted;
        if policy_updated {
            self.vault
                .set_keyring_policy(node, token, wanted)
                .await
                .map_err(failed(
                    "cannot set the keyring's rotation policy (sys/rotate/config)",
                ))?;
            info!(
                max_operations = wanted.max_operations,
                interval_s = wanted.interval.as_secs(),
                was_max_operations = policy.max_operations,
                was_interval_s = policy.interval.as_secs(),
                was_enabled = policy.enabled,
                "the keyring's automatic rotation policy now matches the configuration"
            );
        }
        let before = self
            .vault
            .key_status(node, token)
            .await
            .map_err(failed("cannot read the keyring's term (sys/key-status)"))?;
        let age = (Utc::now() - before.install_time)
            .to_std()
            .unwrap_or_default();
        if age < self.keyring.max_age && !force {
            info!(
                term = before.term,
                age_days = age.as_secs() / 86_400,
                max_age_days = self.keyring.max_age.as_secs() / 86_400,
                "the keyring's key is younger than the maximum age; not rotated"
            );
            return Ok(KeyringReport {
                previous_term: before.term,
                term: before.term,
                installed_at: before.install_time,
                rotated: false,
                policy_updated,
            });
        }
        self.vault
            .rotate_keyring(node, token)
            .await
            .map_err(failed("cannot rotate the keyring (sys/rotate)"))?;
        let after = self.vault.key_status(node, token).await.map_err(failed(
            "the keyring was rotated, but its new term cannot be read (sys/key-status)",
        ))?;
        info!(
            previous_term = before.term,
            term = after.term,
            "keyring rotated"
        );
        Ok(KeyringReport {
            previous_term: before.term,
            term: after.term,
            installed_at: after.install_time,
            rotated: true,
            policy_updated,
        })
    }
}
