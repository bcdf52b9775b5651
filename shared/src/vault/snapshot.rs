//! `GET sys/storage/raft/snapshot` as a stream of chunks: the body is never collected.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;

use super::{status_error, token_header, VaultClient, VaultError};
use crate::{
    chunks::{ChunkSource, OutgoingBody},
    ids::NodeAddr,
    secret::Secret,
};

const PATH: &str = "sys/storage/raft/snapshot";

/// A snapshot's body as it arrives, read through [`ChunkSource`] until `None`.
pub struct SnapshotBody {
    node: NodeAddr,
    response: reqwest::Response,
}

#[async_trait::async_trait]
impl ChunkSource for SnapshotBody {
    type Error = VaultError;
    /// The next chunk, as the connection delivers it; `None` at the end. A stream cut
    /// mid-way is an error here, or a short archive that the check refuses.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, VaultError> {
        self.response
            .chunk()
            .await
            .map_err(|source| VaultError::Unreachable {
                node: self.node.clone(),
                path: PATH.into(),
                attempts: 1,
                source: Box::new(source),
            })
    }
}

impl VaultClient {
    /// Starts a snapshot from `node` (take it from the active node: a standby may answer
    /// an empty or partial one on some versions). `timeout` bounds the whole transfer,
    /// unlike the client's per-request timeout.
    pub async fn snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        timeout: Duration,
    ) -> Result<SnapshotBody, VaultError> {
        let response = self
            .transfer(node, Method::GET, PATH, token, None, timeout)
            .await?;
        Ok(SnapshotBody {
            node: node.clone(),
            response,
        })
    }
}

/// What `sys/leader` says about the Raft log now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct LeaderStatus {
    /// Whether this node is the leader.
    #[serde(default)]
    pub is_self: bool,
    /// The highest index committed.
    #[serde(default)]
    pub raft_committed_index: u64,
    /// The highest index applied.
    #[serde(default)]
    pub raft_applied_index: u64,
}

impl VaultClient {
    /// Sends a snapshot to `node` (the active node): `POST sys/storage/raft/snapshot`, or
    /// `snapshot-force` for a snapshot of another cluster (its keyring is not this
    /// cluster's). `body` is streamed; if it ends in an error the request is cut off, and
    /// the node, which checks the archive before installing it, installs nothing.
    pub async fn restore_snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        body: OutgoingBody,
        force: bool,
        timeout: Duration,
    ) -> Result<(), VaultError> {
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            PATH
        };
        let body = reqwest::Body::wrap_stream(body);
        self.transfer(node, Method::POST, path, token, Some(body), timeout)
            .await?;
        Ok(())
    }

    /// One request whose body streams (a snapshot, either way): sent once, never
    /// retried, with `timeout` for the whole transfer rather than the client's
    /// per-request timeout. Any status but 2xx is an error carrying Vault's message.
    async fn transfer(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        token: &Secret,
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<reqwest::Response, VaultError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{node}/v1/{path}"))
            .header("X-Vault-Token", token_header(token)?)
            .timeout(timeout);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/octet-stream")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| VaultError::Unreachable {
                node: node.clone(),
                path: path.into(),
                attempts: 1,
                source: Box::new(source),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(status_error(node, method, path, status, &body));
        }
        Ok(response)
    }

    /// `GET sys/leader`: the Raft indexes as `node` sees them.
    pub async fn leader(&self, node: &NodeAddr) -> Result<LeaderStatus, VaultError> {
        self.call(node, Method::GET, "sys/leader", None, None).await
    }
}
