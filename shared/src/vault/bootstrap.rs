//! The calls that give a fresh cluster its functions' logins: auth methods, ACL
//! policies, AppRoles and their credentials, and revoking the token used to make them.
//! Each is safe to repeat: enabling checks first, policies and roles are overwritten with
//! the same content.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

impl VaultClient {
    /// Enables the auth method `kind` at `mount` unless something is mounted there already.
    /// Returns whether it enabled it now.
    pub async fn ensure_auth_enabled(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        kind: &str,
    ) -> Result<bool, VaultError> {
        let mounts: Data<serde_json::Map<String, serde_json::Value>> = self
            .call(node, Method::GET, "sys/auth", Some(token), None)
            .await?;
        if mounts.data.contains_key(&format!("{mount}/")) {
            return Ok(false);
        }
        let body = json!({ "type": kind });
        self.call_empty(
            node,
            Method::POST,
            &format!("sys/auth/{mount}"),
            token,
            Some(&body),
        )
        .await?;
        Ok(true)
    }

    /// Writes the ACL policy `name` (creates or replaces it).
    pub async fn put_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        name: &str,
        policy: &str,
    ) -> Result<(), VaultError> {
        let body = json!({ "policy": policy });
        self.call_empty(
            node,
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            token,
            Some(&body),
        )
        .await
    }

    /// Writes the AppRole `role` under `mount`: tokens carry only `policy` and live an
    /// hour (renewable to four); secret IDs live `limits.secret_id_ttl` (zero: until
    /// replaced); secret IDs and tokens work only from `limits.bound_cidrs` when given.
    pub async fn put_approle(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        policy: &str,
        limits: &crate::cluster::node::AppRoleLimits,
    ) -> Result<(), VaultError> {
        let body = json!({
            "token_policies": [policy],
            "token_ttl": "1h",
            "token_max_ttl": "4h",
            "secret_id_ttl": format!("{}s", limits.secret_id_ttl.as_secs()),
            "secret_id_num_uses": 0,
            "secret_id_bound_cidrs": limits.bound_cidrs,
            "token_bound_cidrs": limits.bound_cidrs,
        });
        self.call_empty(
            node,
            Method::POST,
            &format!("auth/{mount}/role/{role}"),
            token,
            Some(&body),
        )
        .await
    }

    /// The role ID of AppRole `role`.
    pub async fn approle_role_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        #[derive(Deserialize)]
        struct RoleId {
            role_id: Secret,
        }
        let answer: Data<RoleId> = self
            .call(
                node,
                Method::GET,
                &format!("auth/{mount}/role/{role}/role-id"),
                Some(token),
                None,
            )
            .await?;
        Ok(answer.data.role_id)
    }

    /// A new secret ID for AppRole `role`.
    pub async fn new_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        #[derive(Deserialize)]
        struct SecretId {
            secret_id: Secret,
        }
        let answer: Data<SecretId> = self
            .call(
                node,
                Method::POST,
                &format!("auth/{mount}/role/{role}/secret-id"),
                Some(token),
                Some(&json!({})),
            )
            .await?;
        Ok(answer.data.secret_id)
    }

    /// Revokes `token` itself (and its children).
    pub async fn revoke_self(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.call_empty(node, Method::POST, "auth/token/revoke-self", token, None)
            .await
    }

    /// Whether `token` is still valid (`auth/token/lookup-self` answers 200, not 403).
    pub async fn token_is_valid(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<bool, VaultError> {
        let (status, bytes) = self
            .send(
                node,
                Method::GET,
                "auth/token/lookup-self",
                Some(token),
                None,
            )
            .await?;
        match status.as_u16() {
            200 => Ok(true),
            403 => Ok(false),
            _ => Err(super::status_error(
                node,
                Method::GET,
                "auth/token/lookup-self",
                status,
                &bytes,
            )),
        }
    }
}
