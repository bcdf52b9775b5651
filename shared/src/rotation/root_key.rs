//! The `root-key` action: a new root key (`sys/rotate/root`, OpenBao), the shares
//! unchanged. The server keeps no date of its root key, so the time of the last rotation
//! is kept in SSM (`<SSM_PREFIX>/<cluster>/root-key/rotated-at`), written after the
//! rotation: a run cut off between the two rotates once more, which changes nothing that
//! matters (the shares still open the seal; a snapshot taken before unseals with them).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use super::{CredentialRotation, RotationError};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{Fleet, ParameterError, ParameterStore},
    },
    ids::NodeAddr,
    secret::Secret,
};

/// The root key after a `root-key` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootKeyReport {
    /// Whether this run rotated it.
    pub rotated: bool,
    /// When this function last rotated it (now, if it just did); `None`: never.
    pub rotated_at: Option<DateTime<Utc>>,
}

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    pub(super) async fn root_key_on(
        &self,
        node: &NodeAddr,
        token: &Secret,
        force: bool,
    ) -> Result<RootKeyReport, RotationError> {
        let mark = self.shares.layout.root_key_rotated();
        let last = match self.parameters.secret(&mark).await {
            Ok(value) => DateTime::parse_from_rfc3339(value.expose())
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Err(ParameterError::Missing { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let max_age = chrono::Duration::from_std(self.root_key_max_age).unwrap_or_default();
        if let Some(last) = last.filter(|t| Utc::now() - *t < max_age && !force) {
            info!(rotated_at = %last, "the root key is younger than the maximum age; not rotated");
            return Ok(RootKeyReport {
                rotated: false,
                rotated_at: Some(last),
            });
        }
        self.vault
            .rotate_root_key(node, token)
            .await
            .map_err(|source| match source.status() {
                Some(404 | 405) => RotationError::RootKeyNotSupported,
                _ => RotationError::Vault {
                    step: "cannot rotate the root key (sys/rotate/root)",
                    source,
                },
            })?;
        let now = Utc::now();
        self.parameters
            .replace_secret(&mark, &Secret::new(now.to_rfc3339()), &self.shares.kms_key)
            .await?;
        info!("root key rotated; the shares are unchanged");
        Ok(RootKeyReport {
            rotated: true,
            rotated_at: Some(now),
        })
    }
}
