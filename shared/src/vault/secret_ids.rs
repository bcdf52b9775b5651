//! AppRole secret IDs as a rotation sees them: what the server knows of one
//! (`secret-id/lookup`: its accessor, when it was made, when it expires) and destroying
//! one by its accessor (`secret-id-accessor/destroy`). The value of a secret ID is sent
//! only in a request body, never in a path or an error.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use super::{VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

/// What the server knows of one secret ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretIdInfo {
    /// Its accessor: names it without being it.
    pub accessor: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it expires; `None` when it does not.
    pub expires: Option<DateTime<Utc>>,
}

impl VaultClient {
    /// `POST auth/<mount>/role/<role>/secret-id/lookup`: `None` when the server does not
    /// know it (expired, destroyed, or never issued: it answers 204).
    pub async fn secret_id_info(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        secret_id: &Secret,
    ) -> Result<Option<SecretIdInfo>, VaultError> {
        let path = format!("auth/{mount}/role/{role}/secret-id/lookup");
        let body = json!({"secret_id": secret_id.expose()});
        let (status, bytes) = self
            .send(node, Method::POST, &path, Some(token), Some(&body))
            .await?;
        if status.as_u16() == 204 || (status.is_success() && bytes.is_empty()) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(super::status_error(
                node,
                Method::POST,
                &path,
                status,
                &bytes,
            ));
        }
        let answer: Value = super::decode(node, &path, &bytes)?;
        parse_info(answer.get("data").unwrap_or(&answer))
            .map(Some)
            .ok_or_else(|| VaultError::Decode {
                node: node.clone(),
                path,
                reason: "no secret_id_accessor or creation_time".into(),
            })
    }

    /// `POST auth/<mount>/role/<role>/secret-id-accessor/destroy`: whether it existed (a
    /// second destroy finds nothing, and OpenBao answers 500 "failed to find accessor
    /// entry": not an error here).
    pub async fn destroy_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> Result<bool, VaultError> {
        let path = format!("auth/{mount}/role/{role}/secret-id-accessor/destroy");
        let body = json!({"secret_id_accessor": accessor});
        let (status, bytes) = self
            .send(node, Method::POST, &path, Some(token), Some(&body))
            .await?;
        if status.is_success() {
            return Ok(true);
        }
        let error = super::status_error(node, Method::POST, &path, status, &bytes);
        if error.to_string().contains("failed to find accessor entry") {
            return Ok(false);
        }
        Err(error)
    }
}

/// `expiration_time` is Go's zero time when the secret ID does not expire.
fn parse_info(data: &Value) -> Option<SecretIdInfo> {
    let time = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    Some(SecretIdInfo {
        accessor: data.get("secret_id_accessor")?.as_str()?.to_owned(),
        created: time("creation_time")?,
        expires: time("expiration_time").filter(|t| t.timestamp() > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_reads_the_accessor_and_times_and_go_s_zero_time_as_never() {
        let answer = json!({"data": {"cidr_list": [], "creation_time": "2026-12-01T13:03:49.767598516Z",
            "expiration_time": "2027-01-02T13:03:49.767598516Z", "secret_id_accessor": "8bc7",
            "secret_id_num_uses": 0, "secret_id_ttl": 7_776_000}});
        let info = parse_info(&answer["data"]).expect("parsed");
        assert_eq!(info.accessor, "8bc7");
        assert_eq!(
            info.created.to_rfc3339(),
            "2026-12-01T13:03:49.767598516+00:00"
        );
        assert!(info.expires.is_some());
        let never = json!({"secret_id_accessor": "a", "creation_time": "2026-12-01T00:00:00Z",
            "expiration_time": "0001-01-01T00:00:00Z"});
        assert_eq!(parse_info(&never).expect("parsed").expires, None);
        assert_eq!(
            parse_info(&json!({"creation_time": "2026-12-01T00:00:00Z"})),
            None
        );
    }
}
