//! Rotating the unseal (or recovery) shares: a new set of shares for the same root key,
//! which the server makes only when the threshold of current shares is entered, and puts
//! in force only when the threshold of the *new* shares is entered back (verification).
//!
//! OpenBao 2.5 and later: `sys/rotate/root/{init,update,verify}` and
//! `sys/rotate/recovery/*`, token-authenticated (the unauthenticated `sys/rekey/*` answer
//! 405 there). HashiCorp Vault: `sys/rekey/{init,update,verify}` and
//! `sys/rekey-recovery-key/*`. The client asks the OpenBao path first and keeps whichever
//! the server answers; the bodies are the same (OpenBao wraps them in `data`).

use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::{json, Value};

use super::{VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

/// Unseal shares (Shamir) or recovery shares (auto-unseal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShareKind {
    /// Shares that unseal a Shamir-sealed node.
    Unseal,
    /// Recovery shares of an auto-unsealed cluster (they authorise, they do not unseal).
    Recovery,
}

/// A share rotation as the server holds it (in memory only: a restart or a change of
/// leader forgets it, and the current shares stay in force).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareRotation {
    /// Whether a rotation is in progress.
    pub started: bool,
    /// The nonce the current shares are entered with.
    pub nonce: String,
    /// Current shares entered so far.
    pub progress: u32,
    /// Current shares needed.
    pub required: u32,
    /// The new shares' count.
    pub shares: u32,
    /// The new shares' threshold.
    pub threshold: u32,
    /// Set once the new shares were handed out and wait for verification: the nonce they
    /// are entered with.
    pub verification_nonce: Option<String>,
}

/// What the server answered to one current share.
#[derive(Debug, Clone, PartialEq)]
pub enum RotationStep {
    /// Fewer than the threshold entered so far.
    Progress(u32),
    /// The threshold was reached: the new shares, waiting for verification.
    NewShares {
        /// The new shares (base64), in the server's order.
        shares: Vec<Secret>,
        /// The nonce to enter them back with; `None` if the server put them in force at
        /// once (it ignored the verification asked for): they must be kept all the same.
        verification_nonce: Option<String>,
    },
}

/// What the server answered to one new share entered back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyStep {
    /// Fewer than the threshold entered so far.
    Progress(u32),
    /// Verified: the new shares are in force, the old ones no longer open the seal.
    Complete,
}

const UNKNOWN: u8 = 0;
const ROTATE: u8 = 1;
const REKEY: u8 = 2;

impl ShareKind {
    fn base(self, api: u8) -> &'static str {
        match (self, api) {
            (Self::Unseal, REKEY) => "sys/rekey",
            (Self::Recovery, REKEY) => "sys/rekey-recovery-key",
            (Self::Unseal, _) => "sys/rotate/root",
            (Self::Recovery, _) => "sys/rotate/recovery",
        }
    }
}

impl VaultClient {
    /// Which family of paths this server speaks, asked once.
    async fn share_api(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<u8, VaultError> {
        let known = self.share_api.load(Ordering::Relaxed);
        if known != UNKNOWN {
            return Ok(known);
        }
        let path = format!("{}/init", kind.base(ROTATE));
        let (status, _) = self
            .send(node, Method::GET, &path, Some(token), None)
            .await?;
        let api = if matches!(status.as_u16(), 404 | 405) {
            REKEY
        } else {
            ROTATE
        };
        self.share_api.store(api, Ordering::Relaxed);
        Ok(api)
    }

    async fn path(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        step: &str,
    ) -> Result<String, VaultError> {
        let api = self.share_api(node, token, kind).await?;
        Ok(format!("{}/{step}", kind.base(api)))
    }

    /// `GET …/init`: the rotation in progress, if any.
    pub async fn share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<ShareRotation, VaultError> {
        let path = self.path(node, token, kind, "init").await?;
        let answer: Value = self
            .call(node, Method::GET, &path, Some(token), None)
            .await?;
        Ok(parse_rotation(fields(&answer)))
    }

    /// `POST …/init` with verification required: starts a rotation to `shares` new shares
    /// of which `threshold` open the seal.
    pub async fn start_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        shares: u8,
        threshold: u8,
    ) -> Result<ShareRotation, VaultError> {
        let path = self.path(node, token, kind, "init").await?;
        let body = json!({
            "secret_shares": shares,
            "secret_threshold": threshold,
            "require_verification": true,
        });
        let answer: Value = self
            .call(node, Method::POST, &path, Some(token), Some(&body))
            .await?;
        Ok(parse_rotation(fields(&answer)))
    }

    /// `DELETE …/init`: forgets the rotation in progress (its new shares, if handed out,
    /// are worthless; the current ones stay in force). Nothing in progress: no error.
    pub async fn cancel_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<(), VaultError> {
        let path = self.path(node, token, kind, "init").await?;
        self.call_empty(node, Method::DELETE, &path, token, None)
            .await
    }

    /// `POST …/update`: one current share. At the threshold the answer holds the new
    /// shares; current shares that do not open the seal are refused there (400) and the
    /// count starts again.
    pub async fn submit_rotation_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<RotationStep, VaultError> {
        let path = self.path(node, token, kind, "update").await?;
        let body = json!({"key": share.expose(), "nonce": nonce});
        let answer: Value = self
            .call(node, Method::POST, &path, Some(token), Some(&body))
            .await?;
        parse_step(fields(&answer)).ok_or_else(|| VaultError::Decode {
            node: node.clone(),
            path,
            reason: "neither a progress count nor the new shares with a verification nonce".into(),
        })
    }

    /// `POST …/verify`: one new share entered back. At the threshold the new shares are in
    /// force; shares that are not the new ones are refused there (400) and a new
    /// verification nonce is issued.
    pub async fn submit_verification_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<VerifyStep, VaultError> {
        let path = self.path(node, token, kind, "verify").await?;
        let body = json!({"key": share.expose(), "nonce": nonce});
        let answer: Value = self
            .call(node, Method::POST, &path, Some(token), Some(&body))
            .await?;
        let data = fields(&answer);
        Ok(
            if data.get("complete").and_then(Value::as_bool) == Some(true) {
                VerifyStep::Complete
            } else {
                VerifyStep::Progress(count(data, "progress"))
            },
        )
    }

    /// `DELETE …/verify`, then `GET …/init`: starts the verification count again (what an
    /// earlier run entered is forgotten) and returns the new verification nonce; `None`
    /// when no rotation waits for verification (nothing is sent then).
    pub async fn restart_verification(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<Option<String>, VaultError> {
        if self
            .share_rotation(node, token, kind)
            .await?
            .verification_nonce
            .is_none()
        {
            return Ok(None);
        }
        let path = self.path(node, token, kind, "verify").await?;
        self.call_empty(node, Method::DELETE, &path, token, None)
            .await?;
        Ok(self
            .share_rotation(node, token, kind)
            .await?
            .verification_nonce)
    }
}

/// OpenBao wraps the fields in `data`; Vault does not.
fn fields(answer: &Value) -> &Value {
    answer
        .get("data")
        .filter(|d| d.is_object())
        .unwrap_or(answer)
}

fn count(data: &Value, name: &str) -> u32 {
    data.get(name)
        .and_then(Value::as_u64)
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn text(data: &Value, name: &str) -> Option<String> {
    data.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_rotation(data: &Value) -> ShareRotation {
    ShareRotation {
        started: data.get("started").and_then(Value::as_bool) == Some(true),
        nonce: text(data, "nonce").unwrap_or_default(),
        progress: count(data, "progress"),
        required: count(data, "required"),
        shares: count(data, "n"),
        threshold: count(data, "t"),
        verification_nonce: text(data, "verification_nonce"),
    }
}

/// The new shares are read into [`Secret`]s one by one, so no decoding error can quote
/// one.
fn parse_step(data: &Value) -> Option<RotationStep> {
    if data.get("complete").and_then(Value::as_bool) != Some(true) {
        return data
            .get("progress")
            .and_then(Value::as_u64)
            .map(|_| RotationStep::Progress(count(data, "progress")));
    }
    let shares = data
        .get("keys_base64")
        .and_then(Value::as_array)?
        .iter()
        .map(|share| share.as_str().map(Secret::new))
        .collect::<Option<Vec<_>>>()?;
    if shares.is_empty() {
        return None;
    }
    Some(RotationStep::NewShares {
        shares,
        verification_nonce: text(data, "verification_nonce"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openbaos_and_vaults_answers_read_alike() {
        let openbao = json!({"data": {"n": 5, "nonce": "a", "progress": 1, "required": 3,
            "started": true, "t": 3, "verification_nonce": "", "verification_required": true}});
        let vault = json!({"n": 5, "nonce": "a", "progress": 1, "required": 3,
            "started": true, "t": 3, "verification_nonce": "", "verification_required": true});
        let want = ShareRotation {
            started: true,
            nonce: "a".into(),
            progress: 1,
            required: 3,
            shares: 5,
            threshold: 3,
            verification_nonce: None,
        };
        assert_eq!(parse_rotation(fields(&openbao)), want);
        assert_eq!(parse_rotation(fields(&vault)), want);
        let idle = json!({"data": {"n": 0, "required": 3, "started": false, "t": 0}});
        assert!(!parse_rotation(fields(&idle)).started);
    }

    #[test]
    fn the_completing_answer_gives_the_new_shares_and_the_verification_nonce() {
        let done = json!({"data": {"complete": true, "keys": ["00"], "keys_base64": ["AA==", "AQ=="],
            "nonce": "a", "verification_nonce": "v", "verification_required": true}});
        let Some(RotationStep::NewShares {
            shares,
            verification_nonce,
        }) = parse_step(fields(&done))
        else {
            panic!("new shares expected");
        };
        assert_eq!(
            shares.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["AA==", "AQ=="]
        );
        assert_eq!(verification_nonce.as_deref(), Some("v"));
        assert_eq!(
            parse_step(&json!({"progress": 2, "started": true})),
            Some(RotationStep::Progress(2))
        );
        // Shares put in force without verification are new shares all the same.
        assert!(matches!(
            parse_step(&json!({"complete": true, "keys_base64": ["AA=="]})),
            Some(RotationStep::NewShares {
                verification_nonce: None,
                ..
            })
        ));
        assert_eq!(
            parse_step(&json!({"complete": true, "keys_base64": []})),
            None
        );
    }
}
