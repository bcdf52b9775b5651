//! The API calls the functions make, with their answers as typed structs. Only the fields
//! we use are declared; unknown fields are ignored so newer servers keep working.

use std::{collections::BTreeMap, time::Duration};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{decode, parse_go_duration, status_error, VaultClient, VaultError};
use crate::{ids::NodeAddr, secret::Secret};

/// A signed `sts:GetCallerIdentity` request, base64-encoded as Vault's aws auth method
/// takes it. The headers carry a signature valid for minutes: they are a secret.
#[derive(Debug, Clone)]
pub struct IamLoginRequest {
    /// `POST`.
    pub method: &'static str,
    /// The STS URL, base64.
    pub url: String,
    /// The form body, base64.
    pub body: String,
    /// The signed headers as JSON, base64.
    pub headers: Secret,
}

/// A node's answer to `GET sys/health`, status code included.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// 200 active, 429 standby, 472 DR secondary, 473 performance standby,
    /// 474 standby without an active node, 501 not initialised, 503 sealed, 530 removed.
    pub code: u16,
    /// The node has been initialised (or joined an initialised cluster).
    pub initialized: bool,
    /// The node is sealed.
    pub sealed: bool,
    /// The node is a standby.
    pub standby: bool,
    /// Server version, e.g. `2.7.2`.
    pub version: String,
    /// Cluster id, once initialised and unsealed.
    pub cluster_id: Option<String>,
}

impl Health {
    /// The node is the active node of its cluster.
    pub fn is_active(&self) -> bool {
        self.code == 200
    }

    /// The node serves its cluster: initialised, unsealed, and active (200) or a standby
    /// (429, or Vault's performance standby, 473) of a cluster that has an active node.
    pub fn is_serving(&self) -> bool {
        self.initialized && !self.sealed && matches!(self.code, 200 | 429 | 473)
    }
}

#[derive(Deserialize)]
struct HealthBody {
    initialized: bool,
    sealed: bool,
    #[serde(default)]
    standby: bool,
    #[serde(default)]
    version: String,
    #[serde(default)]
    cluster_id: Option<String>,
}

/// The codes `sys/health` uses to describe a node rather than to report a failure.
const HEALTH_CODES: [u16; 8] = [200, 429, 472, 473, 474, 501, 503, 530];

/// A node's answer to `GET sys/seal-status`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SealStatus {
    /// `shamir`, `transit`, `awskms`, ...
    #[serde(rename = "type")]
    pub seal_type: String,
    /// The node has been initialised.
    pub initialized: bool,
    /// The node is sealed.
    pub sealed: bool,
    /// Shares needed to unseal (or recovery shares needed, under auto-unseal).
    #[serde(rename = "t")]
    pub threshold: u32,
    /// Shares in all.
    #[serde(rename = "n")]
    pub shares: u32,
    /// Shares entered so far toward the threshold.
    pub progress: u32,
    /// The shares are recovery shares (auto-unseal), not unseal shares.
    #[serde(default)]
    pub recovery_seal: bool,
    /// Server version.
    #[serde(default)]
    pub version: String,
}

/// A token from a login, with how long Vault will honour it.
#[derive(Debug, Clone)]
pub struct Login {
    /// The client token; send it, never log it.
    pub token: Secret,
    /// How long it lives unless renewed.
    pub lease: Duration,
}

/// One server in `sys/storage/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RaftServer {
    /// The node id (by convention, the EC2 instance id).
    pub node_id: String,
    /// Its Raft cluster address, `host:port`.
    pub address: String,
    /// It leads the cluster now.
    pub leader: bool,
    /// It votes.
    pub voter: bool,
}

/// `sys/storage/raft/configuration`: the peer list as Raft holds it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RaftConfiguration {
    /// Every peer, voters and non-voters.
    pub servers: Vec<RaftServer>,
}

/// One server in autopilot's view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutopilotServer {
    /// The node id (by convention, the EC2 instance id).
    pub id: String,
    /// Autopilot judges it healthy.
    pub healthy: bool,
    /// `leader`, `voter`, `non-voter` or `staging`.
    pub status: String,
    /// Time since the leader last heard from it (milliseconds in JSON).
    #[serde(rename = "last_contact_ms", serialize_with = "millis")]
    pub last_contact: Option<Duration>,
    /// Since when autopilot has judged it as it does now (healthy or not).
    pub stable_since: Option<chrono::DateTime<chrono::Utc>>,
}

impl AutopilotServer {
    /// It counts toward quorum.
    pub fn is_voter(&self) -> bool {
        self.status == "leader" || self.status == "voter"
    }
}

/// `sys/storage/raft/autopilot/state`: the cluster's health as autopilot judges it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutopilotState {
    /// Every server is healthy.
    pub healthy: bool,
    /// How many voters can fail before quorum is lost.
    pub failure_tolerance: u32,
    /// The leader's node id.
    pub leader: Option<String>,
    /// Every server autopilot knows, by node id.
    pub servers: BTreeMap<String, AutopilotServer>,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

impl VaultClient {
    /// `GET sys/health`. Every status the endpoint uses to describe a node is an answer,
    /// not an error: a sealed node is `Ok` with `code: 503`.
    pub async fn health(&self, node: &NodeAddr) -> Result<Health, VaultError> {
        let path = "sys/health";
        let (status, bytes) = self.send(node, Method::GET, path, None, None).await?;
        if !HEALTH_CODES.contains(&status.as_u16()) {
            return Err(status_error(node, Method::GET, path, status, &bytes));
        }
        let body: HealthBody = decode(node, path, &bytes)?;
        Ok(Health {
            code: status.as_u16(),
            initialized: body.initialized,
            sealed: body.sealed,
            standby: body.standby,
            version: body.version,
            cluster_id: body.cluster_id.filter(|id| !id.is_empty()),
        })
    }

    /// `GET sys/seal-status`: answers sealed or not, without a token.
    pub async fn seal_status(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        self.call(node, Method::GET, "sys/seal-status", None, None)
            .await
    }

    /// `POST auth/<mount>/login` of the aws auth method with a signed GetCallerIdentity.
    pub async fn aws_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role: &str,
        request: &IamLoginRequest,
    ) -> Result<Login, VaultError> {
        let body = json!({
            "role": role,
            "iam_http_request_method": request.method,
            "iam_request_url": request.url,
            "iam_request_body": request.body,
            "iam_request_headers": request.headers.expose(),
        });
        self.login(node, &format!("auth/{mount}/login"), &body)
            .await
    }

    async fn login(
        &self,
        node: &NodeAddr,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Login, VaultError> {
        #[derive(Deserialize)]
        struct Auth {
            client_token: Secret,
            lease_duration: u64,
        }
        #[derive(Deserialize)]
        struct Answer {
            auth: Auth,
        }
        let answer: Answer = self
            .call(node, Method::POST, path, None, Some(body))
            .await?;
        Ok(Login {
            token: answer.auth.client_token,
            lease: Duration::from_secs(answer.auth.lease_duration),
        })
    }

    /// `POST auth/<mount>/login` with a role ID and secret ID.
    pub async fn approle_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role_id: &Secret,
        secret_id: &Secret,
    ) -> Result<Login, VaultError> {
        let body = json!({ "role_id": role_id.expose(), "secret_id": secret_id.expose() });
        self.login(node, &format!("auth/{mount}/login"), &body)
            .await
    }

    /// `GET sys/storage/raft/configuration` (needs a token).
    pub async fn raft_configuration(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<RaftConfiguration, VaultError> {
        #[derive(Deserialize)]
        struct Config {
            config: RaftConfiguration,
        }
        let answer: Data<Config> = self
            .call(
                node,
                Method::GET,
                "sys/storage/raft/configuration",
                Some(token),
                None,
            )
            .await?;
        Ok(answer.data.config)
    }

    /// `GET sys/storage/raft/autopilot/state` (needs a token).
    pub async fn autopilot_state(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<AutopilotState, VaultError> {
        #[derive(Deserialize)]
        struct Server {
            id: String,
            healthy: bool,
            status: String,
            #[serde(default)]
            last_contact: Option<String>,
            #[serde(default)]
            stable_since: Option<String>,
        }
        #[derive(Deserialize)]
        struct State {
            healthy: bool,
            failure_tolerance: u32,
            #[serde(default)]
            leader: Option<String>,
            #[serde(default)]
            servers: BTreeMap<String, Server>,
        }
        let path = "sys/storage/raft/autopilot/state";
        let answer: Data<State> = self
            .call(node, Method::GET, path, Some(token), None)
            .await?;
        let mut servers = BTreeMap::new();
        for (key, server) in answer.data.servers {
            let last_contact = match server.last_contact.as_deref() {
                None | Some("") => None,
                Some(text) => Some(parse_go_duration(text).ok_or_else(|| VaultError::Decode {
                    node: node.clone(),
                    path: path.into(),
                    reason: format!("last_contact {text:?} of {key} is not a duration"),
                })?),
            };
            servers.insert(
                key,
                AutopilotServer {
                    id: server.id,
                    healthy: server.healthy,
                    status: server.status,
                    last_contact,
                    // Go's zero time ("0001-01-01T00:00:00Z") means "never judged": no time.
                    stable_since: server
                        .stable_since
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .filter(|t| chrono::Datelike::year(t) > 1),
                },
            );
        }
        Ok(AutopilotState {
            healthy: answer.data.healthy,
            failure_tolerance: answer.data.failure_tolerance,
            leader: answer.data.leader.filter(|l| !l.is_empty()),
            servers,
        })
    }
}

fn millis<S: serde::Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_some(&(d.as_millis() as u64)),
        None => serializer.serialize_none(),
    }
}
