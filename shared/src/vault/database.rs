//! The database secrets engine as a root-credential rotation sees it: a connection's
//! admin user, the users of its static roles, `rotate-root`, a dynamic credential to
//! prove the engine still reaches the database, and revoking that credential's lease.

use reqwest::Method;
use serde_json::{json, Value};

use super::{VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

/// A dynamic credential issued to prove the engine works; its password is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredential {
    /// The lease to revoke.
    pub lease_id: String,
    /// The database user the engine made.
    pub username: String,
}

impl VaultClient {
    /// `GET <mount>/config/<connection>`: the user the engine connects as; `None` when
    /// there is no such connection (404).
    pub async fn database_admin(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<Option<String>, VaultError> {
        let path = format!("{mount}/config/{connection}");
        let answer: Value = match self.call(node, Method::GET, &path, Some(token), None).await {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data = answer.get("data").unwrap_or(&answer);
        let username = data
            .pointer("/connection_details/username")
            .or_else(|| data.get("username"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(Some(username.to_owned()))
    }

    /// `LIST <mount>/static-roles` and `GET <mount>/static-roles/<role>`: each static
    /// role with its database user.
    pub async fn static_role_users(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
    ) -> Result<Vec<(String, String)>, VaultError> {
        let path = format!("{mount}/static-roles?list=true");
        let answer: Value = match self.call(node, Method::GET, &path, Some(token), None).await {
            Ok(answer) => answer,
            // No static role at all.
            Err(e) if e.status() == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let names: Vec<String> = answer
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut users = Vec::with_capacity(names.len());
        for name in names {
            let role: Value = self
                .call(
                    node,
                    Method::GET,
                    &format!("{mount}/static-roles/{name}"),
                    Some(token),
                    None,
                )
                .await?;
            let user = role
                .pointer("/data/username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            users.push((name, user));
        }
        Ok(users)
    }

    /// `POST <mount>/rotate-root/<connection>`: a new password for the engine's admin
    /// user, known only to the engine from then on.
    pub async fn rotate_database_root(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<(), VaultError> {
        self.call_empty(
            node,
            Method::POST,
            &format!("{mount}/rotate-root/{connection}"),
            token,
            None,
        )
        .await
    }

    /// `GET <mount>/creds/<role>`: a dynamic credential (the engine creates the user
    /// with its admin credentials, which proves them).
    pub async fn database_credential(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<IssuedCredential, VaultError> {
        let path = format!("{mount}/creds/{role}");
        let answer: Value = self
            .call(node, Method::GET, &path, Some(token), None)
            .await?;
        let lease_id = answer.get("lease_id").and_then(Value::as_str);
        let username = answer.pointer("/data/username").and_then(Value::as_str);
        match (lease_id, username) {
            (Some(lease_id), Some(username)) if !lease_id.is_empty() => Ok(IssuedCredential {
                lease_id: lease_id.to_owned(),
                username: username.to_owned(),
            }),
            _ => Err(VaultError::Decode {
                node: node.clone(),
                path,
                reason: "no lease_id or username".into(),
            }),
        }
    }

    /// `PUT sys/leases/revoke`.
    pub async fn revoke_lease(
        &self,
        node: &NodeAddr,
        token: &Secret,
        lease_id: &str,
    ) -> Result<(), VaultError> {
        self.call_empty(
            node,
            Method::PUT,
            "sys/leases/revoke",
            token,
            Some(&json!({"lease_id": lease_id})),
        )
        .await
    }
}
