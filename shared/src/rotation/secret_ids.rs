//! The `approle-secret-ids` action: each function's AppRole gets a new secret ID before
//! its stored one grows old or expires, and the replaced one is destroyed once a grace
//! period is over.
//!
//! For each function, in order:
//! 1. A secret ID replaced by an earlier run whose grace period is over is destroyed by
//!    its accessor, and its `retiring` record deleted. One still in its grace period:
//!    the function is left as it is this run (one replaced secret ID at a time).
//! 2. The stored secret ID is looked up: kept while it is younger than
//!    `SECRET_ID_MAX_AGE_DAYS` and does not expire within that time; replaced when the
//!    server no longer knows it (expired or destroyed: the function cannot log in).
//! 3. A new secret ID is made and **proven first**: a login with the function's role ID
//!    and it (the token is revoked). Only then is it written over the stored one, so the
//!    parameter never holds a secret ID that did not log in.
//! 4. The replaced one's accessor is recorded with the time (`retiring`).
//!
//! A run cut off after 3 and before the write leaves a new secret ID nobody holds: it
//! expires with its TTL. Cut off after the write and before 4: the replaced one is never
//! destroyed by this function and expires with its TTL. Neither stops a function from
//! logging in. Functions read their secret ID at each login, so a warm one logs in with
//! the new one at its next login; its token is unaffected.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use super::{CredentialRotation, RotationError};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{Fleet, ParameterError, ParameterStore, Stored},
    },
    error_chain,
    ids::NodeAddr,
    secret::Secret,
};

/// One function's secret ID after an `approle-secret-ids` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretIdReport {
    /// The function (its AppRole has its name).
    pub function: String,
    /// Whether this run replaced its secret ID.
    pub rotated: bool,
    /// Whether this run destroyed a secret ID replaced earlier (its grace period over).
    pub destroyed_previous: bool,
    /// A replaced secret ID is still in its grace period: nothing else was done.
    pub waiting: bool,
    /// The stored secret ID was unknown to the server (expired or destroyed): the
    /// function could not log in until this run.
    pub was_unknown: bool,
    /// When the stored secret ID expires now (`None`: it does not, or unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    /// Every configured function's secret ID, through the active node `node`.
    pub(super) async fn secret_ids_on(
        &self,
        node: &NodeAddr,
        token: &Secret,
        force: bool,
    ) -> Result<Vec<SecretIdReport>, RotationError> {
        let mut reports = Vec::new();
        for function in &self.secret_ids.roles {
            reports.push(self.secret_id_of(node, token, function, force).await?);
        }
        Ok(reports)
    }

    async fn secret_id_of(
        &self,
        node: &NodeAddr,
        token: &Secret,
        function: &str,
        force: bool,
    ) -> Result<SecretIdReport, RotationError> {
        let settings = &self.secret_ids;
        let mount = settings.mount.as_str();
        let layout = &self.shares.layout;
        let failed = |step: &'static str| move |source| RotationError::Vault { step, source };
        let mut report = SecretIdReport {
            function: function.to_owned(),
            rotated: false,
            destroyed_previous: false,
            waiting: false,
            was_unknown: false,
            expires: None,
        };

        // 1. A secret ID replaced earlier.
        let retiring_name = layout.approle(function, "retiring");
        match self.parameters.secret(&retiring_name).await {
            Ok(record) => {
                let (accessor, since) =
                    parse_retiring(&record).ok_or_else(|| RotationError::RetiringUnreadable {
                        name: retiring_name.clone(),
                    })?;
                let over = since + chrono::Duration::from_std(settings.grace).unwrap_or_default();
                if Utc::now() < over {
                    info!(function, until = %over, "a replaced secret ID is in its grace period; this function is left as it is");
                    report.waiting = true;
                    return Ok(report);
                }
                report.destroyed_previous = self
                    .vault
                    .destroy_secret_id(node, token, mount, function, &accessor)
                    .await
                    .map_err(failed("cannot destroy a replaced secret ID"))?;
                self.parameters.delete(&retiring_name).await?;
                info!(function, accessor = %accessor, "the replaced secret ID's grace period is over: destroyed");
            }
            Err(ParameterError::Missing { .. }) => {}
            Err(e) => return Err(e.into()),
        }

        // 2. The stored one.
        let secret_id_name = layout.approle(function, "secret-id");
        let role_id = self
            .parameters
            .secret(&layout.approle(function, "role-id"))
            .await?;
        let current = self.parameters.secret(&secret_id_name).await?;
        let info = self
            .vault
            .secret_id_info(node, token, mount, function, &current)
            .await
            .map_err(failed("cannot look up a stored secret ID"))?;
        let now = Utc::now();
        let max_age = chrono::Duration::from_std(settings.max_age).unwrap_or_default();
        let due = match &info {
            None => {
                warn!(function, "the stored secret ID is unknown to the server (expired or destroyed): the function cannot log in; replacing it");
                report.was_unknown = true;
                true
            }
            Some(info) => {
                report.expires = info.expires;
                force
                    || now - info.created >= max_age
                    || info.expires.is_some_and(|e| e - now < max_age)
            }
        };
        if !due {
            return Ok(report);
        }

        // 3. A new one, proven before it is stored.
        let new = self
            .vault
            .new_secret_id(node, token, mount, function)
            .await
            .map_err(failed("cannot make a new secret ID"))?;
        match self.vault.approle_login(node, mount, &role_id, &new).await {
            Ok(login) => {
                if let Err(e) = self.vault.revoke_self(node, &login.token).await {
                    warn!(function, error = %error_chain(&e), "the proving login's token was not revoked; it expires with its TTL");
                }
            }
            Err(source) => {
                return Err(RotationError::SecretIdRefused {
                    function: function.to_owned(),
                    source,
                })
            }
        }
        self.parameters
            .replace_secret(&secret_id_name, &new, &self.shares.kms_key)
            .await?;
        report.rotated = true;
        report.expires = self
            .vault
            .secret_id_info(node, token, mount, function, &new)
            .await
            .ok()
            .flatten()
            .and_then(|i| i.expires);

        // 4. The replaced one waits for its grace period.
        if let Some(info) = info {
            let record = Secret::new(format!("{}\n{}", info.accessor, now.to_rfc3339()));
            if self
                .parameters
                .put_new_secret(&retiring_name, &record, &self.shares.kms_key)
                .await?
                == Stored::AlreadyExists
            {
                warn!(
                    function,
                    "a retiring record exists already; the replaced secret ID expires with its TTL"
                );
            }
        }
        info!(
            function,
            "secret ID replaced and proven; the previous one is destroyed after the grace period"
        );
        Ok(report)
    }
}

/// `<accessor>\n<RFC 3339 time>`, as written by this module.
fn parse_retiring(record: &Secret) -> Option<(String, DateTime<Utc>)> {
    let (accessor, since) = record.expose().split_once('\n')?;
    let since = DateTime::parse_from_rfc3339(since.trim()).ok()?;
    Some((accessor.trim().to_owned(), since.with_timezone(&Utc)))
}
