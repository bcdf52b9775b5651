//! The canary: one value in a KV (version 1) mount of the product's own, written by
//! every snapshot just before it is taken and read after a restore, so a restore proves
//! that the data it brought back is the snapshot's, not only its cluster id and index.

use reqwest::Method;
use serde_json::{json, Value};

use super::{VaultClient, VaultError};
use crate::{
    cluster::policies::{CANARY_MOUNT, CANARY_PATH},
    ids::NodeAddr,
    secret::Secret,
};

impl VaultClient {
    /// Mounts the canary's KV engine (version 1) unless something is mounted there
    /// already. Returns whether it mounted it now.
    pub async fn ensure_canary_mount(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<bool, VaultError> {
        let mounts: Value = self
            .call(node, Method::GET, "sys/mounts", Some(token), None)
            .await?;
        let key = format!("{CANARY_MOUNT}/");
        let mounted = mounts.get("data").unwrap_or(&mounts).get(&key).is_some();
        if mounted {
            return Ok(false);
        }
        let body = json!({
            "type": "kv",
            "options": {"version": "1"},
            "description": "vault-lifecycle: the canary each snapshot carries",
        });
        self.call_empty(
            node,
            Method::POST,
            &format!("sys/mounts/{CANARY_MOUNT}"),
            token,
            Some(&body),
        )
        .await?;
        Ok(true)
    }

    /// Writes `value` as the canary.
    pub async fn write_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
        value: &str,
    ) -> Result<(), VaultError> {
        let body = json!({ "value": value });
        self.call_empty(node, Method::PUT, CANARY_PATH, token, Some(&body))
            .await
    }

    /// The canary; `None` when none was ever written (404).
    pub async fn read_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<Option<String>, VaultError> {
        let answer: Value = match self
            .call(node, Method::GET, CANARY_PATH, Some(token), None)
            .await
        {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(answer
            .pointer("/data/value")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }
}
