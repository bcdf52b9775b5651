//! Why a backup failed, and what the failure means for a retry.

use crate::{
    cluster::{auth::LoginError, locks::LockError, ports::FleetError},
    errors::Classify,
    events::EventError,
    snapshots::{
        catalog::CatalogError,
        store::{Location, StoreError},
        take::TakeError,
        verify::VerifyError,
    },
};

/// Why a backup failed. Nothing here holds a token or secret ID.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The request is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The group could not be listed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The lock could not be claimed or released.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The catalog could not be read or written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// This function could not log in to Vault.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// No node answered as active.
    #[error("no node of the cluster is active (asked {asked} nodes); no snapshot was taken")]
    NoActiveNode {
        /// How many nodes were asked.
        asked: usize,
    },
    /// The snapshot was not taken, stored and recorded.
    #[error(transparent)]
    Take(#[from] TakeError),
    /// The bucket refused an operation after the snapshot was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object read back is not what the catalog says.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Copies to the DR region failed; the snapshot itself is stored and catalogued, and
    /// the next run copies it again.
    #[error("the snapshot {snapshot} is stored and catalogued, but its copy to the DR region failed: {}", failures.join("; "))]
    DrCopy {
        /// The snapshot this run stored.
        snapshot: Location,
        /// Each failure.
        failures: Vec<String>,
    },
}

impl Classify for BackupError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Event(e) => e.retry_helps(),
            Self::Fleet(e) => e.retry_helps(),
            Self::Lock(e) => e.retry_helps(),
            Self::Catalog(e) => e.retry_helps(),
            Self::Login(e) => e.retry_helps(),
            Self::Take(e) => e.retry_helps(),
            Self::Store(e) => e.retry_helps(),
            Self::Verify(e) => e.retry_helps(),
            Self::NoActiveNode { .. } | Self::DrCopy { .. } => true,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Event(e) => e.name(),
            Self::Fleet(e) => e.name(),
            Self::Lock(e) => e.name(),
            Self::Catalog(e) => e.name(),
            Self::Login(e) => e.name(),
            Self::Take(e) => e.name(),
            Self::Store(e) => e.name(),
            Self::Verify(e) => e.name(),
            Self::NoActiveNode { .. } => "NoActiveNode",
            Self::DrCopy { .. } => "DrCopyFailed",
        }
    }
}
