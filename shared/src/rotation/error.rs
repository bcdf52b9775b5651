//! Why a rotation failed, and what the failure means for a retry.

use crate::{
    cluster::{auth::LoginError, locks::LockError, node::VaultError, ports::FleetError},
    errors::Classify,
    events::{EventError, RotationTarget},
};

/// Why a rotation failed. Nothing here holds a token, share or secret ID.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The request is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// A target this version of the function does not rotate yet; nothing was changed.
    #[error("credential-rotation does not rotate {target} in this version (it rotates: keyring); nothing was changed")]
    NotAvailable {
        /// The target asked for.
        target: &'static str,
    },
    /// The group could not be listed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The lock could not be claimed or released.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// This function could not log in to Vault.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// No node answered as active.
    #[error("no node of the cluster is active (asked {asked} nodes); nothing was rotated")]
    NoActiveNode {
        /// How many nodes were asked.
        asked: usize,
    },
    /// Vault refused or did not answer a step.
    #[error("{step}")]
    Vault {
        /// The step, in words.
        step: &'static str,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
}

impl RotationError {
    /// A target not rotated by this version.
    pub fn not_available(target: RotationTarget) -> Self {
        Self::NotAvailable {
            target: target.as_str(),
        }
    }
}

impl Classify for RotationError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Event(e) => e.retry_helps(),
            Self::Fleet(e) => e.retry_helps(),
            Self::Lock(e) => e.retry_helps(),
            Self::Login(e) => e.retry_helps(),
            Self::Vault { source, .. } => source.retry_helps(),
            Self::NotAvailable { .. } => false,
            Self::NoActiveNode { .. } => true,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Event(e) => e.name(),
            Self::Fleet(e) => e.name(),
            Self::Lock(e) => e.name(),
            Self::Login(e) => e.name(),
            Self::Vault { source, .. } => source.name(),
            Self::NotAvailable { .. } => "RotationNotAvailable",
            Self::NoActiveNode { .. } => "NoActiveNode",
        }
    }
}
