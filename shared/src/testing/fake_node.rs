//! A stateful fake cluster behind the node port: initialised or not, each node sealed or
//! not, the Raft peers and their leader, the shares that unseal it, tokens, bootstrap
//! state and the data a snapshot carries. It answers as OpenBao 2.7 does for the calls
//! the functions make (the same status codes for the same refusals), so a state machine
//! that passes here meets the same answers on a real server; [`super::node_contract`]
//! runs one body over both.
//!
//! What it models, as measured on OpenBao: a Shamir node that joins becomes a Raft peer
//! only once it is unsealed, as a non-voter; autopilot promotes it after it has been
//! healthy for the stabilisation time (10 s by default); a repeated share adds no
//! progress; an active node that steps down with no other voter to take over leaves the
//! cluster without an active node for 10 s, then leads again; removing a peer that is not
//! there succeeds; a leader that has lost its majority steps down after its lease. Time
//! is tokio's, so a test with a paused clock runs these waits at once. A restored
//! snapshot sealed with this cluster's keys leaves every node unsealed, forced or not;
//! one of another cluster (made known with [`FakeCluster::knows_snapshot`]) is refused
//! without force, and with force seals every node until the source's shares unseal it.
//! What it does not model: ACL policies (every valid token may do everything), and more
//! than one cluster (initialising a second one panics, as no state machine may do it).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::snapshots::{good_snapshot, sha256_hex};
use crate::{
    cluster::node::{
        AppRoleLimits, AutopilotServer, AutopilotState, ChunkSource, Health, IamLoginRequest,
        InitOutput, IssuedCredential, KeyStatus, KeyringPolicy, LeaderStatus, Login, NodeApi,
        OutgoingBody, RaftConfiguration, RaftServer, RotationStep, SealStatus, SecretIdInfo,
        ShareKind, ShareRotation, SnapshotStream, VaultError, VerifyStep,
    },
    cluster::policies::CANARY_PATH,
    ids::NodeAddr,
    secret::Secret,
    snapshots::archive::SnapshotCheck,
};

/// Autopilot's default server stabilisation time.
pub const STABILISATION: Duration = Duration::from_secs(10);

/// How long an active node that stepped down waits before it takes the lead again
/// (Vault's manual step-down sleep), when no other voter took it.
pub const STEP_DOWN_SLEEP: Duration = Duration::from_secs(10);

/// How long a leader that no longer hears from a majority of voters keeps leading before
/// it steps down (Raft's leader lease at Vault's default performance multiplier).
pub const LEADER_LEASE: Duration = Duration::from_millis(2500);

/// One fake node.
#[derive(Debug, Clone, Default)]
pub struct FakeNode {
    /// It answers at all.
    pub up: bool,
    /// It holds Raft data (initialised the cluster, or joined it).
    pub initialised: bool,
    /// It is sealed.
    pub sealed: bool,
    /// Shares entered towards the threshold, since the last reset.
    pub progress: Vec<String>,
    /// It joined with a Shamir seal and becomes a Raft peer once unsealed.
    pub joining: bool,
    /// When it last became healthy or unhealthy (up and unsealed, or not), as autopilot
    /// times it; `None` for a node that has been as it is since the fake was built.
    pub since: Option<Instant>,
}

impl FakeNode {
    fn healthy(&self) -> bool {
        self.up && self.initialised && !self.sealed
    }
}

/// The cluster's state; a test reads and changes it through [`FakeCluster::state`].
#[derive(Debug, Default)]
pub struct ClusterState {
    /// The nodes, by instance id (node `i-1` answers at `https://i-1.test:8200`).
    pub nodes: BTreeMap<String, FakeNode>,
    /// The seal unseals by itself (auto-unseal): init gives recovery shares.
    pub auto_unseal: bool,
    /// Whether `sys/init` has run.
    pub initialised: bool,
    /// The shares that unseal the cluster (base64, as OpenBao gives them), and how many
    /// are needed.
    pub shares: Vec<String>,
    /// See `shares`.
    pub threshold: usize,
    /// The Raft peers: node id to voter.
    pub peers: BTreeMap<String, bool>,
    /// The leader's node id.
    pub leader: Option<String>,
    /// The tokens Vault honours (the root token while not revoked, and logins).
    pub tokens: BTreeSet<String>,
    /// Logins made.
    pub logins: usize,
    /// Answer 400 to every login, as Vault does for a wrong secret ID.
    pub refuse_logins: bool,
    /// The Raft data as a snapshot carries it.
    pub data: Vec<u8>,
    /// Snapshots installed, with whether each was forced.
    pub restores: Vec<(Vec<u8>, bool)>,
    /// Auth methods enabled, by mount.
    pub auth_mounts: BTreeMap<String, String>,
    /// ACL policies, by name.
    pub policies: BTreeMap<String, String>,
    /// AppRoles (`mount/role`) and their policy. Once a mount has a role, a login there
    /// must present a role ID and a secret ID the fake issued; a cluster built as already
    /// running ([`FakeCluster::healthy`]) has none, and takes any credentials.
    pub approles: BTreeMap<String, String>,
    /// What each AppRole's credentials are limited to, by `<mount>/<role>`.
    pub approle_limits: BTreeMap<String, AppRoleLimits>,
    /// Secret IDs minted, per `mount/role`.
    pub secret_ids: BTreeMap<String, usize>,
    /// Every call, as `method node`, in order (no secret is ever recorded).
    pub calls: Vec<String>,
    /// The cluster id.
    pub cluster_id: String,
    /// Autopilot's failure tolerance, when a test sets it; else computed from the voters.
    pub failure_tolerance: Option<u32>,
    /// How long a non-voter must be healthy before autopilot promotes it.
    pub stabilisation: Duration,
    /// An active node that stepped down with no voter to take over, and when it leads
    /// again.
    pub stepped_down: Option<(String, Instant)>,
    /// Since when the leader has lacked a majority of healthy voters.
    pub quorum_lost_at: Option<Instant>,
    /// Snapshots of other clusters a test has handed this one, by SHA-256, with the
    /// keyring each carries (see [`FakeCluster::knows_snapshot`]). Any other snapshot is
    /// taken to be this cluster's own, sealed with its keys.
    pub foreign_snapshots: BTreeMap<String, Keyring>,
    /// The snapshot body breaks after this many bytes, as when the connection drops
    /// mid-transfer.
    pub snapshot_breaks_after: Option<usize>,
    /// The barrier keyring's term (0 is reported as 1, a new cluster's).
    pub keyring_term: u64,
    /// The Raft index `sys/leader` reports applied (`None`: 100).
    pub applied_index: Option<u64>,
    /// When the keyring's current key was installed.
    pub keyring_installed: chrono::DateTime<chrono::Utc>,
    /// The automatic rotation policy set; `None`: the server's default.
    pub keyring_policy: Option<KeyringPolicy>,
    /// Root key rotations (`sys/rotate/root`).
    pub root_key_rotations: u64,
    /// Database connections, by `<mount>/<connection>`.
    pub databases: BTreeMap<String, FakeDatabase>,
    /// Dynamic database roles, by `<mount>/<role>`: their connection.
    pub database_roles: BTreeMap<String, String>,
    /// Static database roles, by `<mount>/<role>`: their database user.
    pub static_roles: BTreeMap<String, String>,
    /// Leases issued and not revoked.
    pub leases: BTreeSet<String>,
    /// Leases issued so far, for their ids.
    pub leases_issued: usize,
    /// The share rotation the active node holds in memory (forgotten when it restarts
    /// or loses the lead, as the server forgets it).
    pub share_rotation: Option<FakeShareRotation>,
    /// Share rotations started, for nonces and new shares' labels.
    pub share_rotations_started: usize,
    /// Secret IDs destroyed (they no longer log in).
    pub destroyed_secret_ids: BTreeSet<String>,
    /// When each secret ID was made.
    pub secret_id_created: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    /// The canary's KV mount exists (bootstrap made it; a cluster built as already
    /// running has it).
    pub canary_mount: bool,
    /// The canary's value.
    pub canary: Option<String>,
    /// The canary each snapshot's data holds, by the data's SHA-256: recorded when the
    /// fake takes a snapshot, or set by a test ([`FakeCluster::holds_canary`]). A restore
    /// brings the restored data's canary back (none, for data not named here).
    pub snapshot_canaries: BTreeMap<String, Option<String>>,
}

/// A database connection of the database secrets engine.
#[derive(Debug, Clone, Default)]
pub struct FakeDatabase {
    /// The user the engine connects as.
    pub admin: String,
    /// How many times its password was rotated.
    pub root_rotations: u64,
    /// Whether the database answers (a dynamic credential fails when it does not).
    pub down: bool,
}

/// A share rotation in progress.
#[derive(Debug, Clone)]
pub struct FakeShareRotation {
    /// The node holding it (the active node when it started).
    pub held_by: String,
    /// The nonce shares in force are entered with.
    pub nonce: String,
    /// The new shares' count and threshold.
    pub shares: usize,
    /// See `shares`.
    pub threshold: usize,
    /// Shares in force entered so far.
    pub entered: Vec<String>,
    /// The new shares once handed out, with their verification nonce.
    pub new_shares: Option<(Vec<String>, String)>,
    /// New shares entered back so far.
    pub verified: Vec<String>,
}

/// The server's automatic keyring rotation until one is set (OpenBao 2.7's and Vault's).
pub fn default_keyring_policy() -> KeyringPolicy {
    KeyringPolicy {
        enabled: true,
        max_operations: 3_865_470_566,
        interval: Duration::ZERO,
    }
}

/// The keys a cluster's data is sealed with, as its snapshots carry them: the shares that
/// unseal it, how many are needed, and the cluster id stored beside them. A snapshot of
/// another cluster brings that cluster's keyring along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// The shares (base64).
    pub shares: Vec<String>,
    /// How many are needed.
    pub threshold: usize,
    /// The cluster id.
    pub cluster_id: String,
}

/// A cluster of fake nodes behind the node port.
#[derive(Debug, Default)]
pub struct FakeCluster {
    state: Mutex<ClusterState>,
}

const VERSION: &str = "2.7.2";

/// Shamir shares are the key (32 bytes) plus one byte: OpenBao refuses any other length.
const SHARE_BYTES: std::ops::RangeInclusive<usize> = 16..=33;

/// A base64 share of the right length, unique to `label` and `n`.
fn make_share(label: &str, n: usize) -> String {
    let mut raw = format!("{label}-share-{n}-").into_bytes();
    raw.resize(33, b'.');
    STANDARD.encode(raw)
}

/// The bytes of a share as OpenBao reads it: base64, else hex.
fn decode_share(text: &str) -> Option<Vec<u8>> {
    if let Ok(bytes) = STANDARD.decode(text) {
        return Some(bytes);
    }
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn status_error(node: &NodeAddr, method: &str, path: &str, status: u16, error: &str) -> VaultError {
    VaultError::Status {
        node: node.clone(),
        method: method.into(),
        path: path.into(),
        status,
        errors: vec![error.into()],
    }
}

fn down(node: &NodeAddr, path: &str) -> VaultError {
    VaultError::Unreachable {
        node: node.clone(),
        path: path.into(),
        attempts: 1,
        source: "fake node is down".into(),
    }
}

fn forbidden(node: &NodeAddr, method: &str, path: &str) -> VaultError {
    status_error(node, method, path, 403, "permission denied")
}

impl FakeCluster {
    /// Nodes that answer and hold nothing yet: a cluster to initialise.
    pub fn fresh(instances: &[&str]) -> Self {
        let cluster = Self::default();
        {
            let mut s = cluster.state();
            for id in instances {
                s.nodes.insert(
                    id.to_string(),
                    FakeNode {
                        up: true,
                        ..FakeNode::default()
                    },
                );
            }
            s.cluster_id = "c-1".into();
            s.data = good_snapshot(1, 1024);
            s.stabilisation = STABILISATION;
        }
        cluster
    }

    /// An initialised cluster of unsealed voters (five base64 shares, threshold 3, read
    /// them with [`FakeCluster::shares`]), the first one active; the root token `root` is
    /// valid.
    pub fn healthy(instances: &[&str]) -> Self {
        let cluster = Self::fresh(instances);
        {
            let mut s = cluster.state();
            s.initialised = true;
            s.shares = (1..=5).map(|n| make_share("healthy", n)).collect();
            s.threshold = 3;
            s.tokens.insert("root".into());
            for id in instances {
                let node = s.nodes.entry(id.to_string()).or_default();
                node.initialised = true;
                node.sealed = false;
                s.peers.insert(id.to_string(), true);
            }
            s.leader = instances.first().map(|i| i.to_string());
            s.canary_mount = true;
        }
        cluster
    }

    /// A cluster of its own: its shares and cluster id are named after `label`, and its
    /// data (what a snapshot of it holds) is a snapshot at an index drawn from `label`,
    /// so a fake built with a label is another cluster, with another keyring, than one
    /// built without.
    pub fn keyed(self, label: &str) -> Self {
        {
            let mut s = self.state();
            let shares = s.shares.len();
            s.shares = (1..=shares).map(|n| make_share(label, n)).collect();
            s.cluster_id = format!("c-{label}");
            let seed = label
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            s.data = good_snapshot(seed % 10_000 + 2, 1024);
        }
        self
    }

    /// This cluster's keyring.
    pub fn keyring(&self) -> Keyring {
        let s = self.state();
        Keyring {
            shares: s.shares.clone(),
            threshold: s.threshold,
            cluster_id: s.cluster_id.clone(),
        }
    }

    /// Tells the fake that `snapshot` was taken from the cluster whose keys are `keyring`:
    /// OpenBao reads that from the archive's `SHA256SUMS.sealed`, which the fake does not
    /// decrypt. Restoring it then behaves as OpenBao does with another cluster's snapshot.
    pub fn knows_snapshot(&self, snapshot: &[u8], keyring: Keyring) {
        self.state()
            .foreign_snapshots
            .insert(sha256_hex(snapshot), keyring);
    }

    /// Tells the fake that `snapshot`'s data holds `canary`: restoring it brings that
    /// canary back.
    pub fn holds_canary(&self, snapshot: &[u8], canary: &str) {
        self.state()
            .snapshot_canaries
            .insert(sha256_hex(snapshot), Some(canary.to_owned()));
    }

    /// Every login is refused with 400, as Vault does for a wrong secret ID.
    pub fn refusing_logins(self) -> Self {
        self.state().refuse_logins = true;
        self
    }

    /// The state, to read or change. A std mutex: never held across an await.
    pub fn state(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address the fake answers at for `instance`.
    pub fn addr(&self, instance: &str) -> NodeAddr {
        format!("https://{instance}.test:8200")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Adds a node that answers and holds nothing, as a fresh instance does.
    pub fn add_node(&self, instance: &str) {
        self.state().nodes.insert(
            instance.into(),
            FakeNode {
                up: true,
                ..FakeNode::default()
            },
        );
    }

    /// The node stops answering; a leader that dies, or is left without a majority of
    /// healthy voters, gives way to another unsealed voter.
    pub fn kill(&self, instance: &str) {
        let mut s = self.state();
        if let Some(node) = s.nodes.get_mut(instance) {
            node.up = false;
        }
        s.touch(instance);
        s.tick();
    }

    /// The node's process starts again: it answers, sealed unless the seal is automatic,
    /// and keeps its Raft data.
    pub fn restart(&self, instance: &str) {
        let mut s = self.state();
        let auto = s.auto_unseal;
        if let Some(node) = s.nodes.get_mut(instance) {
            node.up = true;
            node.sealed = node.initialised && !auto;
            node.progress.clear();
        }
        if s.share_rotation
            .as_ref()
            .is_some_and(|r| r.held_by == instance)
        {
            s.share_rotation = None;
        }
        s.touch(instance);
        s.tick();
    }

    /// The node seals itself (as after a restart); a sealed leader gives way.
    pub fn seal(&self, instance: &str) {
        let mut s = self.state();
        if let Some(node) = s.nodes.get_mut(instance) {
            node.sealed = true;
            node.progress.clear();
        }
        s.touch(instance);
        s.tick();
    }

    /// Logins made so far.
    pub fn logins(&self) -> usize {
        self.state().logins
    }

    /// The shares that unseal the cluster, as secrets.
    pub fn shares(&self) -> Vec<Secret> {
        self.state()
            .shares
            .iter()
            .cloned()
            .map(Secret::new)
            .collect()
    }

    /// The node ids of the Raft peers.
    pub fn peers(&self) -> Vec<String> {
        self.state().peers.keys().cloned().collect()
    }

    /// The node ids of the Raft voters, as autopilot has them now.
    pub fn voters(&self) -> Vec<String> {
        let mut s = self.state();
        s.tick();
        s.peers
            .iter()
            .filter(|(_, voter)| **voter)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The leader's node id.
    pub fn leader(&self) -> Option<String> {
        self.state().leader.clone()
    }

    /// The node that answers as active now, if any.
    pub fn active(&self) -> Option<String> {
        let mut s = self.state();
        s.tick();
        s.leader.clone().filter(|l| s.is_active(l))
    }

    /// Whether `instance` is sealed.
    pub fn is_sealed(&self, instance: &str) -> bool {
        self.state().nodes.get(instance).is_none_or(|n| n.sealed)
    }

    /// Calls made so far whose text contains `what` (e.g. `"init"`, `"unseal i-2"`).
    pub fn calls(&self, what: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| c.contains(what))
            .count()
    }
}

impl ClusterState {
    fn instance(&self, node: &NodeAddr) -> String {
        node.as_str()
            .trim_start_matches("https://")
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The node `addr` names, if it answers; time has passed since the last call, so
    /// autopilot and Raft catch up first.
    fn answering(&mut self, node: &NodeAddr, path: &str) -> Result<String, VaultError> {
        self.tick();
        let id = self.instance(node);
        match self.nodes.get(&id) {
            Some(n) if n.up => Ok(id),
            _ => Err(down(node, path)),
        }
    }

    fn record(&mut self, method: &str, node: &NodeAddr) {
        let id = self.instance(node);
        self.calls.push(format!("{method} {id}"));
    }

    /// Autopilot times health from now for `id`.
    fn touch(&mut self, id: &str) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.since = Some(Instant::now());
        }
    }

    fn healthy(&self, id: &str) -> bool {
        self.nodes.get(id).is_some_and(FakeNode::healthy)
    }

    fn is_active(&self, id: &str) -> bool {
        let resting = self
            .stepped_down
            .as_ref()
            .is_some_and(|(node, until)| node == id && Instant::now() < *until);
        self.leader.as_deref() == Some(id) && self.healthy(id) && !resting
    }

    /// Whether some node answers as active (token-authenticated calls need one).
    fn has_active(&self) -> bool {
        self.leader.as_deref().is_some_and(|l| self.is_active(l))
    }

    /// What happens by itself as time passes: autopilot promotes non-voters that have
    /// been healthy for the stabilisation time, a leader without a majority of healthy
    /// voters steps down, and a leaderless majority elects one.
    fn tick(&mut self) {
        let now = Instant::now();
        if self
            .stepped_down
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.stepped_down = None;
        }
        let ready: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, voter)| !**voter)
            .filter(|(id, _)| {
                self.nodes.get(id.as_str()).is_some_and(|n| {
                    n.healthy() && n.since.is_none_or(|t| now >= t + self.stabilisation)
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            self.peers.insert(id, true);
        }
        if self.has_quorum() {
            self.quorum_lost_at = None;
        } else if self.quorum_lost_at.is_none() {
            self.quorum_lost_at = Some(now);
        }
        let lease_over = self.quorum_lost_at.is_some_and(|t| now >= t + LEADER_LEASE);
        if let Some(leader) = self.leader.clone() {
            if !self.peers.contains_key(&leader) || !self.healthy(&leader) || lease_over {
                self.leader = None;
            }
        }
        self.elect();
        if self
            .share_rotation
            .as_ref()
            .is_some_and(|r| self.leader.as_deref() != Some(r.held_by.as_str()))
        {
            self.share_rotation = None;
        }
    }

    /// A majority of the voters is healthy.
    fn has_quorum(&self) -> bool {
        let voters: Vec<&String> = self
            .peers
            .iter()
            .filter(|(_, v)| **v)
            .map(|(k, _)| k)
            .collect();
        let alive = voters.iter().filter(|id| self.healthy(id)).count();
        alive * 2 > voters.len()
    }

    /// A peer that answers unsealed and votes takes the lead when no one holds it.
    fn elect(&mut self) {
        if self.leader.is_some() || !self.has_quorum() {
            return;
        }
        self.leader = self
            .peers
            .iter()
            .filter(|(_, v)| **v)
            .map(|(id, _)| id)
            .find(|id| self.healthy(id))
            .cloned();
    }

    /// A share-rotation call: an available node, a token, and the kind of share this
    /// cluster's seal has. Returns the answering node's id.
    fn share_rotation_call(
        &mut self,
        node: &NodeAddr,
        method: &str,
        step: &str,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<String, VaultError> {
        let path = format!("sys/rotate/root/{step}");
        let id = self.serving(node, method, &path, token)?;
        let seal_kind = if self.auto_unseal {
            ShareKind::Recovery
        } else {
            ShareKind::Unseal
        };
        if kind != seal_kind {
            return Err(status_error(
                node,
                method,
                &path,
                400,
                "unable to look up config: recovery not supported",
            ));
        }
        Ok(id)
    }

    fn share_rotation_status(&self) -> ShareRotation {
        let Some(r) = &self.share_rotation else {
            return ShareRotation {
                required: self.threshold as u32,
                ..ShareRotation::default()
            };
        };
        ShareRotation {
            started: true,
            nonce: r.nonce.clone(),
            progress: r.entered.len() as u32,
            required: self.threshold as u32,
            shares: r.shares as u32,
            threshold: r.threshold as u32,
            verification_nonce: r.new_shares.as_ref().map(|(_, n)| n.clone()),
        }
    }

    fn check_token(
        &self,
        node: &NodeAddr,
        method: &str,
        path: &str,
        token: &Secret,
    ) -> Result<(), VaultError> {
        if self.tokens.contains(token.expose()) {
            Ok(())
        } else {
            Err(forbidden(node, method, path))
        }
    }

    /// A request past the seal: the node answers, is unsealed, and some node is active
    /// (a standby forwards to it).
    fn available(
        &mut self,
        node: &NodeAddr,
        method: &str,
        path: &str,
    ) -> Result<String, VaultError> {
        let id = self.answering(node, path)?;
        self.record(method, node);
        if !self.healthy(&id) {
            return Err(status_error(node, method, path, 503, "Vault is sealed"));
        }
        if !self.has_active() {
            return Err(status_error(
                node,
                method,
                path,
                500,
                "local node not active but active cluster node not found",
            ));
        }
        Ok(id)
    }

    /// Token-authenticated calls need an available node and a token Vault honours.
    fn serving(
        &mut self,
        node: &NodeAddr,
        method: &str,
        path: &str,
        token: &Secret,
    ) -> Result<String, VaultError> {
        let id = self.available(node, method, path)?;
        self.check_token(node, method, path, token)?;
        Ok(id)
    }

    fn seal_status(&self, id: &str) -> SealStatus {
        let node = self.nodes.get(id).cloned().unwrap_or_default();
        // A node that holds nothing knows no seal configuration yet: 0 of 0.
        let (threshold, shares) = if node.initialised {
            (self.threshold as u32, self.shares.len() as u32)
        } else {
            (0, 0)
        };
        SealStatus {
            seal_type: if self.auto_unseal {
                "transit"
            } else {
                "shamir"
            }
            .into(),
            initialized: node.initialised,
            sealed: node.sealed || !node.initialised,
            threshold,
            shares,
            progress: node.progress.len() as u32,
            recovery_seal: self.auto_unseal,
            version: VERSION.into(),
        }
    }

    fn mint_token(&mut self) -> Secret {
        self.logins += 1;
        let token = format!("fake-token-{}", self.logins);
        self.tokens.insert(token.clone());
        Secret::new(token)
    }

    /// Whether a login at `mount` with these credentials names a role the fake made and
    /// a secret ID it issued for it (any credentials when the mount has no roles).
    fn credentials_match(&self, mount: &str, role_id: &Secret, secret_id: &Secret) -> bool {
        let prefix = format!("{mount}/");
        let mut roles = self
            .approles
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix))
            .peekable();
        if roles.peek().is_none() {
            return true;
        }
        roles.any(|role| {
            let issued = self
                .secret_ids
                .get(&format!("{mount}/{role}"))
                .copied()
                .unwrap_or(0);
            role_id.expose() == role_id_of(role)
                && (1..=issued).any(|n| secret_id.expose() == secret_id_of(role, n))
                && !self.destroyed_secret_ids.contains(secret_id.expose())
        })
    }
}

fn role_id_of(role: &str) -> String {
    format!("fake-role-id-{role}")
}

fn secret_id_of(role: &str, n: usize) -> String {
    format!("fake-secret-id-{role}-{n}")
}

fn accessor_of(role: &str, n: usize) -> String {
    format!("fake-accessor-{role}-{n}")
}

/// A snapshot's bytes handed out in chunks; a body that `breaks` ends in an error
/// instead, as when the node's connection drops mid-transfer.
struct FakeBody {
    chunks: std::collections::VecDeque<Bytes>,
    breaks: Option<NodeAddr>,
}

#[async_trait]
impl ChunkSource for FakeBody {
    type Error = VaultError;
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, VaultError> {
        match (self.chunks.pop_front(), &self.breaks) {
            (Some(chunk), _) => Ok(Some(chunk)),
            (None, None) => Ok(None),
            (None, Some(node)) => Err(VaultError::Unreachable {
                node: node.clone(),
                path: "sys/storage/raft/snapshot".into(),
                attempts: 1,
                source: "fake node: connection reset mid-transfer".into(),
            }),
        }
    }
}

#[async_trait]
impl NodeApi for FakeCluster {
    async fn health(&self, node: &NodeAddr) -> Result<Health, VaultError> {
        let mut s = self.state();
        let id = s.answering(node, "sys/health")?;
        let n = s.nodes.get(&id).cloned().unwrap_or_default();
        let code = if !n.initialised {
            501
        } else if n.sealed {
            503
        } else if s.is_active(&id) {
            200
        } else {
            429
        };
        Ok(Health {
            code,
            initialized: n.initialised,
            sealed: n.sealed || !n.initialised,
            // OpenBao says standby for every node that is not active, sealed ones too.
            standby: code != 200,
            version: VERSION.into(),
            cluster_id: (n.initialised && !n.sealed).then(|| s.cluster_id.clone()),
        })
    }

    async fn seal_status(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        let mut s = self.state();
        let id = s.answering(node, "sys/seal-status")?;
        Ok(s.seal_status(&id))
    }

    async fn init(
        &self,
        node: &NodeAddr,
        shares: u8,
        threshold: u8,
        recovery: bool,
    ) -> Result<InitOutput, VaultError> {
        let mut s = self.state();
        let id = s.answering(node, "sys/init")?;
        s.record("init", node);
        if s.nodes.get(&id).is_some_and(|n| n.initialised) {
            return Err(status_error(
                node,
                "PUT",
                "sys/init",
                400,
                "Vault is already initialized",
            ));
        }
        if let Some((other, _)) = s.nodes.iter().find(|(_, n)| n.initialised) {
            // OpenBao would make a second cluster here; no state machine may do that.
            panic!("sys/init sent to {id}, which holds nothing, while {other} holds the cluster: that makes a second cluster");
        }
        let salt = fastrand::u32(..);
        s.initialised = true;
        s.auto_unseal = recovery;
        s.shares = (1..=usize::from(shares))
            .map(|n| make_share(&format!("fake-{salt:08x}"), n))
            .collect();
        s.threshold = usize::from(threshold);
        let root = format!("fake-root-{salt:08x}");
        s.tokens.insert(root.clone());
        s.peers = BTreeMap::from([(id.clone(), true)]);
        if let Some(n) = s.nodes.get_mut(&id) {
            n.initialised = true;
            n.sealed = !recovery;
        }
        s.touch(&id);
        s.tick();
        Ok(InitOutput {
            shares: s.shares.iter().cloned().map(Secret::new).collect(),
            root_token: Secret::new(root),
        })
    }

    async fn unseal(&self, node: &NodeAddr, share: &Secret) -> Result<SealStatus, VaultError> {
        let path = "sys/unseal";
        let mut s = self.state();
        let id = s.answering(node, path)?;
        s.record("unseal", node);
        let threshold = s.threshold;
        let good: BTreeSet<String> = s.shares.iter().cloned().collect();
        let Some(n) = s.nodes.get_mut(&id) else {
            return Err(down(node, path));
        };
        if !n.initialised {
            return Err(status_error(
                node,
                "PUT",
                path,
                400,
                "Vault is not initialized",
            ));
        }
        if !n.sealed {
            return Ok(s.seal_status(&id));
        }
        let Some(bytes) = decode_share(share.expose()) else {
            return Err(status_error(
                node,
                "PUT",
                path,
                400,
                "'key' must be a valid hex or base64 string",
            ));
        };
        if bytes.len() < *SHARE_BYTES.start() {
            return Err(status_error(
                node,
                "PUT",
                path,
                400,
                "invalid key: key is shorter than minimum 16 bytes",
            ));
        }
        if bytes.len() > *SHARE_BYTES.end() {
            return Err(status_error(
                node,
                "PUT",
                path,
                400,
                "invalid key: key is longer than maximum 33 bytes",
            ));
        }
        // A share entered twice counts once.
        if !n.progress.iter().any(|p| p == share.expose()) {
            n.progress.push(share.expose().to_owned());
        }
        if n.progress.len() >= threshold {
            let entered: BTreeSet<String> = n.progress.drain(..).collect();
            if !entered.is_subset(&good) {
                return Err(status_error(node, "PUT", path, 400, "invalid key"));
            }
            n.sealed = false;
            // A Shamir join finishes once the node can answer the leader's challenge.
            let finishes_join = std::mem::take(&mut n.joining);
            if finishes_join {
                s.peers.entry(id.clone()).or_insert(false);
            }
            s.touch(&id);
            s.tick();
        }
        Ok(s.seal_status(&id))
    }

    async fn unseal_reset(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        let mut s = self.state();
        let id = s.answering(node, "sys/unseal")?;
        s.record("unseal-reset", node);
        if s.healthy(&id) {
            return Err(status_error(
                node,
                "PUT",
                "sys/unseal",
                400,
                "vault is unsealed",
            ));
        }
        if let Some(n) = s.nodes.get_mut(&id) {
            n.progress.clear();
        }
        Ok(s.seal_status(&id))
    }

    async fn join(
        &self,
        node: &NodeAddr,
        leader: &NodeAddr,
        _leader_ca_pem: Option<&str>,
    ) -> Result<bool, VaultError> {
        let mut s = self.state();
        let id = s.answering(node, "sys/storage/raft/join")?;
        s.record("join", node);
        let leader_id = s.instance(leader);
        if s.nodes.get(&id).is_some_and(|n| n.initialised) {
            // OpenBao answers joined for a node that holds Raft data already, and does
            // nothing.
            return Ok(true);
        }
        if !s.is_active(&leader_id) {
            return Err(status_error(
                node,
                "POST",
                "sys/storage/raft/join",
                500,
                "failed to join raft cluster: leader is not active",
            ));
        }
        let auto = s.auto_unseal;
        if let Some(n) = s.nodes.get_mut(&id) {
            n.initialised = true;
            n.sealed = !auto;
            n.joining = !auto;
        }
        if auto {
            s.peers.insert(id.clone(), false);
        }
        s.touch(&id);
        Ok(true)
    }

    async fn raft_configuration(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<RaftConfiguration, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "sys/storage/raft/configuration", token)?;
        let servers = s
            .peers
            .iter()
            .map(|(id, voter)| RaftServer {
                node_id: id.clone(),
                address: format!("{id}.test:8201"),
                leader: s.leader.as_deref() == Some(id),
                voter: *voter,
            })
            .collect();
        Ok(RaftConfiguration { servers })
    }

    async fn remove_peer(
        &self,
        node: &NodeAddr,
        token: &Secret,
        node_id: &str,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "sys/storage/raft/remove-peer", token)?;
        s.calls.push(format!("remove-peer {node_id}"));
        // Removing a server that is not a peer succeeds, and changes nothing.
        s.peers.remove(node_id);
        s.tick();
        Ok(())
    }

    async fn step_down(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "PUT", "sys/step-down", token)?;
        // A standby forwards the request: the active node steps down.
        let Some(active) = s.leader.clone() else {
            return Ok(());
        };
        let next = s
            .peers
            .iter()
            .filter(|(p, voter)| **voter && **p != active)
            .map(|(p, _)| p.clone())
            .find(|p| s.healthy(p));
        match next {
            Some(next) => s.leader = Some(next),
            None => s.stepped_down = Some((active, Instant::now() + STEP_DOWN_SLEEP)),
        }
        Ok(())
    }

    async fn autopilot_state(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<AutopilotState, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "sys/storage/raft/autopilot/state", token)?;
        let now = Instant::now();
        let mut servers = BTreeMap::new();
        for (id, voter) in &s.peers {
            let n = s.nodes.get(id).cloned().unwrap_or_default();
            let healthy = n.healthy();
            let status = if s.leader.as_deref() == Some(id) {
                "leader"
            } else if *voter {
                "voter"
            } else {
                "non-voter"
            };
            let unchanged_for = n.since.map(|t| now.duration_since(t));
            servers.insert(
                id.clone(),
                AutopilotServer {
                    id: id.clone(),
                    healthy,
                    status: status.into(),
                    // The leader last heard from a dead server when it went down.
                    last_contact: if healthy {
                        Some(Duration::from_millis(5))
                    } else {
                        unchanged_for
                    },
                    stable_since: unchanged_for.and_then(|d| {
                        chrono::Duration::from_std(d)
                            .ok()
                            .map(|d| chrono::Utc::now() - d)
                    }),
                },
            );
        }
        let voters = servers.values().filter(|v| v.is_voter()).count();
        let healthy_voters = servers
            .values()
            .filter(|v| v.is_voter() && v.healthy)
            .count();
        let quorum = voters / 2 + 1;
        let computed = healthy_voters.saturating_sub(quorum) as u32;
        Ok(AutopilotState {
            healthy: servers.values().all(|v| v.healthy),
            failure_tolerance: s.failure_tolerance.unwrap_or(computed),
            leader: s.leader.clone(),
            servers,
        })
    }

    async fn leader(&self, node: &NodeAddr) -> Result<LeaderStatus, VaultError> {
        let mut s = self.state();
        let id = s.answering(node, "sys/leader")?;
        Ok(LeaderStatus {
            is_self: s.is_active(&id),
            raft_committed_index: s.applied_index.unwrap_or(100),
            raft_applied_index: s.applied_index.unwrap_or(100),
        })
    }

    async fn snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        _timeout: Duration,
    ) -> Result<SnapshotStream, VaultError> {
        let mut s = self.state();
        let id = s.serving(node, "GET", "sys/storage/raft/snapshot", token)?;
        if !s.is_active(&id) {
            return Err(status_error(
                node,
                "GET",
                "sys/storage/raft/snapshot",
                500,
                "not the active node",
            ));
        }
        let (sha, canary) = (sha256_hex(&s.data), s.canary.clone());
        s.snapshot_canaries.insert(sha, canary);
        let data = match s.snapshot_breaks_after {
            Some(bytes) => &s.data[..bytes.min(s.data.len())],
            None => &s.data[..],
        };
        let chunks = data.chunks(64 << 10).map(Bytes::copy_from_slice).collect();
        Ok(Box::new(FakeBody {
            chunks,
            breaks: s.snapshot_breaks_after.is_some().then(|| node.clone()),
        }))
    }

    async fn restore_snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mut body: OutgoingBody,
        force: bool,
        _timeout: Duration,
    ) -> Result<(), VaultError> {
        let path = "sys/storage/raft/snapshot";
        {
            let mut s = self.state();
            let id = s.serving(node, "POST", path, token)?;
            if !s.is_active(&id) {
                return Err(status_error(node, "POST", path, 500, "not the active node"));
            }
        }
        // Read the whole body first, as the node does before it installs anything.
        let mut data = Vec::new();
        let mut check = SnapshotCheck::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| VaultError::Unreachable {
                node: node.clone(),
                path: path.into(),
                attempts: 1,
                source,
            })?;
            check
                .update(&chunk)
                .map_err(|e| status_error(node, "POST", path, 400, &e.to_string()))?;
            data.extend_from_slice(&chunk);
        }
        check
            .finish()
            .map_err(|e| status_error(node, "POST", path, 400, &e.to_string()))?;
        let mut s = self.state();
        let brought = s
            .foreign_snapshots
            .get(&sha256_hex(&data))
            .filter(|k| k.shares != s.shares)
            .cloned();
        if brought.is_some() && !force {
            // OpenBao cannot open the snapshot's SHA256SUMS.sealed with its own keys.
            return Err(status_error(
                node,
                "POST",
                path,
                400,
                "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check",
            ));
        }
        s.restores.push((data.clone(), force));
        s.canary = s
            .snapshot_canaries
            .get(&sha256_hex(&data))
            .cloned()
            .flatten();
        s.data = data;
        // The restored data holds none of the tokens issued since it was taken.
        s.tokens.clear();
        if let Some(keyring) = brought {
            // The node cannot open the restored keyring with its own keys, so every node
            // seals ("failed to perform key upgrades, sealing"); from then on the source's
            // shares unseal it, and it reports the source's cluster id. A snapshot with
            // this cluster's own keys, forced or not, leaves the nodes unsealed.
            s.shares = keyring.shares;
            s.threshold = keyring.threshold;
            s.cluster_id = keyring.cluster_id;
            let ids: Vec<String> = s.nodes.keys().cloned().collect();
            for id in &ids {
                if let Some(n) = s.nodes.get_mut(id) {
                    n.sealed = true;
                    n.progress.clear();
                }
                s.touch(id);
            }
            s.leader = None;
        }
        Ok(())
    }

    async fn approle_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role_id: &Secret,
        secret_id: &Secret,
    ) -> Result<Login, VaultError> {
        let mut s = self.state();
        let path = format!("auth/{mount}/login");
        s.available(node, "login", &path)?;
        if s.refuse_logins || !s.credentials_match(mount, role_id, secret_id) {
            s.logins += 1;
            return Err(status_error(
                node,
                "POST",
                &path,
                400,
                "invalid role or secret ID",
            ));
        }
        Ok(Login {
            token: s.mint_token(),
            lease: Duration::from_secs(300),
        })
    }

    async fn aws_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        _role: &str,
        _request: &IamLoginRequest,
    ) -> Result<Login, VaultError> {
        let nothing = Secret::new(String::new());
        self.approle_login(node, mount, &nothing, &nothing).await
    }

    async fn ensure_auth_enabled(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        kind: &str,
    ) -> Result<bool, VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "sys/auth", token)?;
        if s.auth_mounts.contains_key(mount) {
            return Ok(false);
        }
        s.auth_mounts.insert(mount.into(), kind.into());
        Ok(true)
    }

    async fn put_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        name: &str,
        policy: &str,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "PUT", "sys/policies/acl", token)?;
        s.policies.insert(name.into(), policy.into());
        Ok(())
    }

    async fn put_approle(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        policy: &str,
        limits: &AppRoleLimits,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "auth/approle/role", token)?;
        s.approles.insert(format!("{mount}/{role}"), policy.into());
        s.approle_limits
            .insert(format!("{mount}/{role}"), limits.clone());
        Ok(())
    }

    async fn approle_role_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "auth/approle/role/role-id", token)?;
        if !s.approles.contains_key(&format!("{mount}/{role}")) {
            return Err(status_error(
                node,
                "GET",
                "auth/approle/role/role-id",
                400,
                "role not found",
            ));
        }
        Ok(Secret::new(role_id_of(role)))
    }

    async fn new_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "auth/approle/role/secret-id", token)?;
        let count = s.secret_ids.entry(format!("{mount}/{role}")).or_default();
        *count += 1;
        let secret_id = secret_id_of(role, *count);
        s.secret_id_created
            .insert(secret_id.clone(), chrono::Utc::now());
        Ok(Secret::new(secret_id))
    }

    async fn revoke_self(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "auth/token/revoke-self", token)?;
        s.tokens.remove(token.expose());
        Ok(())
    }

    async fn token_is_valid(&self, node: &NodeAddr, token: &Secret) -> Result<bool, VaultError> {
        let mut s = self.state();
        s.available(node, "GET", "auth/token/lookup-self")?;
        Ok(s.tokens.contains(token.expose()))
    }

    async fn key_status(&self, node: &NodeAddr, token: &Secret) -> Result<KeyStatus, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "sys/key-status", token)?;
        Ok(KeyStatus {
            term: s.keyring_term.max(1),
            install_time: s.keyring_installed,
        })
    }

    async fn rotate_keyring(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "sys/rotate", token)?;
        s.keyring_term = s.keyring_term.max(1) + 1;
        s.keyring_installed = chrono::Utc::now();
        Ok(())
    }

    async fn rotate_root_key(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "sys/rotate/root", token)?;
        s.root_key_rotations += 1;
        Ok(())
    }

    async fn keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<KeyringPolicy, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "sys/rotate/config", token)?;
        Ok(s.keyring_policy
            .clone()
            .unwrap_or_else(default_keyring_policy))
    }

    async fn set_keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        policy: &KeyringPolicy,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "sys/rotate/config", token)?;
        s.keyring_policy = Some(policy.clone());
        Ok(())
    }

    async fn secret_id_info(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        secret_id: &Secret,
    ) -> Result<Option<SecretIdInfo>, VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "auth/approle/role/secret-id/lookup", token)?;
        let issued = s
            .secret_ids
            .get(&format!("{mount}/{role}"))
            .copied()
            .unwrap_or(0);
        let Some(n) = (1..=issued).find(|n| secret_id.expose() == secret_id_of(role, *n)) else {
            return Ok(None);
        };
        if s.destroyed_secret_ids.contains(secret_id.expose()) {
            return Ok(None);
        }
        Ok(Some(SecretIdInfo {
            accessor: accessor_of(role, n),
            created: s
                .secret_id_created
                .get(secret_id.expose())
                .copied()
                .unwrap_or_else(chrono::Utc::now),
            expires: None,
        }))
    }

    async fn database_admin(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<Option<String>, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "database/config", token)?;
        Ok(s.databases
            .get(&format!("{mount}/{connection}"))
            .map(|d| d.admin.clone()))
    }

    async fn static_role_users(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
    ) -> Result<Vec<(String, String)>, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", "database/static-roles", token)?;
        let prefix = format!("{mount}/");
        Ok(s.static_roles
            .iter()
            .filter_map(|(k, user)| {
                k.strip_prefix(&prefix)
                    .map(|r| (r.to_owned(), user.clone()))
            })
            .collect())
    }

    async fn rotate_database_root(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        let path = format!("{mount}/rotate-root/{connection}");
        s.serving(node, "POST", &path, token)?;
        match s.databases.get_mut(&format!("{mount}/{connection}")) {
            Some(db) if !db.down => {
                db.root_rotations += 1;
                Ok(())
            }
            Some(_) => Err(status_error(
                node,
                "POST",
                &path,
                500,
                "failed to connect to the database",
            )),
            None => Err(status_error(node, "POST", &path, 404, "no such connection")),
        }
    }

    async fn database_credential(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<IssuedCredential, VaultError> {
        let mut s = self.state();
        let path = format!("{mount}/creds/{role}");
        s.serving(node, "GET", &path, token)?;
        let Some(connection) = s.database_roles.get(&format!("{mount}/{role}")).cloned() else {
            return Err(status_error(node, "GET", &path, 400, "unknown role"));
        };
        if s.databases.get(&connection).is_none_or(|d| d.down) {
            return Err(status_error(
                node,
                "GET",
                &path,
                500,
                "failed to connect to the database",
            ));
        }
        s.leases_issued += 1;
        let lease_id = format!("{mount}/creds/{role}/lease-{}", s.leases_issued);
        s.leases.insert(lease_id.clone());
        Ok(IssuedCredential {
            lease_id,
            username: format!("v-{role}-{}", s.leases_issued),
        })
    }

    async fn ensure_canary_mount(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<bool, VaultError> {
        let mut s = self.state();
        s.serving(node, "POST", "sys/mounts", token)?;
        Ok(!std::mem::replace(&mut s.canary_mount, true))
    }

    async fn write_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
        value: &str,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "PUT", CANARY_PATH, token)?;
        if !s.canary_mount {
            return Err(status_error(
                node,
                "PUT",
                CANARY_PATH,
                404,
                "no handler for route",
            ));
        }
        s.canary = Some(value.to_owned());
        Ok(())
    }

    async fn read_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<Option<String>, VaultError> {
        let mut s = self.state();
        s.serving(node, "GET", CANARY_PATH, token)?;
        if !s.canary_mount {
            return Err(status_error(
                node,
                "GET",
                CANARY_PATH,
                404,
                "no handler for route",
            ));
        }
        Ok(s.canary.clone())
    }

    async fn revoke_lease(
        &self,
        node: &NodeAddr,
        token: &Secret,
        lease_id: &str,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.serving(node, "PUT", "sys/leases/revoke", token)?;
        s.leases.remove(lease_id);
        Ok(())
    }

    async fn destroy_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> Result<bool, VaultError> {
        let mut s = self.state();
        s.serving(
            node,
            "POST",
            "auth/approle/role/secret-id-accessor/destroy",
            token,
        )?;
        let issued = s
            .secret_ids
            .get(&format!("{mount}/{role}"))
            .copied()
            .unwrap_or(0);
        let Some(n) = (1..=issued).find(|n| accessor == accessor_of(role, *n)) else {
            return Ok(false);
        };
        Ok(s.destroyed_secret_ids.insert(secret_id_of(role, n)))
    }

    async fn share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<ShareRotation, VaultError> {
        let mut s = self.state();
        s.share_rotation_call(node, "GET", "init", token, kind)?;
        Ok(s.share_rotation_status())
    }

    async fn start_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        shares: u8,
        threshold: u8,
    ) -> Result<ShareRotation, VaultError> {
        let mut s = self.state();
        let id = s.share_rotation_call(node, "POST", "init", token, kind)?;
        let fail = |error: &str| status_error(node, "POST", "sys/rotate/root/init", 400, error);
        if s.share_rotation.is_some() {
            return Err(fail("rotation already in progress"));
        }
        if threshold == 0 || threshold > shares || (shares > 1 && threshold < 2) {
            return Err(fail("invalid shares or threshold"));
        }
        s.share_rotations_started += 1;
        let held_by = s.leader.clone().unwrap_or(id);
        s.share_rotation = Some(FakeShareRotation {
            held_by,
            nonce: format!("nonce-{}", s.share_rotations_started),
            shares: usize::from(shares),
            threshold: usize::from(threshold),
            entered: Vec::new(),
            new_shares: None,
            verified: Vec::new(),
        });
        Ok(s.share_rotation_status())
    }

    async fn cancel_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<(), VaultError> {
        let mut s = self.state();
        s.share_rotation_call(node, "DELETE", "init", token, kind)?;
        s.share_rotation = None;
        Ok(())
    }

    async fn submit_rotation_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<RotationStep, VaultError> {
        let mut s = self.state();
        s.share_rotation_call(node, "POST", "update", token, kind)?;
        let fail = |error: &str| status_error(node, "POST", "sys/rotate/root/update", 400, error);
        let in_force: BTreeSet<String> = s.shares.iter().cloned().collect();
        let needed = s.threshold;
        let label = format!("rotation-{}", s.share_rotations_started);
        let Some(rotation) = s.share_rotation.as_mut() else {
            return Err(fail("no rotation in progress"));
        };
        if rotation.nonce != nonce || rotation.new_shares.is_some() {
            return Err(fail("incorrect nonce supplied"));
        }
        if rotation.entered.iter().any(|e| e == share.expose()) {
            return Err(fail(
                "given key has already been provided during this rotation",
            ));
        }
        rotation.entered.push(share.expose().to_owned());
        if rotation.entered.len() < needed {
            return Ok(RotationStep::Progress(rotation.entered.len() as u32));
        }
        if !rotation.entered.iter().all(|e| in_force.contains(e)) {
            rotation.entered.clear();
            return Err(fail(
                "failed to read root key: cipher: message authentication failed",
            ));
        }
        let shares: Vec<String> = (1..=rotation.shares)
            .map(|n| make_share(&label, n))
            .collect();
        let verification_nonce = format!("verify-{label}");
        rotation.new_shares = Some((shares.clone(), verification_nonce.clone()));
        Ok(RotationStep::NewShares {
            shares: shares.into_iter().map(Secret::new).collect(),
            verification_nonce: Some(verification_nonce),
        })
    }

    async fn submit_verification_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<VerifyStep, VaultError> {
        let mut s = self.state();
        s.share_rotation_call(node, "POST", "verify", token, kind)?;
        let fail = |error: &str| status_error(node, "POST", "sys/rotate/root/verify", 400, error);
        let Some(rotation) = s.share_rotation.as_mut() else {
            return Err(fail("no rotation in progress"));
        };
        let Some((new_shares, verification_nonce)) = rotation.new_shares.clone() else {
            return Err(fail("no rotation in progress"));
        };
        if verification_nonce != nonce {
            return Err(fail("incorrect nonce supplied"));
        }
        if rotation.verified.iter().any(|e| e == share.expose()) {
            return Err(fail(
                "given key has already been provided during this rotation",
            ));
        }
        rotation.verified.push(share.expose().to_owned());
        if rotation.verified.len() < rotation.threshold {
            return Ok(VerifyStep::Progress(rotation.verified.len() as u32));
        }
        if !rotation.verified.iter().all(|e| new_shares.contains(e)) {
            rotation.verified.clear();
            rotation.new_shares = Some((new_shares, format!("{verification_nonce}-again")));
            return Err(fail(
                "rotation verification failed; incorrect key shares supplied",
            ));
        }
        let threshold = rotation.threshold;
        s.shares = new_shares;
        s.threshold = threshold;
        s.share_rotation = None;
        Ok(VerifyStep::Complete)
    }

    async fn restart_verification(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<Option<String>, VaultError> {
        let mut s = self.state();
        s.share_rotation_call(node, "DELETE", "verify", token, kind)?;
        let Some(rotation) = s.share_rotation.as_mut() else {
            return Ok(None);
        };
        let Some((new_shares, nonce)) = rotation.new_shares.clone() else {
            return Ok(None);
        };
        rotation.verified.clear();
        let again = format!("{nonce}-again");
        rotation.new_shares = Some((new_shares, again.clone()));
        Ok(Some(again))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &[u8]) -> OutgoingBody {
        let chunk: Result<Bytes, Box<dyn std::error::Error + Send + Sync>> =
            Ok(Bytes::copy_from_slice(bytes));
        Box::pin(futures::stream::iter([chunk]))
    }

    #[tokio::test]
    async fn another_clusters_snapshot_needs_force_then_that_clusters_shares() {
        let target = FakeCluster::healthy(&["i-1"]);
        let source = FakeCluster::healthy(&["s-1"]).keyed("staging");
        let snapshot = source.state().data.clone();
        target.knows_snapshot(&snapshot, source.keyring());
        let node = target.addr("i-1");
        let root = Secret::new("root");
        let timeout = Duration::from_secs(60);

        let err = target
            .restore_snapshot(&node, &root, body(&snapshot), false, timeout)
            .await
            .expect_err("another cluster's keys");
        assert_eq!(err.status(), Some(400));
        assert!(err.to_string().contains("snapshot-force"), "{err}");
        assert_ne!(target.state().data, snapshot, "nothing installed");

        target
            .restore_snapshot(&node, &root, body(&snapshot), true, timeout)
            .await
            .expect("forced");
        assert!(target.is_sealed("i-1"));
        let own = FakeCluster::healthy(&["x"]).shares();
        for share in &own[..2] {
            target.unseal(&node, share).await.expect("progress");
        }
        let err = target
            .unseal(&node, &own[2])
            .await
            .expect_err("not its keys");
        assert_eq!(err.status(), Some(400));
        for share in &source.shares()[..3] {
            target.unseal(&node, share).await.expect("unseal");
        }
        assert_eq!(target.active().as_deref(), Some("i-1"));
        assert_eq!(target.state().data, snapshot);
        let health = target.health(&node).await.expect("health");
        assert_eq!(health.cluster_id.as_deref(), Some("c-staging"));
    }

    #[tokio::test]
    async fn a_snapshot_with_the_clusters_own_keys_leaves_it_unsealed_even_forced() {
        let cluster = FakeCluster::healthy(&["i-1"]);
        let snapshot = good_snapshot(5, 100);
        let node = cluster.addr("i-1");
        cluster
            .restore_snapshot(
                &node,
                &Secret::new("root"),
                body(&snapshot),
                true,
                Duration::from_secs(60),
            )
            .await
            .expect("restored");
        assert!(!cluster.is_sealed("i-1"));
        assert_eq!(cluster.active().as_deref(), Some("i-1"));
        assert_eq!(cluster.state().restores, vec![(snapshot, true)]);
    }
}
