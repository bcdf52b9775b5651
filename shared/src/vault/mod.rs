//! Typed Vault/OpenBao HTTP client: reqwest over rustls, the cluster's CA only, a timeout
//! on every request (a long one of its own for `sys/init`), and retries with capped, jittered backoff on connection errors only
//! (an answer, even a 500, is never retried here: the caller decides what it means).
//!
//! Tokens travel only in the `X-Vault-Token` header, marked sensitive; never in a URL.
//! Redirects are not followed, so a token is only ever sent to the node we chose.

mod bootstrap;
mod canary;
mod database;
mod duration;
mod operations;
mod rotation;
mod secret_ids;
mod share_rotation;
mod snapshot;
mod types;

use std::time::Duration;

use reqwest::{header::HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use tracing::debug;

pub use database::IssuedCredential;
pub use duration::parse_go_duration;
pub use operations::InitOutput;
pub use rotation::{KeyStatus, KeyringPolicy};
pub use secret_ids::SecretIdInfo;
pub use share_rotation::{RotationStep, ShareKind, ShareRotation, VerifyStep};
pub use snapshot::{LeaderStatus, SnapshotBody};
pub use types::*;

use crate::{
    config::{CaSource, VaultSettings},
    ids::NodeAddr,
    secret::Secret,
};

/// What went wrong talking to one node. Messages name the node and the API path; none
/// holds a token or any other secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The CA bundle or TLS settings could not be used.
    #[error("cannot build the Vault client: {reason}")]
    Setup {
        /// What was wrong.
        reason: String,
    },
    /// No connection could be made, after every retry.
    #[error("node {node} did not answer {path} after {attempts} attempts")]
    Unreachable {
        /// The node.
        node: NodeAddr,
        /// The API path.
        path: String,
        /// How many connections were tried.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node answered with an error status.
    #[error("node {node} answered {} to {method} {path}: {}", status_text(*status), errors.join("; "))]
    Status {
        /// The node.
        node: NodeAddr,
        /// The HTTP method.
        method: String,
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Vault's `errors` list (it never echoes secrets back).
        errors: Vec<String>,
    },
    /// The node answered, but not with what the API documents.
    #[error("node {node} sent an unreadable answer to {path}: {reason}")]
    Decode {
        /// The node.
        node: NodeAddr,
        /// The API path.
        path: String,
        /// What did not parse.
        reason: String,
    },
}

impl VaultError {
    /// True when the node could not be reached at all (as opposed to answering "no").
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// True when something answered, with a certificate the CA bundle does not trust
    /// (rustls: "invalid peer certificate"): not a node that is down, an identity that
    /// cannot be checked.
    pub fn is_untrusted_peer(&self) -> bool {
        let Self::Unreachable { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(e) = cause {
            if e.to_string().contains("invalid peer certificate") {
                return true;
            }
            cause = e.source();
        }
        false
    }

    /// The HTTP status the node answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client for every node of one cluster. Cheap to clone; build it once per cold start,
/// it keeps one connection pool.
#[derive(Clone, Debug)]
pub struct VaultClient {
    http: reqwest::Client,
    max_retries: u32,
    init_timeout: Duration,
    /// Which paths rotate shares on this server (see `share_rotation`), once asked.
    share_api: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

impl VaultClient {
    /// Builds the client. Fails if the CA bundle cannot be read or parsed.
    pub fn new(settings: &VaultSettings) -> Result<Self, VaultError> {
        let setup = |reason: String| VaultError::Setup { reason };
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vault-lifecycle/", env!("CARGO_PKG_VERSION")));
        let pem = match &settings.ca {
            CaSource::System => None,
            CaSource::Pem(pem) => Some(pem.clone().into_bytes()),
            CaSource::File(path) => Some(
                std::fs::read(path)
                    .map_err(|e| setup(format!("cannot read CA bundle {}: {e}", path.display())))?,
            ),
        };
        if let Some(pem) = pem {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("CA bundle is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(setup("CA bundle holds no certificate".into()));
            }
            // Trust the cluster's CA and nothing else.
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| setup(e.to_string()))?;
        Ok(Self {
            http,
            max_retries: settings.max_retries,
            init_timeout: settings.init_timeout,
            share_api: std::sync::Arc::default(),
        })
    }

    /// Sends one request and returns the status and body, retrying connection errors only.
    pub(crate) async fn send(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, bytes::Bytes), VaultError> {
        self.send_within(node, method, path, token, body, None)
            .await
    }

    /// [`send`](Self::send), with `timeout` instead of the client's request timeout when
    /// given. A connection error is retried (the request never reached the node); a
    /// request that was sent is never sent again, whatever happened to its answer.
    async fn send_within(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, bytes::Bytes), VaultError> {
        let url = format!("{node}/v1/{path}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), &url);
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            if let Some(token) = token {
                request = request.header("X-Vault-Token", token_header(token)?);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.map(|body| (status, body))
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(answer) => return Ok(answer),
                Err(e) if e.is_connect() && attempt <= self.max_retries => {
                    let delay = backoff(attempt);
                    debug!(node = %node, path, attempt, delay_ms = delay.as_millis() as u64, "connection failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(source) => {
                    return Err(VaultError::Unreachable {
                        node: node.clone(),
                        path: path.to_owned(),
                        attempts: attempt,
                        source: Box::new(source),
                    })
                }
            }
        }
    }

    /// Sends a request and decodes a 2xx JSON answer; any other status is an error.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&serde_json::Value>,
    ) -> Result<T, VaultError> {
        self.call_within(node, method, path, token, body, None)
            .await
    }

    /// [`call`](Self::call) with `timeout` instead of the request timeout when given.
    pub(crate) async fn call_within<T: DeserializeOwned>(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<T, VaultError> {
        let (status, bytes) = self
            .send_within(node, method.clone(), path, token, body, timeout)
            .await?;
        if !status.is_success() {
            return Err(status_error(node, method, path, status, &bytes));
        }
        decode(node, path, &bytes)
    }
}

/// `X-Vault-Token`, marked sensitive so no `Debug` of the request prints it.
pub(crate) fn token_header(token: &Secret) -> Result<HeaderValue, VaultError> {
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| VaultError::Setup {
        reason: "a Vault token holds characters that cannot be sent in a header".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// `400 Bad Request`: the code with its reason phrase, as a reader expects it.
fn status_text(status: u16) -> String {
    StatusCode::from_u16(status)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| status.to_string())
}

/// Full-jitter exponential backoff: uniform in [0, min(cap, base × 2^(attempt-1))].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(fastrand::f64())
}

fn decode<T: DeserializeOwned>(node: &NodeAddr, path: &str, bytes: &[u8]) -> Result<T, VaultError> {
    serde_json::from_slice(bytes).map_err(|e| VaultError::Decode {
        node: node.clone(),
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn status_error(
    node: &NodeAddr,
    method: Method,
    path: &str,
    status: StatusCode,
    body: &[u8],
) -> VaultError {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let errors = serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors)
        .unwrap_or_default();
    VaultError::Status {
        node: node.clone(),
        method: method.to_string(),
        path: path.to_owned(),
        status: status.as_u16(),
        errors,
    }
}

impl crate::errors::Classify for VaultError {
    fn retry_helps(&self) -> bool {
        !matches!(self, Self::Setup { .. }) && self.status() != Some(crate::errors::DENIED)
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Setup { .. } => "VaultClientSetup",
            _ if self.status() == Some(crate::errors::DENIED) => "PolicyDenied",
            _ => "VaultCallFailed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        for attempt in 1..40 {
            let delay = backoff(attempt);
            assert!(delay <= BACKOFF_CAP, "attempt {attempt}: {delay:?}");
        }
        let early: Duration = (0..200).map(|_| backoff(1)).max().expect("samples");
        assert!(
            early <= BACKOFF_BASE,
            "first retry waits at most the base: {early:?}"
        );
    }

    #[test]
    fn status_errors_carry_vaults_messages() {
        let node: NodeAddr = "https://127.0.0.1:8200".parse().expect("addr");
        let err = status_error(
            &node,
            Method::POST,
            "auth/approle/login",
            StatusCode::BAD_REQUEST,
            br#"{"errors":["invalid role or secret ID"]}"#,
        );
        assert_eq!(err.to_string(), "node https://127.0.0.1:8200 answered 400 Bad Request to POST auth/approle/login: invalid role or secret ID");
        assert_eq!(err.status(), Some(400));
    }
}
