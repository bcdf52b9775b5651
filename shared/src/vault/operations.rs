//! The calls that change a cluster: init, unseal, join, step-down, remove-peer. Shares and
//! tokens go in and come out as [`Secret`]s; no error carries one.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{SealStatus, VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

/// What `sys/init` returned: the shares and the initial root token.
#[derive(Debug)]
pub struct InitOutput {
    /// Unseal shares (Shamir), or recovery shares (auto-unseal), base64.
    pub shares: Vec<Secret>,
    /// The initial root token.
    pub root_token: Secret,
}

impl VaultClient {
    /// `PUT sys/init`. With `recovery` (auto-unseal) the counts are recovery shares.
    /// A one-shot action: call it only under the init lock, after checking no node is
    /// initialised. A node that is already initialised answers 400.
    ///
    /// It has its own timeout (`VAULT_INIT_TIMEOUT_SECS`), not the request timeout: the
    /// node completes the init whether or not we wait, and the answer is the only copy of
    /// the shares and root token. Giving up early loses them for good.
    pub async fn init(
        &self,
        node: &NodeAddr,
        shares: u8,
        threshold: u8,
        recovery: bool,
    ) -> Result<InitOutput, VaultError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            keys_base64: Vec<Secret>,
            #[serde(default)]
            recovery_keys_base64: Vec<Secret>,
            root_token: Secret,
        }
        let body = if recovery {
            json!({ "recovery_shares": shares, "recovery_threshold": threshold })
        } else {
            json!({ "secret_shares": shares, "secret_threshold": threshold })
        };
        let answer: Answer = self
            .call_within(
                node,
                Method::PUT,
                "sys/init",
                None,
                Some(&body),
                Some(self.init_timeout),
            )
            .await?;
        let shares = if recovery {
            answer.recovery_keys_base64
        } else {
            answer.keys_base64
        };
        Ok(InitOutput {
            shares,
            root_token: answer.root_token,
        })
    }

    /// `PUT sys/unseal` with one share; returns the seal status after it. A share cannot be
    /// checked on its own: a wrong one counts as progress, and the unseal fails (400,
    /// without echoing any share) only when the threshold is reached.
    pub async fn unseal(&self, node: &NodeAddr, share: &Secret) -> Result<SealStatus, VaultError> {
        let body = json!({ "key": share.expose() });
        self.call(node, Method::PUT, "sys/unseal", None, Some(&body))
            .await
    }

    /// `PUT sys/unseal` with `reset`: forgets the shares entered so far, so an unseal that
    /// a previous run left half-way starts clean.
    pub async fn unseal_reset(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        let body = json!({ "reset": true });
        self.call(node, Method::PUT, "sys/unseal", None, Some(&body))
            .await
    }

    /// `POST sys/storage/raft/join` on a node that is not yet part of a cluster: it joins
    /// through `leader`, trusting `leader_ca_pem`. Returns whether it joined.
    pub async fn join(
        &self,
        node: &NodeAddr,
        leader: &NodeAddr,
        leader_ca_pem: Option<&str>,
    ) -> Result<bool, VaultError> {
        #[derive(Deserialize)]
        struct Answer {
            joined: bool,
        }
        let mut body = json!({ "leader_api_addr": leader.as_str() });
        if let Some(pem) = leader_ca_pem {
            body["leader_ca_cert"] = json!(pem);
        }
        let answer: Answer = self
            .call(
                node,
                Method::POST,
                "sys/storage/raft/join",
                None,
                Some(&body),
            )
            .await?;
        Ok(answer.joined)
    }

    /// `PUT sys/step-down`: the active node gives up leadership (needs `sudo`).
    pub async fn step_down(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.call_empty(node, Method::PUT, "sys/step-down", token, None)
            .await
    }

    /// `POST sys/storage/raft/remove-peer`: removes `node_id` from the Raft configuration.
    /// Removing a peer that is already gone is an error from Vault; check the configuration
    /// first.
    pub async fn remove_peer(
        &self,
        node: &NodeAddr,
        token: &Secret,
        node_id: &str,
    ) -> Result<(), VaultError> {
        let body = json!({ "server_id": node_id });
        self.call_empty(
            node,
            Method::POST,
            "sys/storage/raft/remove-peer",
            token,
            Some(&body),
        )
        .await
    }

    pub(super) async fn call_empty(
        &self,
        node: &NodeAddr,
        method: Method,
        path: &str,
        token: &Secret,
        body: Option<&serde_json::Value>,
    ) -> Result<(), VaultError> {
        let (status, bytes) = self
            .send(node, method.clone(), path, Some(token), body)
            .await?;
        if !status.is_success() {
            return Err(super::status_error(node, method, path, status, &bytes));
        }
        Ok(())
    }
}
