//! Why a node-lifecycle invocation failed, and what the failure means for a retry.

use super::records::RecordError;
use crate::{
    cluster::{
        auth::LoginError,
        lifecycle_actions::ActionError,
        locks::LockError,
        polling::WaitExpired,
        ports::{FleetError, ParameterError},
    },
    errors::Classify,
    events::EventError,
    ids::{InstanceId, NodeAddr},
    vault::VaultError,
};

/// Why an invocation failed. Nothing here holds a share, token or secret ID.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The event is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The event names another Auto Scaling group.
    #[error("this function serves auto scaling group {expected}, and the event is for {got}; nothing was done")]
    OtherGroup {
        /// The group configured.
        expected: String,
        /// The group in the event.
        got: String,
    },
    /// The group could not be listed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The state table could not be read or written.
    #[error(transparent)]
    Records(#[from] RecordError),
    /// The lock could not be claimed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Auto Scaling refused a completion or heartbeat.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// A parameter could not be read or written.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// This function could not log in to Vault.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// A Vault call failed.
    #[error("{step} failed")]
    Vault {
        /// The step.
        step: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// A wait ran out. The progress is recorded; a retry or redelivery resumes it.
    #[error(transparent)]
    Wait(#[from] WaitExpired),
    /// Fewer shares are in SSM than the threshold needs.
    #[error("node {node} is sealed and needs {needed} shares, but only {found} are in SSM (missing: {}); store them, then retry", missing.join(", "))]
    MissingShares {
        /// The node.
        node: NodeAddr,
        /// The threshold.
        needed: usize,
        /// Shares found.
        found: usize,
        /// The parameters looked for and not found.
        missing: Vec<String>,
    },
    /// The node took the stored shares and stayed sealed: they are not this cluster's.
    #[error("node {node} is still sealed after the {tried} shares stored under {path}; they are not this cluster's shares (nothing was changed in SSM)")]
    SharesRejected {
        /// The node.
        node: NodeAddr,
        /// How many were entered.
        tried: usize,
        /// Where they came from.
        path: String,
    },
    /// A previous run initialised the cluster and died before every share and the root
    /// token were stored.
    #[error("node {node} was initialised by an earlier run of this function, but not every share and the root token are stored under {path} (missing: {}): the keys sys/init returned are lost. This function will not initialise again over the data, nor carry on with part of the keys. Recover with a snapshot restore into a new cluster, or wipe the node's raft data if it holds nothing", missing.join(", "))]
    InitialisedWithoutShares {
        /// The node the record names.
        node: InstanceId,
        /// Where the shares should be.
        path: String,
        /// The parameters looked for and not found.
        missing: Vec<String>,
    },
    /// SSM refused a share or the root token until the invocation's deadline, right
    /// after `sys/init`: the values not stored existed only in the run's memory.
    #[error("node {node} was initialised, but SSM refused {parameter} for {attempts} attempts until this invocation's deadline: {stored} of {total} values (shares, then the root token) are stored and the rest are lost. The initialisation record still says started; nothing will initialise again over the data. See InitialisedWithoutShares in the runbook")]
    SharesNotStored {
        /// The node initialised.
        node: InstanceId,
        /// The parameter SSM refused.
        parameter: String,
        /// How many values were stored before it.
        stored: usize,
        /// How many there were (the shares and the root token).
        total: usize,
        /// How many writes of it were tried.
        attempts: u32,
        /// SSM's last refusal.
        #[source]
        source: ParameterError,
    },
    /// Too little of the invocation is left to send `sys/init` and keep its answer.
    #[error("only {left_s} s of this invocation are left, and sys/init needs up to {init_timeout_s} s (VAULT_INIT_TIMEOUT_SECS) plus {reserve_s} s to store the shares; nothing was sent, a redelivery initialises")]
    NoTimeToInitialise {
        /// Seconds left.
        left_s: u64,
        /// `VAULT_INIT_TIMEOUT_SECS`.
        init_timeout_s: u64,
        /// Kept for storing the shares.
        reserve_s: u64,
    },
    /// Shares or credentials are stored, but no node is initialised: they belong to an
    /// earlier cluster.
    #[error("no node of the cluster is initialised, but {parameter} already exists: it belongs to an earlier cluster. This function never overwrites a share or credential; move the old parameters away (after keeping a copy) or restore the old cluster, then retry")]
    StaleShares {
        /// The share parameter found.
        parameter: String,
    },
    /// Bootstrap needs the root token, and it is gone before bootstrap finished.
    #[error("the cluster was initialised but bootstrap did not finish, and the root token at {parameter} is missing or revoked. Generate a root token with the stored shares (operator generate-root), store it at {parameter}, and retry")]
    RootTokenLost {
        /// Where the root token should be.
        parameter: String,
    },
    /// Auto-unseal did not unseal the node.
    #[error("node {node} uses auto-unseal ({seal}) and is still sealed; check the seal's key and the node's access to it. last seen: {last}")]
    AutoUnsealFailed {
        /// The node.
        node: NodeAddr,
        /// The seal type.
        seal: String,
        /// What the last look saw.
        last: String,
    },
    /// The event's lifecycle action is not one Auto Scaling has pending: stale, made up,
    /// or for another state. Nothing was done.
    #[error("instance {instance} of auto scaling group {group} is {found}, not waiting for a {transition} lifecycle action (expected {expected}); the event is stale or not from Auto Scaling, and nothing was done")]
    ActionNotPending {
        /// The instance.
        instance: InstanceId,
        /// The group.
        group: String,
        /// `launch` or `terminate`.
        transition: &'static str,
        /// What Auto Scaling reports.
        found: String,
        /// The wait states that would have matched.
        expected: String,
    },
    /// Another delivery of the same lifecycle action held it until this run's time ran
    /// out. Nothing was done; a retry finds it completed or takes it over.
    #[error("another delivery of the {transition} lifecycle action of {instance} held it until this run's time ran out (held by {holder}); nothing was done")]
    ActionInProgress {
        /// The instance.
        instance: InstanceId,
        /// `launch` or `terminate`.
        transition: &'static str,
        /// The lock's owner.
        holder: String,
    },
    /// No node answered as active.
    #[error("no node of the cluster is active (asked {asked} nodes)")]
    NoActiveNode {
        /// How many nodes were asked.
        asked: usize,
    },
    /// The terminating node is still a voter and its departure would cost quorum.
    #[error("the terminate of {instance} is held: {reason}. Its raft peer was not removed and its lifecycle action is kept pending with heartbeats; the retry looks again. See the held-terminate runbook")]
    TerminateHeld {
        /// The instance.
        instance: InstanceId,
        /// What the last look saw.
        reason: String,
    },
    /// Another terminate held the terminate lock until this invocation's time ran out.
    #[error("the terminate of {instance} waited for another terminate ({holder}) to finish; nothing was changed and its lifecycle action is kept pending; the retry continues")]
    TerminateQueued {
        /// The instance.
        instance: InstanceId,
        /// Who holds the lock.
        holder: String,
    },
}

impl Classify for LifecycleError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Event(e) => e.retry_helps(),
            Self::Fleet(e) => e.retry_helps(),
            Self::Records(e) => e.retry_helps(),
            Self::Lock(e) => e.retry_helps(),
            Self::Action(e) => e.retry_helps(),
            Self::Parameter(e) => e.retry_helps(),
            Self::Login(e) => e.retry_helps(),
            Self::Vault { source, .. } => source.retry_helps(),
            Self::Wait(e) => e.retry_helps(),
            Self::NoActiveNode { .. }
            | Self::NoTimeToInitialise { .. }
            | Self::TerminateHeld { .. }
            | Self::TerminateQueued { .. }
            | Self::ActionInProgress { .. } => true,
            Self::OtherGroup { .. }
            | Self::MissingShares { .. }
            | Self::SharesRejected { .. }
            | Self::InitialisedWithoutShares { .. }
            | Self::SharesNotStored { .. }
            | Self::StaleShares { .. }
            | Self::RootTokenLost { .. }
            | Self::AutoUnsealFailed { .. }
            | Self::ActionNotPending { .. } => false,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Event(e) => e.name(),
            Self::OtherGroup { .. } => "OtherGroup",
            Self::Fleet(e) => e.name(),
            Self::Records(e) => e.name(),
            Self::Lock(e) => e.name(),
            Self::Action(e) => e.name(),
            Self::Parameter(e) => e.name(),
            Self::Login(e) => e.name(),
            Self::Vault { source, .. } => source.name(),
            Self::Wait(e) => e.name(),
            Self::MissingShares { .. } => "MissingShares",
            Self::SharesRejected { .. } => "SharesRejected",
            Self::InitialisedWithoutShares { .. } => "InitialisedWithoutShares",
            Self::SharesNotStored { .. } => "SharesNotStored",
            Self::NoTimeToInitialise { .. } => "NoTimeToInitialise",
            Self::StaleShares { .. } => "StaleShares",
            Self::RootTokenLost { .. } => "RootTokenLost",
            Self::AutoUnsealFailed { .. } => "AutoUnsealFailed",
            Self::NoActiveNode { .. } => "NoActiveNode",
            Self::ActionNotPending { .. } => "ActionNotPending",
            Self::TerminateHeld { .. } => "TerminateHeld",
            Self::TerminateQueued { .. } => "TerminateQueued",
            Self::ActionInProgress { .. } => "ActionInProgress",
        }
    }
}
