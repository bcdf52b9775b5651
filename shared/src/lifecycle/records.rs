//! What node-lifecycle remembers between invocations, in the state table: how far each
//! lifecycle action got (keyed by group, instance, transition and token, so a redelivered
//! event is recognised and an action of one instance is never taken for another's), and
//! how far the one-time initialisation of the cluster got (so a run that died half-way is
//! resumed, or stopped loudly, never repeated over data).

use async_trait::async_trait;

use crate::{
    events::{LifecycleAction, Transition},
    ids::InstanceId,
};

/// The start of the keys of `instance`'s launch records: `<group>/<instance>/launch/`.
pub fn launch_key_prefix(group: &str, instance: &InstanceId) -> String {
    format!("{group}/{instance}/{}/", Transition::Launching.as_str())
}

/// The key of a lifecycle action's record: `<group>/<instance>/<launch|terminate>/<token>`.
/// The token alone is not enough: a record must never answer for another instance's or
/// another transition's action that came with the same token.
pub fn action_key(action: &LifecycleAction) -> String {
    format!(
        "{}/{}/{}/{}",
        action.group,
        action.instance,
        action.transition.as_str(),
        action.token
    )
}

/// How far one lifecycle action got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionStage {
    /// A run started on it.
    Started,
    /// A launch is about to send (or sent) the node's join: if a later run finds the node
    /// initialised but not yet a Raft peer, it is this join's node waiting for its unseal,
    /// not a node with Raft data of its own.
    Joining,
    /// Completed with CONTINUE.
    Continued,
    /// Completed with ABANDON.
    Abandoned,
}

impl ActionStage {
    /// Whether the action is still being carried out (not completed).
    pub fn in_progress(self) -> bool {
        matches!(self, Self::Started | Self::Joining)
    }

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Joining => "joining",
            Self::Continued => "continued",
            Self::Abandoned => "abandoned",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Started,
            Self::Joining,
            Self::Continued,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One lifecycle action's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// The instance the action is about.
    pub instance: InstanceId,
    /// Launch or terminate.
    pub transition: Transition,
    /// How far it got.
    pub stage: ActionStage,
}

/// How far the cluster's initialisation got. The stages are written in this order, each
/// before the step that could be lost after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InitStage {
    /// `sys/init` is about to be sent to `node`: if a later run finds that node
    /// initialised and no shares stored, the shares are lost and it must stop.
    Started,
    /// Every share (and the root token, until bootstrap revokes it) is in SSM.
    SharesStored,
    /// Every function's policy and AppRole exist and their credentials are in SSM; the
    /// root token is revoked unless kept.
    Bootstrapped,
}

impl InitStage {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::SharesStored => "shares-stored",
            Self::Bootstrapped => "bootstrapped",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Started, Self::SharesStored, Self::Bootstrapped]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl InitStage {
    /// The stages a record may be at for `self` to be written over it: itself and those
    /// before it. The stage only moves forward.
    pub fn at_or_before(self) -> Vec<Self> {
        [Self::Started, Self::SharesStored, Self::Bootstrapped]
            .into_iter()
            .filter(|s| *s <= self)
            .collect()
    }
}

/// What became of a write of the initialisation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitWrite {
    /// Written.
    Written,
    /// Not written: the stored record is further along.
    Behind {
        /// The stage stored.
        stored: InitStage,
    },
}

/// The cluster's initialisation record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitRecord {
    /// How far it got.
    pub stage: InitStage,
    /// The node `sys/init` was sent to.
    pub node: InstanceId,
    /// The cluster id Vault reported once the node was unsealed.
    pub cluster_id: Option<String>,
    /// Auto-unseal: the stored shares are recovery shares.
    pub recovery: bool,
}

/// Why the state table could not answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {what} in table {table}: {reason}")]
pub struct RecordError {
    /// `read` or `write`.
    pub action: &'static str,
    /// Which record.
    pub what: String,
    /// The table.
    pub table: String,
    /// The SDK's error, or what was wrong with the stored item.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// The records node-lifecycle keeps (DynamoDB in AWS).
#[async_trait]
pub trait StateRecords: Send + Sync {
    /// The record of `action` (by [`action_key`]).
    async fn action(&self, action: &LifecycleAction) -> Result<Option<ActionRecord>, RecordError>;
    /// Writes (replaces) the record of `action` (by [`action_key`]).
    async fn put_action(
        &self,
        action: &LifecycleAction,
        record: &ActionRecord,
    ) -> Result<(), RecordError>;
    /// Whether a launch of `instance` in `group` was started and never completed (its
    /// record still in progress): the hook's timeout abandoned it, or the instance left
    /// before its launch ended.
    async fn unfinished_launch(
        &self,
        group: &str,
        instance: &InstanceId,
    ) -> Result<bool, RecordError>;
    /// The cluster's initialisation record.
    async fn init(&self) -> Result<Option<InitRecord>, RecordError>;
    /// Writes the cluster's initialisation record, in one conditional write, unless the
    /// stored record is at a later stage: the stage only moves forward, whatever runs
    /// write at the same time.
    async fn put_init(&self, record: &InitRecord) -> Result<InitWrite, RecordError>;
}

impl crate::errors::Classify for RecordError {
    fn retry_helps(&self) -> bool {
        self.reason.retry_helps()
    }
    fn name(&self) -> &'static str {
        self.reason.name("StateTableUnavailable")
    }
}
