//! The node port over HTTPS: every call delegated to [`VaultClient`], whose methods
//! speak the server's API.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    AppRoleLimits, AutopilotState, Health, IamLoginRequest, InitOutput, IssuedCredential,
    KeyStatus, KeyringPolicy, LeaderStatus, Login, NodeApi, OutgoingBody, RaftConfiguration,
    RotationStep, SealStatus, SecretIdInfo, ShareKind, ShareRotation, SnapshotStream, VaultError,
    VerifyStep,
};
use crate::{ids::NodeAddr, secret::Secret, vault::VaultClient};

#[async_trait]
impl NodeApi for VaultClient {
    async fn health(&self, node: &NodeAddr) -> Result<Health, VaultError> {
        VaultClient::health(self, node).await
    }
    async fn seal_status(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        VaultClient::seal_status(self, node).await
    }
    async fn init(
        &self,
        node: &NodeAddr,
        shares: u8,
        threshold: u8,
        recovery: bool,
    ) -> Result<InitOutput, VaultError> {
        VaultClient::init(self, node, shares, threshold, recovery).await
    }
    async fn unseal(&self, node: &NodeAddr, share: &Secret) -> Result<SealStatus, VaultError> {
        VaultClient::unseal(self, node, share).await
    }
    async fn unseal_reset(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        VaultClient::unseal_reset(self, node).await
    }
    async fn join(
        &self,
        node: &NodeAddr,
        leader: &NodeAddr,
        leader_ca_pem: Option<&str>,
    ) -> Result<bool, VaultError> {
        VaultClient::join(self, node, leader, leader_ca_pem).await
    }
    async fn raft_configuration(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<RaftConfiguration, VaultError> {
        VaultClient::raft_configuration(self, node, token).await
    }
    async fn remove_peer(
        &self,
        node: &NodeAddr,
        token: &Secret,
        node_id: &str,
    ) -> Result<(), VaultError> {
        VaultClient::remove_peer(self, node, token, node_id).await
    }
    async fn step_down(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        VaultClient::step_down(self, node, token).await
    }
    async fn autopilot_state(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<AutopilotState, VaultError> {
        VaultClient::autopilot_state(self, node, token).await
    }
    async fn leader(&self, node: &NodeAddr) -> Result<LeaderStatus, VaultError> {
        VaultClient::leader(self, node).await
    }
    async fn snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        timeout: Duration,
    ) -> Result<SnapshotStream, VaultError> {
        Ok(Box::new(
            VaultClient::snapshot(self, node, token, timeout).await?,
        ))
    }
    async fn restore_snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        body: OutgoingBody,
        force: bool,
        timeout: Duration,
    ) -> Result<(), VaultError> {
        VaultClient::restore_snapshot(self, node, token, body, force, timeout).await
    }
    async fn approle_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role_id: &Secret,
        secret_id: &Secret,
    ) -> Result<Login, VaultError> {
        VaultClient::approle_login(self, node, mount, role_id, secret_id).await
    }
    async fn aws_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role: &str,
        request: &IamLoginRequest,
    ) -> Result<Login, VaultError> {
        VaultClient::aws_login(self, node, mount, role, request).await
    }
    async fn ensure_auth_enabled(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        kind: &str,
    ) -> Result<bool, VaultError> {
        VaultClient::ensure_auth_enabled(self, node, token, mount, kind).await
    }
    async fn put_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        name: &str,
        policy: &str,
    ) -> Result<(), VaultError> {
        VaultClient::put_policy(self, node, token, name, policy).await
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
        VaultClient::put_approle(self, node, token, mount, role, policy, limits).await
    }
    async fn approle_role_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        VaultClient::approle_role_id(self, node, token, mount, role).await
    }
    async fn new_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        VaultClient::new_secret_id(self, node, token, mount, role).await
    }
    async fn revoke_self(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        VaultClient::revoke_self(self, node, token).await
    }
    async fn token_is_valid(&self, node: &NodeAddr, token: &Secret) -> Result<bool, VaultError> {
        VaultClient::token_is_valid(self, node, token).await
    }
    async fn key_status(&self, node: &NodeAddr, token: &Secret) -> Result<KeyStatus, VaultError> {
        VaultClient::key_status(self, node, token).await
    }
    async fn rotate_keyring(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        VaultClient::rotate_keyring(self, node, token).await
    }
    async fn keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<KeyringPolicy, VaultError> {
        VaultClient::keyring_policy(self, node, token).await
    }
    async fn rotate_root_key(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        VaultClient::rotate_root_key(self, node, token).await
    }
    async fn set_keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        policy: &KeyringPolicy,
    ) -> Result<(), VaultError> {
        VaultClient::set_keyring_policy(self, node, token, policy).await
    }
    async fn share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<ShareRotation, VaultError> {
        VaultClient::share_rotation(self, node, token, kind).await
    }
    async fn start_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        shares: u8,
        threshold: u8,
    ) -> Result<ShareRotation, VaultError> {
        VaultClient::start_share_rotation(self, node, token, kind, shares, threshold).await
    }
    async fn cancel_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<(), VaultError> {
        VaultClient::cancel_share_rotation(self, node, token, kind).await
    }
    async fn submit_rotation_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<RotationStep, VaultError> {
        VaultClient::submit_rotation_share(self, node, token, kind, nonce, share).await
    }
    async fn submit_verification_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<VerifyStep, VaultError> {
        VaultClient::submit_verification_share(self, node, token, kind, nonce, share).await
    }
    async fn restart_verification(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<Option<String>, VaultError> {
        VaultClient::restart_verification(self, node, token, kind).await
    }
    async fn secret_id_info(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        secret_id: &Secret,
    ) -> Result<Option<SecretIdInfo>, VaultError> {
        VaultClient::secret_id_info(self, node, token, mount, role, secret_id).await
    }
    async fn destroy_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> Result<bool, VaultError> {
        VaultClient::destroy_secret_id(self, node, token, mount, role, accessor).await
    }
    async fn database_admin(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<Option<String>, VaultError> {
        VaultClient::database_admin(self, node, token, mount, connection).await
    }
    async fn static_role_users(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
    ) -> Result<Vec<(String, String)>, VaultError> {
        VaultClient::static_role_users(self, node, token, mount).await
    }
    async fn rotate_database_root(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<(), VaultError> {
        VaultClient::rotate_database_root(self, node, token, mount, connection).await
    }
    async fn database_credential(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<IssuedCredential, VaultError> {
        VaultClient::database_credential(self, node, token, mount, role).await
    }
    async fn ensure_canary_mount(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<bool, VaultError> {
        VaultClient::ensure_canary_mount(self, node, token).await
    }
    async fn write_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
        value: &str,
    ) -> Result<(), VaultError> {
        VaultClient::write_canary(self, node, token, value).await
    }
    async fn read_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<Option<String>, VaultError> {
        VaultClient::read_canary(self, node, token).await
    }
    async fn revoke_lease(
        &self,
        node: &NodeAddr,
        token: &Secret,
        lease_id: &str,
    ) -> Result<(), VaultError> {
        VaultClient::revoke_lease(self, node, token, lease_id).await
    }
}
