//! Why a failover run failed or refused, and what the failure means for a retry.

use crate::{
    cluster::{
        dr_ports::{CapacityError, DnsError, NotifyError},
        locks::LockError,
        ports::{FleetError, ParameterError},
    },
    errors::Classify,
    events::EventError,
    keys::Generation,
    lifecycle::records::RecordError,
    snapshots::catalog::CatalogError,
};

use super::record::Phase;

/// Why dr-failover failed. Nothing here holds a share or token.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// The event is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
    /// An alarm this function is not configured to act on.
    #[error("alarm {name} is not one of FAILOVER_ALARMS ({configured}); nothing was changed")]
    UnknownAlarm {
        /// The alarm's name.
        name: String,
        /// The configured names.
        configured: String,
    },
    /// The primary answered healthy: no failover without `force`.
    #[error("the primary cluster answered healthy at {addr} ({answer}); nothing was changed (an operator may fail over with \"force\": true)")]
    PrimaryHealthy {
        /// Where it was probed.
        addr: String,
        /// What it answered.
        answer: String,
    },
    /// The primary answered with a certificate the CA bundle does not trust: whether it is
    /// down cannot be told.
    #[error("the primary at {addr} answered with a certificate this function does not trust ({answer}); whether it is down cannot be told, nothing was changed: add the primary's CA to VAULT_CACERT_PEM (an operator may fail over with \"force\": true)")]
    PrimaryUnverifiable {
        /// Where it was probed.
        addr: String,
        /// What the probe met.
        answer: String,
    },
    /// No DR copy of the primary's snapshots is catalogued in the DR region, or every one
    /// failed its drill.
    #[error("no usable DR copy of cluster {primary}'s snapshots is catalogued in the DR region ({catalogued} catalogued, {failed} failed their drill; with FAILOVER_REQUIRE_PROVEN only proven ones count); nothing was changed")]
    NoSnapshot {
        /// The primary cluster.
        primary: String,
        /// Entries found.
        catalogued: usize,
        /// Of those, failed drills.
        failed: usize,
    },
    /// The DR region's SSM holds fewer of the primary's shares of the snapshot's
    /// generation than the standby needs.
    #[error("the DR region holds {found} of the primary's shares of generation {generation} under {folder}, {needed} are needed; nothing was changed (node-lifecycle's reconcile in the primary region copies them)")]
    SharesMissing {
        /// The generation.
        generation: Generation,
        /// Where they were looked for.
        folder: String,
        /// How many exist.
        found: usize,
        /// How many the standby needs.
        needed: usize,
    },
    /// The DR region holds the primary's recovery shares, not unseal shares (the primary
    /// unseals itself), and the standby unseals with Shamir shares: its seal cannot open
    /// the primary's root key.
    #[error("the primary uses auto-unseal (the DR region holds its recovery shares under {folder}, no unseal shares) and the standby uses Shamir shares: a restored snapshot of the primary unseals only in a standby whose seal opens the primary's root key (in AWS: the primary's KMS key's replica in this region); nothing was changed: give the standby that seal (see the failover runbook)")]
    AutoUnsealPrimary {
        /// Where the recovery shares were found.
        folder: String,
    },
    /// A phase failed; the record names it and whether the primary was unfenced.
    #[error("failover phase {phase} failed: {reason}")]
    Phase {
        /// The phase.
        phase: Phase,
        /// The error chain.
        reason: String,
        /// Whether a retry can help.
        retry_helps: bool,
    },
    /// The state table failed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The DR catalog could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The failover lock could not be claimed or released.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The standby group could not be listed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// SSM failed.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// An Auto Scaling group could not be read or resized.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// The DNS record could not be read or changed.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The notification could not be sent.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A failback was asked for with no completed failover recorded.
    #[error("there is nothing to fail back from: {state}; nothing was changed")]
    NoFailoverToReturnFrom {
        /// What the record says.
        state: String,
    },
    /// The primary has no initialised node to restore into, and its group was not emptied
    /// by the fence (or some nodes do not answer).
    #[error("the primary has no initialised node ({asked} in its group asked, some without an answer, or its group was not emptied by this failover's fence); nothing was changed: ask again once its nodes answer; if they are gone for good, ask with \"rebuild\": true once every member answers uninitialised (see the failover runbook)")]
    PrimaryNotServing {
        /// How many members of the primary's group were asked.
        asked: usize,
    },
    /// A failback phase failed; the record names it.
    #[error("failback phase {phase} failed: {reason}")]
    FailbackPhase {
        /// The phase.
        phase: String,
        /// The error chain.
        reason: String,
        /// Whether a retry can help.
        retry_helps: bool,
    },
}

impl Classify for FailoverError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Event(e) => e.retry_helps(),
            Self::Record(e) => e.retry_helps(),
            Self::Catalog(e) => e.retry_helps(),
            Self::Lock(e) => e.retry_helps(),
            Self::Fleet(e) => e.retry_helps(),
            Self::Parameter(e) => e.retry_helps(),
            Self::Capacity(e) => e.retry_helps(),
            Self::Dns(e) => e.retry_helps(),
            Self::Notify(e) => e.retry_helps(),
            Self::Phase { retry_helps, .. } | Self::FailbackPhase { retry_helps, .. } => {
                *retry_helps
            }
            Self::PrimaryNotServing { .. } => true,
            Self::UnknownAlarm { .. }
            | Self::PrimaryHealthy { .. }
            | Self::PrimaryUnverifiable { .. }
            | Self::NoSnapshot { .. }
            | Self::SharesMissing { .. }
            | Self::AutoUnsealPrimary { .. }
            | Self::NoFailoverToReturnFrom { .. } => false,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Event(e) => e.name(),
            Self::Record(e) => e.name(),
            Self::Catalog(e) => e.name(),
            Self::Lock(e) => e.name(),
            Self::Fleet(e) => e.name(),
            Self::Parameter(e) => e.name(),
            Self::Capacity(e) => e.name(),
            Self::Dns(e) => e.name(),
            Self::Notify(e) => e.name(),
            Self::UnknownAlarm { .. } => "UnknownAlarm",
            Self::PrimaryHealthy { .. } => "PrimaryHealthy",
            Self::PrimaryUnverifiable { .. } => "PrimaryUnverifiable",
            Self::NoSnapshot { .. } => "NoSnapshot",
            Self::SharesMissing { .. } => "FailoverSharesMissing",
            Self::AutoUnsealPrimary { .. } => "AutoUnsealPrimary",
            Self::Phase { .. } => "FailoverPhaseFailed",
            Self::NoFailoverToReturnFrom { .. } => "NoFailoverToReturnFrom",
            Self::PrimaryNotServing { .. } => "PrimaryNotServing",
            Self::FailbackPhase { .. } => "FailbackPhaseFailed",
        }
    }
}
