//! The barrier keyring: its term (`sys/key-status`), its rotation (`sys/rotate`) and the
//! policy of automatic rotation (`sys/rotate/config`). The same paths on Vault and on
//! OpenBao (where `sys/rotate/keyring` and `sys/rotate/keyring/config` are aliases).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_go_duration, VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

/// The keyring's current term and when its key was installed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyStatus {
    /// Goes up by one at each rotation.
    pub term: u64,
    /// When the current key was installed.
    pub install_time: DateTime<Utc>,
}

/// When the server rotates its keyring by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringPolicy {
    /// Whether automatic rotation is on.
    pub enabled: bool,
    /// Rotate after this many encryptions with one key.
    pub max_operations: u64,
    /// Rotate after this long; zero: never by time.
    pub interval: Duration,
}

const KEY_STATUS: &str = "sys/key-status";
const ROTATE: &str = "sys/rotate";
const ROTATE_CONFIG: &str = "sys/rotate/config";

impl VaultClient {
    /// `GET sys/key-status`.
    pub async fn key_status(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<KeyStatus, VaultError> {
        let answer: Value = self
            .call(node, Method::GET, KEY_STATUS, Some(token), None)
            .await?;
        // Newer servers put the fields in `data` as well as at the top.
        let fields = answer
            .get("data")
            .filter(|d| d.is_object())
            .unwrap_or(&answer);
        serde_json::from_value(fields.clone()).map_err(|e| VaultError::Decode {
            node: node.clone(),
            path: KEY_STATUS.to_owned(),
            reason: e.to_string(),
        })
    }

    /// `POST sys/rotate`: a new key for the keyring's next term (needs `sudo`).
    pub async fn rotate_keyring(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.call_empty(node, Method::POST, ROTATE, token, None)
            .await
    }

    /// `POST sys/rotate/root` (OpenBao; needs `sudo`): a new root key, the shares
    /// unchanged. Vault has no such call (it answers 404 or 405).
    pub async fn rotate_root_key(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.call_empty(node, Method::POST, "sys/rotate/root", token, None)
            .await
    }

    /// `GET sys/rotate/config`.
    pub async fn keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<KeyringPolicy, VaultError> {
        let answer: Value = self
            .call(node, Method::GET, ROTATE_CONFIG, Some(token), None)
            .await?;
        parse_policy(answer.get("data").unwrap_or(&answer)).ok_or_else(|| VaultError::Decode {
            node: node.clone(),
            path: ROTATE_CONFIG.to_owned(),
            reason: format!("not a rotation policy: {answer}"),
        })
    }

    /// `POST sys/rotate/config`.
    pub async fn set_keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        policy: &KeyringPolicy,
    ) -> Result<(), VaultError> {
        let body = json!({
            "enabled": policy.enabled,
            "max_operations": policy.max_operations,
            "interval": format!("{}s", policy.interval.as_secs()),
        });
        self.call_empty(node, Method::POST, ROTATE_CONFIG, token, Some(&body))
            .await
    }
}

/// The policy as the server reports it: `interval` is `0` when unset and Go's duration
/// text (`720h0m0s`) when set.
fn parse_policy(data: &Value) -> Option<KeyringPolicy> {
    let interval = match data.get("interval")? {
        Value::Number(n) => Duration::from_secs(n.as_u64()?),
        Value::String(text) => parse_go_duration(text)?,
        _ => return None,
    };
    Some(KeyringPolicy {
        enabled: data.get("enabled")?.as_bool()?,
        max_operations: data.get("max_operations")?.as_u64()?,
        interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_read_with_its_interval_unset_or_in_go_text() {
        let unset = json!({"enabled": true, "interval": 0, "max_operations": 3_865_470_566u64});
        assert_eq!(
            parse_policy(&unset),
            Some(KeyringPolicy {
                enabled: true,
                max_operations: 3_865_470_566,
                interval: Duration::ZERO
            })
        );
        let set = json!({"enabled": false, "interval": "720h0m0s", "max_operations": 1_000_000});
        assert_eq!(
            parse_policy(&set).map(|p| (p.enabled, p.interval)),
            Some((false, Duration::from_secs(720 * 3600)))
        );
        assert_eq!(parse_policy(&json!({"enabled": true})), None);
    }
}
