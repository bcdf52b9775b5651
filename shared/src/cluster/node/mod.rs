//! The Vault node port: every call the state machines make on a node, in domain words.
//! `crate::vault::VaultClient` implements it over HTTPS; `crate::testing::FakeCluster` is
//! a stateful in-memory cluster behind the same trait, and
//! `crate::testing::FailingNode` injects failures into either.
//!
//! Each call names the node it goes to: a secret (share, token, secret ID) is sent only
//! to the address the caller chose from the fleet, never to one a node redirected to.

use std::time::Duration;

use async_trait::async_trait;

pub use crate::chunks::{ChunkSource, OutgoingBody};
pub use crate::vault::{
    AutopilotServer, AutopilotState, Health, IamLoginRequest, InitOutput, IssuedCredential,
    KeyStatus, KeyringPolicy, LeaderStatus, Login, RaftConfiguration, RaftServer, RotationStep,
    SealStatus, SecretIdInfo, ShareKind, ShareRotation, VaultError, VerifyStep,
};
use crate::{ids::NodeAddr, secret::Secret};

/// A snapshot's body as a node sends it.
pub type SnapshotStream = Box<dyn ChunkSource<Error = VaultError>>;

/// What an AppRole's credentials are limited to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppRoleLimits {
    /// How long a secret ID lives; zero: until it is replaced.
    pub secret_id_ttl: std::time::Duration,
    /// The CIDR blocks a secret ID may log in from, and its tokens be used from; empty:
    /// anywhere.
    pub bound_cidrs: Vec<String>,
}

/// The calls made on one node of the cluster.
#[async_trait]
pub trait NodeApi: Send + Sync {
    /// `sys/health`: every status that describes a node (sealed, standby, not
    /// initialised) is an answer, not an error.
    async fn health(&self, node: &NodeAddr) -> Result<Health, VaultError>;
    /// `sys/seal-status`, without a token.
    async fn seal_status(&self, node: &NodeAddr) -> Result<SealStatus, VaultError>;
    /// `sys/init`: a one-shot action, only under the init lock after checking that no
    /// node is initialised. With `recovery` the counts are recovery shares.
    async fn init(
        &self,
        node: &NodeAddr,
        shares: u8,
        threshold: u8,
        recovery: bool,
    ) -> Result<InitOutput, VaultError>;
    /// Enters one unseal share; the seal status after it.
    async fn unseal(&self, node: &NodeAddr, share: &Secret) -> Result<SealStatus, VaultError>;
    /// Forgets the shares entered so far.
    async fn unseal_reset(&self, node: &NodeAddr) -> Result<SealStatus, VaultError>;
    /// Joins `node` (not yet in any cluster) to the cluster `leader` leads.
    async fn join(
        &self,
        node: &NodeAddr,
        leader: &NodeAddr,
        leader_ca_pem: Option<&str>,
    ) -> Result<bool, VaultError>;
    /// The Raft configuration as `node` holds it.
    async fn raft_configuration(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<RaftConfiguration, VaultError>;
    /// Removes `node_id` from the Raft configuration (ask the leader).
    async fn remove_peer(
        &self,
        node: &NodeAddr,
        token: &Secret,
        node_id: &str,
    ) -> Result<(), VaultError>;
    /// The active node gives up leadership.
    async fn step_down(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError>;
    /// Autopilot's view of the cluster, asked of one node.
    async fn autopilot_state(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<AutopilotState, VaultError>;
    /// The Raft indexes as `node` sees them.
    async fn leader(&self, node: &NodeAddr) -> Result<LeaderStatus, VaultError>;
    /// A snapshot streamed out of `node` (the active one); `timeout` bounds the transfer.
    async fn snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        timeout: Duration,
    ) -> Result<SnapshotStream, VaultError>;
    /// Streams a snapshot into `node` (the active one); `force` for another cluster's.
    /// A body that ends in an error cuts the request off: the node installs nothing.
    async fn restore_snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        body: OutgoingBody,
        force: bool,
        timeout: Duration,
    ) -> Result<(), VaultError>;
    /// AppRole login through one node.
    async fn approle_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role_id: &Secret,
        secret_id: &Secret,
    ) -> Result<Login, VaultError>;
    /// aws (IAM) login through one node.
    async fn aws_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role: &str,
        request: &IamLoginRequest,
    ) -> Result<Login, VaultError>;
    /// Enables the auth method `kind` at `mount` unless something is mounted there;
    /// whether it did now.
    async fn ensure_auth_enabled(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        kind: &str,
    ) -> Result<bool, VaultError>;
    /// Writes (creates or replaces) an ACL policy.
    async fn put_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        name: &str,
        policy: &str,
    ) -> Result<(), VaultError>;
    /// Writes (creates or replaces) an AppRole bound to `policy`, its secret IDs and
    /// tokens within `limits`.
    async fn put_approle(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        policy: &str,
        limits: &AppRoleLimits,
    ) -> Result<(), VaultError>;
    /// An AppRole's role ID.
    async fn approle_role_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError>;
    /// Mints a new secret ID for an AppRole.
    async fn new_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError>;
    /// Revokes the token used.
    async fn revoke_self(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError>;
    /// Whether the token is still honoured.
    async fn token_is_valid(&self, node: &NodeAddr, token: &Secret) -> Result<bool, VaultError>;
    /// The barrier keyring's term and when its key was installed.
    async fn key_status(&self, node: &NodeAddr, token: &Secret) -> Result<KeyStatus, VaultError>;
    /// Rotates the barrier keyring: a new key for the next term (old data stays readable).
    async fn rotate_keyring(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError>;
    /// A new root key, the shares unchanged (OpenBao).
    async fn rotate_root_key(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError>;
    /// When the server rotates its keyring by itself.
    async fn keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<KeyringPolicy, VaultError>;
    /// Sets when the server rotates its keyring by itself.
    async fn set_keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        policy: &KeyringPolicy,
    ) -> Result<(), VaultError>;
    /// The share rotation in progress on the active node, if any.
    async fn share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<ShareRotation, VaultError>;
    /// Starts a share rotation to `shares` new shares, `threshold` of which open the seal,
    /// put in force only once verified.
    async fn start_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        shares: u8,
        threshold: u8,
    ) -> Result<ShareRotation, VaultError>;
    /// Forgets the rotation in progress; the shares in force stay in force.
    async fn cancel_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<(), VaultError>;
    /// Enters one share in force into the rotation; at the threshold, the new shares.
    async fn submit_rotation_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<RotationStep, VaultError>;
    /// Enters one new share back; at the threshold, the new shares are in force.
    async fn submit_verification_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<VerifyStep, VaultError>;
    /// Starts the verification count again; the new verification nonce (`None`: no
    /// rotation waits for verification).
    async fn restart_verification(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<Option<String>, VaultError>;
    /// What the server knows of an AppRole's secret ID; `None` when it does not know it.
    async fn secret_id_info(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        secret_id: &Secret,
    ) -> Result<Option<SecretIdInfo>, VaultError>;
    /// Destroys an AppRole's secret ID by its accessor; whether it existed.
    async fn destroy_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> Result<bool, VaultError>;
    /// The user a database connection's engine connects as; `None`: no such connection.
    async fn database_admin(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<Option<String>, VaultError>;
    /// Each static role of a database mount, with its database user.
    async fn static_role_users(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
    ) -> Result<Vec<(String, String)>, VaultError>;
    /// A new password for a database connection's admin user.
    async fn rotate_database_root(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<(), VaultError>;
    /// A dynamic credential of a database role (proves the engine reaches the database).
    async fn database_credential(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<IssuedCredential, VaultError>;
    /// Mounts the canary's KV engine (`vault-lifecycle/`, version 1) unless something is
    /// mounted there; whether it mounted it now.
    async fn ensure_canary_mount(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<bool, VaultError>;
    /// Writes the canary (`vault-lifecycle/canary`).
    async fn write_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
        value: &str,
    ) -> Result<(), VaultError>;
    /// The canary; `None` when none was ever written.
    async fn read_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<Option<String>, VaultError>;
    /// Revokes a lease.
    async fn revoke_lease(
        &self,
        node: &NodeAddr,
        token: &Secret,
        lease_id: &str,
    ) -> Result<(), VaultError>;
}

mod vault_client;
