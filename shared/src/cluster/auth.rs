//! How a function obtains a Vault token: its own AppRole (role ID and secret ID from
//! SSM) or its own AWS identity (Vault's aws auth method), never the root token. The token is cached across invocations of a warm Lambda
//! and renewed by a fresh login when 80% of its lease has passed, so a probe that runs
//! every minute does not mint a token every minute.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tracing::{info, warn};

use super::{
    node::NodeApi,
    ports::{CallerIdentitySigner, IdentityError, ParameterError, ParameterStore},
};
use crate::{
    config::AuthSettings,
    errors::{Classify, POLICY_DENIED},
    ids::NodeAddr,
    secret::Secret,
    vault::VaultError,
};

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The AppRole credentials could not be read from SSM.
    #[error("cannot read this function's Vault credentials")]
    Credentials(#[source] ParameterError),
    /// The function's AWS identity could not be signed (aws auth).
    #[error("cannot prove this function's AWS identity to vault")]
    Identity(#[source] IdentityError),
    /// Vault answered and said no: the role, its secret ID or its policy is wrong.
    #[error("vault refused this function's login through {node}; check its role and credentials (AppRole secret ID in SSM, or the aws auth role bound to its IAM role)")]
    Refused {
        /// The node asked.
        node: NodeAddr,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The node could not be reached or answered with a server error.
    #[error("cannot log in through {node}")]
    Unavailable {
        /// The node asked.
        node: NodeAddr,
        /// What happened.
        #[source]
        source: VaultError,
    },
    /// VAULT_AUTH=aws, but the function was built without an AWS identity to sign with.
    #[error("VAULT_AUTH=aws needs the function's AWS identity, and none was given to the login")]
    NoIdentity,
}

impl LoginError {
    /// True when the cause is configuration (retrying will not help).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Credentials(ParameterError::Missing { .. })
                | Self::Refused { .. }
                | Self::NoIdentity
        )
    }
}

struct Cached {
    token: Secret,
    renew_after: Instant,
}

/// A function's Vault login, with its token cached between invocations.
pub struct VaultLogin<P> {
    settings: AuthSettings,
    parameters: P,
    identity: Option<Arc<dyn CallerIdentitySigner>>,
    cached: Mutex<Option<Cached>>,
    /// The last token handed out came from the cache, not from a login just made.
    served_cached: AtomicBool,
}

impl<P> VaultLogin<P> {
    /// The parameter store the credentials are read from.
    pub fn parameters(&self) -> &P {
        &self.parameters
    }
}

impl<P: ParameterStore> VaultLogin<P> {
    /// A login that reads its credentials from `parameters` when it first needs them.
    pub fn new(settings: AuthSettings, parameters: P) -> Self {
        Self {
            settings,
            parameters,
            identity: None,
            cached: Mutex::new(None),
            served_cached: AtomicBool::new(false),
        }
    }

    /// Gives the login the function's AWS identity, used when `VAULT_AUTH=aws`.
    pub fn with_identity(mut self, identity: Arc<dyn CallerIdentitySigner>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// A valid token: the cached one, or a fresh login through `node`.
    pub async fn token(&self, api: &impl NodeApi, node: &NodeAddr) -> Result<Secret, LoginError> {
        if let Some(token) = self.cached_token() {
            self.served_cached.store(true, Ordering::Relaxed);
            return Ok(token);
        }
        self.served_cached.store(false, Ordering::Relaxed);
        let login = match &self.settings {
            AuthSettings::AppRole {
                mount,
                role_id_parameter,
                secret_id_parameter,
            } => {
                let role_id = self
                    .parameters
                    .secret(role_id_parameter)
                    .await
                    .map_err(LoginError::Credentials)?;
                let secret_id = self
                    .parameters
                    .secret(secret_id_parameter)
                    .await
                    .map_err(LoginError::Credentials)?;
                api.approle_login(node, mount, &role_id, &secret_id).await
            }
            AuthSettings::Aws {
                mount,
                role,
                server_id,
                ..
            } => {
                let identity = self.identity.as_ref().ok_or(LoginError::NoIdentity)?;
                let request = identity
                    .sign_caller_identity(server_id.as_deref())
                    .await
                    .map_err(LoginError::Identity)?;
                api.aws_login(node, mount, role, &request).await
            }
        };
        let login = login.map_err(|source| match source.status() {
            Some(400 | 403) => LoginError::Refused {
                node: node.clone(),
                source,
            },
            _ => LoginError::Unavailable {
                node: node.clone(),
                source,
            },
        })?;
        info!(node = %node, lease_secs = login.lease.as_secs(), "logged in to vault");
        let renew_after = Instant::now() + login.lease.mul_f64(0.8).max(Duration::from_secs(1));
        self.store(Cached {
            token: login.token.clone(),
            renew_after,
        });
        Ok(login.token)
    }

    /// Drops the cached token, e.g. after Vault answered 403 to it.
    pub fn forget(&self) {
        *self.lock() = None;
        self.served_cached.store(false, Ordering::Relaxed);
    }

    /// Runs `attempt`, a step that takes its token from this login. When Vault refuses
    /// it with 403 and the token it was given last came from the cache, that token may
    /// no longer exist (a restore brings back data without the tokens issued since the
    /// snapshot): the token is forgotten and `attempt` runs once more, with a fresh
    /// login. A fresh token refused is the policy's fault, and its error is returned.
    /// Every step this wraps is safe to run again.
    pub async fn retry_if_stale<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, E>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match attempt().await {
            Err(e) if e.name() == POLICY_DENIED && self.served_cached.load(Ordering::Relaxed) => {
                warn!(error = %crate::error_chain(&e), "vault refused the cached token; logging in again and trying once more");
                self.forget();
                attempt().await
            }
            done => done,
        }
    }

    fn cached_token(&self) -> Option<Secret> {
        let cached = self.lock();
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.renew_after)
            .map(|c| c.token.clone())
    }

    fn store(&self, cached: Cached) {
        *self.lock() = Some(cached);
    }

    // A std mutex: held for a clone or an assignment, never across an await.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl crate::errors::Classify for LoginError {
    fn retry_helps(&self) -> bool {
        !self.is_configuration()
    }
    fn name(&self) -> &'static str {
        if self.is_configuration() {
            "LoginRefused"
        } else {
            "LoginUnavailable"
        }
    }
}

#[cfg(test)]
mod tests;
