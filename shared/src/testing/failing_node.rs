//! A failure-injection wrapper around any node port, fake or real: a test names a call
//! (and optionally a node) and the failure to answer instead, for a number of calls; every
//! other call goes through. A failure is injected before the call reaches the node (it
//! never happened), or after (it happened, and its answer was lost, as when a Lambda is
//! cut off or the connection drops mid-response). The same wrapper serves the unit tests over `FakeCluster` and
//! the integration tests over a real OpenBao.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;

use crate::{
    cluster::node::{
        AppRoleLimits, AutopilotState, Health, IamLoginRequest, InitOutput, IssuedCredential,
        KeyStatus, KeyringPolicy, LeaderStatus, Login, NodeApi, OutgoingBody, RaftConfiguration,
        RotationStep, SealStatus, SecretIdInfo, ShareKind, ShareRotation, SnapshotStream,
        VaultError, VerifyStep,
    },
    ids::NodeAddr,
    secret::Secret,
};

/// What an injected failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection: as a node that is down or a network that drops.
    Unreachable,
    /// The node answers with this HTTP status (403 denied, 500 during an election, ...).
    Status(u16),
}

#[derive(Debug)]
struct Injected {
    call: &'static str,
    node: Option<String>,
    failure: Failure,
    times: usize,
    after: bool,
}

/// Wraps `N`, failing the calls a test names.
#[derive(Debug)]
pub struct FailingNode<N> {
    /// The wrapped port, shared: a test can keep a handle on it (a fake whose state
    /// another fake changes).
    pub inner: Arc<N>,
    plan: Mutex<Vec<Injected>>,
}

impl<N> FailingNode<N> {
    /// Wraps `inner`; nothing fails until a test says so.
    pub fn new(inner: N) -> Self {
        Self::shared(Arc::new(inner))
    }

    /// Wraps a port the caller keeps a handle on.
    pub fn shared(inner: Arc<N>) -> Self {
        Self {
            inner,
            plan: Mutex::new(Vec::new()),
        }
    }

    /// The next `times` calls of `call` (the port's method name, e.g. `"unseal"`) fail
    /// with `failure`, whichever node they go to.
    pub fn fail(&self, call: &'static str, failure: Failure, times: usize) {
        self.push(call, None, failure, times, false);
    }

    /// The next `times` calls of `call` to a node whose address contains `node` fail.
    pub fn fail_on(&self, call: &'static str, node: &str, failure: Failure, times: usize) {
        self.push(call, Some(node.to_owned()), failure, times, false);
    }

    /// The next `times` calls of `call` reach the node and take effect, then their answer
    /// is lost and `failure` is returned instead: the caller cannot tell what happened.
    pub fn fail_after(&self, call: &'static str, failure: Failure, times: usize) {
        self.push(call, None, failure, times, true);
    }

    fn push(
        &self,
        call: &'static str,
        node: Option<String>,
        failure: Failure,
        times: usize,
        after: bool,
    ) {
        self.lock().push(Injected {
            call,
            node,
            failure,
            times,
            after,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Injected>> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A failure planned for before the call.
    fn inject(&self, call: &'static str, node: &NodeAddr) -> Result<(), VaultError> {
        self.planned(call, node, false)
    }

    /// Passes `answer` on, unless a failure is planned for after the call.
    fn answer<T>(
        &self,
        call: &'static str,
        node: &NodeAddr,
        answer: Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let answer = answer?;
        self.planned(call, node, true)?;
        Ok(answer)
    }

    fn planned(&self, call: &'static str, node: &NodeAddr, after: bool) -> Result<(), VaultError> {
        let mut plan = self.lock();
        let hit = plan.iter_mut().find(|i| {
            i.call == call
                && i.after == after
                && i.times > 0
                && i.node.as_deref().is_none_or(|n| node.as_str().contains(n))
        });
        let Some(hit) = hit else {
            return Ok(());
        };
        hit.times -= 1;
        let path = format!("(injected failure of {call})");
        Err(match hit.failure {
            Failure::Unreachable => VaultError::Unreachable {
                node: node.clone(),
                path,
                attempts: 1,
                source: "injected: connection refused".into(),
            },
            Failure::Status(status) => VaultError::Status {
                node: node.clone(),
                method: "INJECTED".into(),
                path,
                status,
                errors: vec![format!("injected {status}")],
            },
        })
    }
}

#[async_trait]
impl<N: NodeApi> NodeApi for FailingNode<N> {
    async fn health(&self, node: &NodeAddr) -> Result<Health, VaultError> {
        self.inject("health", node)?;
        let answer = self.inner.health(node).await;
        self.answer("health", node, answer)
    }

    async fn seal_status(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        self.inject("seal_status", node)?;
        let answer = self.inner.seal_status(node).await;
        self.answer("seal_status", node, answer)
    }

    async fn init(
        &self,
        node: &NodeAddr,
        shares: u8,
        threshold: u8,
        recovery: bool,
    ) -> Result<InitOutput, VaultError> {
        self.inject("init", node)?;
        let answer = self.inner.init(node, shares, threshold, recovery).await;
        self.answer("init", node, answer)
    }

    async fn unseal(&self, node: &NodeAddr, share: &Secret) -> Result<SealStatus, VaultError> {
        self.inject("unseal", node)?;
        let answer = self.inner.unseal(node, share).await;
        self.answer("unseal", node, answer)
    }

    async fn unseal_reset(&self, node: &NodeAddr) -> Result<SealStatus, VaultError> {
        self.inject("unseal_reset", node)?;
        let answer = self.inner.unseal_reset(node).await;
        self.answer("unseal_reset", node, answer)
    }

    async fn join(
        &self,
        node: &NodeAddr,
        leader: &NodeAddr,
        leader_ca_pem: Option<&str>,
    ) -> Result<bool, VaultError> {
        self.inject("join", node)?;
        let answer = self.inner.join(node, leader, leader_ca_pem).await;
        self.answer("join", node, answer)
    }

    async fn raft_configuration(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<RaftConfiguration, VaultError> {
        self.inject("raft_configuration", node)?;
        let answer = self.inner.raft_configuration(node, token).await;
        self.answer("raft_configuration", node, answer)
    }

    async fn remove_peer(
        &self,
        node: &NodeAddr,
        token: &Secret,
        node_id: &str,
    ) -> Result<(), VaultError> {
        self.inject("remove_peer", node)?;
        let answer = self.inner.remove_peer(node, token, node_id).await;
        self.answer("remove_peer", node, answer)
    }

    async fn step_down(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.inject("step_down", node)?;
        let answer = self.inner.step_down(node, token).await;
        self.answer("step_down", node, answer)
    }

    async fn autopilot_state(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<AutopilotState, VaultError> {
        self.inject("autopilot_state", node)?;
        let answer = self.inner.autopilot_state(node, token).await;
        self.answer("autopilot_state", node, answer)
    }

    async fn leader(&self, node: &NodeAddr) -> Result<LeaderStatus, VaultError> {
        self.inject("leader", node)?;
        let answer = self.inner.leader(node).await;
        self.answer("leader", node, answer)
    }

    async fn snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        timeout: Duration,
    ) -> Result<SnapshotStream, VaultError> {
        self.inject("snapshot", node)?;
        let answer = self.inner.snapshot(node, token, timeout).await;
        self.answer("snapshot", node, answer)
    }

    async fn restore_snapshot(
        &self,
        node: &NodeAddr,
        token: &Secret,
        body: OutgoingBody,
        force: bool,
        timeout: Duration,
    ) -> Result<(), VaultError> {
        self.inject("restore_snapshot", node)?;
        let answer = self
            .inner
            .restore_snapshot(node, token, body, force, timeout)
            .await;
        self.answer("restore_snapshot", node, answer)
    }

    async fn approle_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role_id: &Secret,
        secret_id: &Secret,
    ) -> Result<Login, VaultError> {
        self.inject("approle_login", node)?;
        let answer = self
            .inner
            .approle_login(node, mount, role_id, secret_id)
            .await;
        self.answer("approle_login", node, answer)
    }

    async fn aws_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        role: &str,
        request: &IamLoginRequest,
    ) -> Result<Login, VaultError> {
        self.inject("aws_login", node)?;
        let answer = self.inner.aws_login(node, mount, role, request).await;
        self.answer("aws_login", node, answer)
    }

    async fn ensure_auth_enabled(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        kind: &str,
    ) -> Result<bool, VaultError> {
        self.inject("ensure_auth_enabled", node)?;
        let answer = self
            .inner
            .ensure_auth_enabled(node, token, mount, kind)
            .await;
        self.answer("ensure_auth_enabled", node, answer)
    }

    async fn put_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        name: &str,
        policy: &str,
    ) -> Result<(), VaultError> {
        self.inject("put_policy", node)?;
        let answer = self.inner.put_policy(node, token, name, policy).await;
        self.answer("put_policy", node, answer)
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
        self.inject("put_approle", node)?;
        let answer = self
            .inner
            .put_approle(node, token, mount, role, policy, limits)
            .await;
        self.answer("put_approle", node, answer)
    }

    async fn approle_role_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        self.inject("approle_role_id", node)?;
        let answer = self.inner.approle_role_id(node, token, mount, role).await;
        self.answer("approle_role_id", node, answer)
    }

    async fn new_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<Secret, VaultError> {
        self.inject("new_secret_id", node)?;
        let answer = self.inner.new_secret_id(node, token, mount, role).await;
        self.answer("new_secret_id", node, answer)
    }

    async fn revoke_self(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.inject("revoke_self", node)?;
        let answer = self.inner.revoke_self(node, token).await;
        self.answer("revoke_self", node, answer)
    }

    async fn token_is_valid(&self, node: &NodeAddr, token: &Secret) -> Result<bool, VaultError> {
        self.inject("token_is_valid", node)?;
        let answer = self.inner.token_is_valid(node, token).await;
        self.answer("token_is_valid", node, answer)
    }

    async fn key_status(&self, node: &NodeAddr, token: &Secret) -> Result<KeyStatus, VaultError> {
        self.inject("key_status", node)?;
        let answer = self.inner.key_status(node, token).await;
        self.answer("key_status", node, answer)
    }

    async fn rotate_keyring(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.inject("rotate_keyring", node)?;
        let answer = self.inner.rotate_keyring(node, token).await;
        self.answer("rotate_keyring", node, answer)
    }

    async fn rotate_root_key(&self, node: &NodeAddr, token: &Secret) -> Result<(), VaultError> {
        self.inject("rotate_root_key", node)?;
        let answer = self.inner.rotate_root_key(node, token).await;
        self.answer("rotate_root_key", node, answer)
    }

    async fn keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<KeyringPolicy, VaultError> {
        self.inject("keyring_policy", node)?;
        let answer = self.inner.keyring_policy(node, token).await;
        self.answer("keyring_policy", node, answer)
    }

    async fn set_keyring_policy(
        &self,
        node: &NodeAddr,
        token: &Secret,
        policy: &KeyringPolicy,
    ) -> Result<(), VaultError> {
        self.inject("set_keyring_policy", node)?;
        let answer = self.inner.set_keyring_policy(node, token, policy).await;
        self.answer("set_keyring_policy", node, answer)
    }
    async fn share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<ShareRotation, VaultError> {
        self.inject("share_rotation", node)?;
        let answer = self.inner.share_rotation(node, token, kind).await;
        self.answer("share_rotation", node, answer)
    }
    async fn start_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        shares: u8,
        threshold: u8,
    ) -> Result<ShareRotation, VaultError> {
        self.inject("start_share_rotation", node)?;
        let answer = self
            .inner
            .start_share_rotation(node, token, kind, shares, threshold)
            .await;
        self.answer("start_share_rotation", node, answer)
    }
    async fn cancel_share_rotation(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<(), VaultError> {
        self.inject("cancel_share_rotation", node)?;
        let answer = self.inner.cancel_share_rotation(node, token, kind).await;
        self.answer("cancel_share_rotation", node, answer)
    }
    async fn submit_rotation_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<RotationStep, VaultError> {
        self.inject("submit_rotation_share", node)?;
        let answer = self
            .inner
            .submit_rotation_share(node, token, kind, nonce, share)
            .await;
        self.answer("submit_rotation_share", node, answer)
    }
    async fn submit_verification_share(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
        nonce: &str,
        share: &Secret,
    ) -> Result<VerifyStep, VaultError> {
        self.inject("submit_verification_share", node)?;
        let answer = self
            .inner
            .submit_verification_share(node, token, kind, nonce, share)
            .await;
        self.answer("submit_verification_share", node, answer)
    }
    async fn restart_verification(
        &self,
        node: &NodeAddr,
        token: &Secret,
        kind: ShareKind,
    ) -> Result<Option<String>, VaultError> {
        self.inject("restart_verification", node)?;
        let answer = self.inner.restart_verification(node, token, kind).await;
        self.answer("restart_verification", node, answer)
    }
    async fn secret_id_info(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        secret_id: &Secret,
    ) -> Result<Option<SecretIdInfo>, VaultError> {
        self.inject("secret_id_info", node)?;
        let answer = self
            .inner
            .secret_id_info(node, token, mount, role, secret_id)
            .await;
        self.answer("secret_id_info", node, answer)
    }
    async fn destroy_secret_id(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
        accessor: &str,
    ) -> Result<bool, VaultError> {
        self.inject("destroy_secret_id", node)?;
        let answer = self
            .inner
            .destroy_secret_id(node, token, mount, role, accessor)
            .await;
        self.answer("destroy_secret_id", node, answer)
    }
    async fn database_admin(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<Option<String>, VaultError> {
        self.inject("database_admin", node)?;
        let answer = self
            .inner
            .database_admin(node, token, mount, connection)
            .await;
        self.answer("database_admin", node, answer)
    }
    async fn static_role_users(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
    ) -> Result<Vec<(String, String)>, VaultError> {
        self.inject("static_role_users", node)?;
        let answer = self.inner.static_role_users(node, token, mount).await;
        self.answer("static_role_users", node, answer)
    }
    async fn rotate_database_root(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        connection: &str,
    ) -> Result<(), VaultError> {
        self.inject("rotate_database_root", node)?;
        let answer = self
            .inner
            .rotate_database_root(node, token, mount, connection)
            .await;
        self.answer("rotate_database_root", node, answer)
    }
    async fn database_credential(
        &self,
        node: &NodeAddr,
        token: &Secret,
        mount: &str,
        role: &str,
    ) -> Result<IssuedCredential, VaultError> {
        self.inject("database_credential", node)?;
        let answer = self
            .inner
            .database_credential(node, token, mount, role)
            .await;
        self.answer("database_credential", node, answer)
    }
    async fn ensure_canary_mount(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<bool, VaultError> {
        self.inject("ensure_canary_mount", node)?;
        let answer = self.inner.ensure_canary_mount(node, token).await;
        self.answer("ensure_canary_mount", node, answer)
    }

    async fn write_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
        value: &str,
    ) -> Result<(), VaultError> {
        self.inject("write_canary", node)?;
        let answer = self.inner.write_canary(node, token, value).await;
        self.answer("write_canary", node, answer)
    }

    async fn read_canary(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<Option<String>, VaultError> {
        self.inject("read_canary", node)?;
        let answer = self.inner.read_canary(node, token).await;
        self.answer("read_canary", node, answer)
    }

    async fn revoke_lease(
        &self,
        node: &NodeAddr,
        token: &Secret,
        lease_id: &str,
    ) -> Result<(), VaultError> {
        self.inject("revoke_lease", node)?;
        let answer = self.inner.revoke_lease(node, token, lease_id).await;
        self.answer("revoke_lease", node, answer)
    }
}
