//! Locks: one run at a time for a one-shot or exclusive step (init, backup, failover).
//!
//! A lock is claimed by a conditional write with an owner and an expiry, so a run that
//! died holding it blocks the next one only until the expiry; a lock held by someone else
//! is an outcome ([`Claim::HeldBy`]), not an error; and only the owner can release it.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This owner holds the lock until `expires_at`.
    Acquired {
        /// When the lock lapses if not released.
        expires_at: SystemTime,
    },
    /// Another owner holds it.
    HeldBy {
        /// Who.
        owner: String,
        /// Until when.
        expires_at: SystemTime,
    },
}

/// The result of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The lock was ours and is free now.
    Released,
    /// The lock was not ours (it lapsed and another run took it, or never was): untouched.
    NotOwner,
}

/// Why the lock store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} lock {name} in table {table}: {reason}")]
pub struct LockError {
    /// `claim` or `release`.
    pub action: &'static str,
    /// The lock.
    pub name: String,
    /// The table.
    pub table: String,
    /// The SDK's error.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// Named locks with owners and expiries.
#[async_trait]
pub trait Locks: Send + Sync {
    /// Claims `name` for `owner` for `ttl`, unless another owner holds it and it has not
    /// expired. Claiming a lock one already holds extends it.
    async fn claim(&self, name: &str, owner: &str, ttl: Duration) -> Result<Claim, LockError>;
    /// Releases `name` if `owner` holds it.
    async fn release(&self, name: &str, owner: &str) -> Result<Released, LockError>;
}

impl crate::errors::Classify for LockError {
    fn retry_helps(&self) -> bool {
        self.reason.retry_helps()
    }
    fn name(&self) -> &'static str {
        self.reason.name("LockUnavailable")
    }
}
