//! Why a restore was refused or failed, and what the failure means for a retry. Every
//! refusal comes before anything reaches the cluster.

use chrono::{DateTime, Utc};

use crate::{
    cluster::{
        auth::LoginError,
        locks::LockError,
        node::VaultError,
        polling::WaitExpired,
        ports::{FleetError, ParameterError},
    },
    errors::Classify,
    events::EventError,
    snapshots::{
        catalog::CatalogError,
        store::{Location, StoreError},
        take::TakeError,
        verify::VerifyError,
    },
};

/// The way back from a restore that failed after it changed something, named in its
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// The safety snapshot taken just before: restore it to undo.
    Safety(Location),
    /// A cluster rebuilt in a new node: it held nothing to save, and the snapshot's
    /// source still holds the data.
    NewCluster,
}

impl std::fmt::Display for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Safety(location) => write!(f, "the safety snapshot is {location}"),
            Self::NewCluster => write!(
                f,
                "a cluster rebuilt in a new node: no safety snapshot, the snapshot's source still holds the data"
            ),
        }
    }
}

/// Why a restore was refused or failed. Nothing here holds a share or token.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The request is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The group could not be listed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The backup lock could not be claimed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The catalog could not be read or written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// This function could not log in to Vault.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The bucket could not be asked about the version.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The safety snapshot was not taken; nothing was sent.
    #[error("the safety snapshot before the restore failed; nothing was sent")]
    SafetySnapshot(#[source] TakeError),
    /// The catalog of the cluster is empty.
    #[error("the catalog of cluster {cluster} holds no snapshot; nothing was changed")]
    NoSnapshot {
        /// The cluster.
        cluster: String,
    },
    /// No snapshot was taken at or before the time.
    #[error("no snapshot of cluster {cluster} was taken at or before {as_of} (the first was taken at {}); nothing was changed", first.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()))]
    NoneAsOf {
        /// The cluster.
        cluster: String,
        /// The time asked for.
        as_of: DateTime<Utc>,
        /// The first snapshot's time.
        first: Option<DateTime<Utc>>,
    },
    /// The key is not under this product's prefix.
    #[error(
        "key {key} is not under {prefix}<cluster>/, where snapshots are kept; nothing was changed"
    )]
    OutsidePrefix {
        /// The key.
        key: String,
        /// The prefix.
        prefix: String,
    },
    /// The bucket has no such key or version.
    #[error("{object} does not exist; nothing was changed{}", hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default())]
    NoSuchVersion {
        /// What was asked for.
        object: Location,
        /// For a catalogued snapshot: what else to restore (the catalog's previous
        /// snapshot, this snapshot's DR copy).
        hint: Option<String>,
    },
    /// The version exists, and no backup recorded it.
    #[error("{object} is not in the catalog of cluster {cluster} (catalogued versions of this key: {}), so its checksum cannot be checked against a backup's record; nothing was changed. Give force to restore it on the archive check alone", if catalogued.is_empty() { "none".to_owned() } else { catalogued.join(", ") })]
    NotCatalogued {
        /// The object.
        object: Location,
        /// The cluster its key names.
        cluster: String,
        /// The versions of the same key the catalog knows.
        catalogued: Vec<String>,
    },
    /// The object is not the snapshot recorded, or not a good snapshot.
    #[error("{0}; nothing was changed")]
    Verify(#[from] VerifyError),
    /// A snapshot of another cluster, without `force`.
    #[error("{object} is a snapshot of cluster {source_cluster} (cluster id {source_id}), and this is cluster {cluster} (cluster id {cluster_id}); nothing was changed. Restoring it replaces this cluster's data, keyring and credentials with the other cluster's: give force to do it, with the other cluster's shares in SSM")]
    OtherCluster {
        /// The object.
        object: Location,
        /// Its cluster.
        source_cluster: String,
        /// Its cluster id.
        source_id: String,
        /// This cluster.
        cluster: String,
        /// This cluster's id.
        cluster_id: String,
    },
    /// The source cluster's shares, needed after a forced restore, are not in SSM.
    #[error("a snapshot of cluster {source_cluster} brings its keys: this cluster will need {needed} of its shares, and {path} holds {found}; nothing was changed. Store them there, then retry")]
    SourceSharesMissing {
        /// The source cluster.
        source_cluster: String,
        /// Where they were looked for.
        path: String,
        /// How many are needed.
        needed: usize,
        /// How many were found.
        found: usize,
    },
    /// The snapshot was taken under a generation of shares this cluster no longer keeps.
    #[error("the snapshot was taken under share generation {generation}: once restored, the cluster unseals only with that generation's shares, and {path} holds {found} of the {needed} needed; nothing was changed")]
    GenerationSharesMissing {
        /// The snapshot's generation.
        generation: crate::keys::Generation,
        /// Where its shares are kept.
        path: String,
        /// How many are needed.
        needed: usize,
        /// How many exist.
        found: usize,
    },
    /// Shares could not be read.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// No node answered as active.
    #[error("no node of the cluster is active (asked {asked} nodes); nothing was changed")]
    NoActiveNode {
        /// How many were asked.
        asked: usize,
    },
    /// The node refused the snapshot or the transfer failed.
    #[error("sending {object} to {node} failed ({undo})")]
    Send {
        /// The object.
        object: Location,
        /// The node.
        node: String,
        /// The way back.
        undo: Undo,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The cluster did not come back healthy in time.
    #[error("the snapshot was sent, and the cluster has no healthy active node yet ({undo})")]
    NotHealthy {
        /// The way back.
        undo: Undo,
        /// The wait.
        #[source]
        source: WaitExpired,
    },
    /// The active node's seal status could not be read, before anything was changed.
    #[error("reading the seal status of {node} failed; nothing was changed")]
    SealStatus {
        /// The node.
        node: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The source cluster's shares did not unseal a node after a forced restore.
    #[error("node {node} refused the {tried} shares of the source cluster after the restore: they are not the shares of the snapshot's cluster ({undo})")]
    SharesRejected {
        /// The node.
        node: String,
        /// How many were entered.
        tried: usize,
        /// The way back.
        undo: Undo,
    },
    /// A rebuild found no node of the group in service to rebuild the cluster in.
    #[error("no node of the group is in service to rebuild the cluster in (asked {asked}); nothing was changed")]
    NoNodeToRebuild {
        /// How many in-service instances were asked.
        asked: usize,
    },
    /// A rebuild was left too little of the invocation to initialise a node and send it
    /// the snapshot.
    #[error("{left_s} s of the invocation are left and a rebuild needs {needed_s} s (a minute for the send and the healthy timeout): nothing was sent")]
    NoTimeToRebuild {
        /// Seconds left.
        left_s: u64,
        /// Seconds needed.
        needed_s: u64,
    },
    /// `sys/init` of the node a rebuild chose failed.
    #[error("initialising {node} to rebuild the cluster in it failed")]
    RebuildInit {
        /// The node.
        node: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// A node initialised by an earlier rebuild that was cut off before its snapshot was
    /// in force: its throwaway keys were held in memory only.
    #[error("node {node} was initialised by an earlier rebuild cut off before the snapshot replaced its throwaway keys, which are gone ({why}); nothing was changed: terminate the instance (its group launches another, left uninitialised for the rebuild) and ask again")]
    RebuildKeysLost {
        /// The node's instance and address.
        node: String,
        /// What was found.
        why: String,
    },
    /// A sealed node refused the shares.
    #[error("unsealing {node} after the restore failed ({undo})")]
    Unseal {
        /// The node.
        node: String,
        /// The way back.
        undo: Undo,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
}

impl Classify for RestoreError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Event(e) => e.retry_helps(),
            Self::Fleet(e) => e.retry_helps(),
            Self::Lock(e) => e.retry_helps(),
            Self::Catalog(e) => e.retry_helps(),
            Self::Login(e) => e.retry_helps(),
            Self::Store(e) => e.retry_helps(),
            Self::SafetySnapshot(e) => e.retry_helps(),
            Self::Verify(e) => e.retry_helps(),
            Self::Parameter(e) => e.retry_helps(),
            Self::NoActiveNode { .. }
            | Self::NoNodeToRebuild { .. }
            | Self::NoTimeToRebuild { .. } => true,
            Self::RebuildInit { source, .. } => source.retry_helps(),
            Self::RebuildKeysLost { .. } => false,
            Self::SealStatus { source, .. } => source.retry_helps(),
            // The snapshot was sent or refused: a blind retry would restore again.
            Self::Send { .. }
            | Self::NotHealthy { .. }
            | Self::Unseal { .. }
            | Self::SharesRejected { .. } => false,
            Self::NoSnapshot { .. }
            | Self::NoneAsOf { .. }
            | Self::OutsidePrefix { .. }
            | Self::NoSuchVersion { .. }
            | Self::NotCatalogued { .. }
            | Self::OtherCluster { .. }
            | Self::SourceSharesMissing { .. }
            | Self::GenerationSharesMissing { .. } => false,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Event(e) => e.name(),
            Self::Fleet(e) => e.name(),
            Self::Lock(e) => e.name(),
            Self::Catalog(e) => e.name(),
            Self::Login(e) => e.name(),
            Self::Store(e) => e.name(),
            Self::SafetySnapshot(e) if !e.retry_helps() => e.name(),
            Self::SafetySnapshot(_) => "SafetySnapshotFailed",
            Self::Verify(e) => e.name(),
            Self::Parameter(e) => e.name(),
            Self::NoSnapshot { .. } => "NoSnapshot",
            Self::NoneAsOf { .. } => "NoSnapshotAsOf",
            Self::OutsidePrefix { .. } => "OutsidePrefix",
            Self::NoSuchVersion { .. } => "NoSuchVersion",
            Self::NotCatalogued { .. } => "NotCatalogued",
            Self::OtherCluster { .. } => "OtherCluster",
            Self::SourceSharesMissing { .. } => "SourceSharesMissing",
            Self::GenerationSharesMissing { .. } => "GenerationSharesMissing",
            Self::NoActiveNode { .. } => "NoActiveNode",
            Self::NoNodeToRebuild { .. } => "NoNodeToRebuild",
            Self::NoTimeToRebuild { .. } => "NoTimeToRebuild",
            Self::RebuildInit { .. } => "RebuildInitFailed",
            Self::RebuildKeysLost { .. } => "RebuildKeysLost",
            Self::SealStatus { source, .. } => source.name(),
            Self::Send { source, .. } if source.status() == Some(crate::errors::DENIED) => {
                "PolicyDenied"
            }
            Self::Send { .. } => "RestoreFailed",
            Self::NotHealthy { .. } => "NotHealthy",
            Self::Unseal { .. } => "UnsealFailed",
            Self::SharesRejected { .. } => "SharesRejected",
        }
    }
}
