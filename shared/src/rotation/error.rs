//! Why a rotation failed, and what the failure means for a retry.

use crate::{
    cluster::{
        auth::LoginError,
        locks::LockError,
        node::VaultError,
        ports::{FleetError, ParameterError},
    },
    errors::Classify,
    events::EventError,
    keys::{Generation, SharesMissing},
};

/// Why a rotation failed. Nothing here holds a token, share or secret ID.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The request is not for this function or is malformed.
    #[error(transparent)]
    Event(#[from] EventError),
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
    /// SSM failed or refused.
    #[error(transparent)]
    Parameter(#[from] ParameterError),
    /// The shares to rotate are not this cluster's kind of share.
    #[error("{target} cannot be rotated: the cluster's seal is {seal} (rotate {instead}); nothing was changed")]
    SealMismatch {
        /// The target asked for.
        target: &'static str,
        /// The seal the active node reports.
        seal: String,
        /// The target that fits this seal.
        instead: &'static str,
    },
    /// Fewer shares of a generation are stored than the rotation needs.
    #[error("cannot read the shares of generation {generation}; nothing was rotated")]
    SharesMissing {
        /// The generation.
        generation: Generation,
        /// What is missing.
        #[source]
        source: SharesMissing,
    },
    /// The stored shares of the generation in force did not reach the threshold.
    #[error("the shares of generation {generation} stored under {folder} do not open the seal: the stored generation is not the one in force; nothing was rotated")]
    SharesRejected {
        /// The generation.
        generation: Generation,
        /// Where they are stored.
        folder: String,
    },
    /// The new generation's name exists already in SSM (a value this run did not write).
    #[error("{name} exists already and was not written by this rotation; the rotation was cancelled, the shares in force are unchanged")]
    GenerationConflict {
        /// The parameter.
        name: String,
    },
    /// The server did not take the new shares back.
    #[error("the server refused the new shares of generation {generation} at verification; the rotation was cancelled and the generation discarded, the shares in force are unchanged")]
    VerificationRefused {
        /// The generation.
        generation: Generation,
    },
    /// A new secret ID did not log in: it was not stored, the stored one is unchanged.
    #[error("a new secret ID for {function} was refused at login; it was not stored and the function's stored secret ID is unchanged")]
    SecretIdRefused {
        /// The function.
        function: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// A `retiring` record this function did not write in its format.
    #[error("{name} does not hold an accessor and a time; delete it once the secret ID it names is destroyed, then retry")]
    RetiringUnreadable {
        /// The parameter.
        name: String,
    },
    /// `database-root` with no `DATABASE_CONNECTIONS`.
    #[error(
        "database-root has nothing to rotate: DATABASE_CONNECTIONS is not set; nothing was changed"
    )]
    NoDatabaseConnections,
    /// A configured connection does not exist.
    #[error("the database connection {connection} does not exist; nothing was rotated")]
    NoSuchDatabaseConnection {
        /// `<mount>/<connection>`.
        connection: String,
    },
    /// The connection's admin user is also a static role's user.
    #[error("the database connection {connection} connects as {admin}, which is also the user of the static role {role}: rotating its root credentials would take the password from the role (or the role's rotation from the engine); give the engine a user of its own; nothing was rotated")]
    DatabaseAdminIsStaticRole {
        /// `<mount>/<connection>`.
        connection: String,
        /// The user.
        admin: String,
        /// The static role.
        role: String,
    },
    /// After `rotate-root`, the engine could not issue a dynamic credential.
    #[error("the root credentials of {connection} were rotated, and the engine then failed to issue a credential of role {role}: check the connection (only the engine knows the new password)")]
    DatabaseProofFailed {
        /// `<mount>/<connection>`.
        connection: String,
        /// The role.
        role: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The server has no root key rotation of its own (HashiCorp Vault).
    #[error("this server has no root key rotation (sys/rotate/root is OpenBao's; on Vault the root key changes only with a rekey): ask for unseal-shares instead; nothing was changed")]
    RootKeyNotSupported,
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

impl Classify for RotationError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Event(e) => e.retry_helps(),
            Self::Fleet(e) => e.retry_helps(),
            Self::Lock(e) => e.retry_helps(),
            Self::Login(e) => e.retry_helps(),
            Self::Vault { source, .. } => source.retry_helps(),
            Self::Parameter(e) => e.retry_helps(),
            Self::SharesMissing { source, .. } => match source {
                SharesMissing::Parameter(e) => e.retry_helps(),
                SharesMissing::Missing { .. } => false,
            },
            Self::VerificationRefused { .. } => true,
            Self::SecretIdRefused { .. }
            | Self::RetiringUnreadable { .. }
            | Self::RootKeyNotSupported
            | Self::NoDatabaseConnections
            | Self::NoSuchDatabaseConnection { .. }
            | Self::DatabaseAdminIsStaticRole { .. } => false,
            Self::DatabaseProofFailed { source, .. } => source.retry_helps(),
            Self::SealMismatch { .. }
            | Self::SharesRejected { .. }
            | Self::GenerationConflict { .. } => false,
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
            Self::Parameter(e) => e.name(),
            Self::SharesMissing { source, .. } => match source {
                SharesMissing::Parameter(e) => e.name(),
                SharesMissing::Missing { .. } => "MissingShares",
            },
            Self::SealMismatch { .. } => "SealMismatch",
            Self::SharesRejected { .. } => "SharesRejected",
            Self::GenerationConflict { .. } => "GenerationConflict",
            Self::VerificationRefused { .. } => "VerificationRefused",
            Self::SecretIdRefused { .. } => "SecretIdRefused",
            Self::RetiringUnreadable { .. } => "RetiringUnreadable",
            Self::RootKeyNotSupported => "RootKeyNotSupported",
            Self::NoDatabaseConnections => "NoDatabaseConnections",
            Self::NoSuchDatabaseConnection { .. } => "NoSuchDatabaseConnection",
            Self::DatabaseAdminIsStaticRole { .. } => "DatabaseAdminIsStaticRole",
            Self::DatabaseProofFailed { .. } => "DatabaseProofFailed",
            Self::NoActiveNode { .. } => "NoActiveNode",
        }
    }
}
