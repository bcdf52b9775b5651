//! The ports the cluster logic talks through, in domain words. The adapters behind them
//! are `crate::aws` (Auto Scaling, EC2, SSM) and `crate::vault`; the fakes are in
//! `crate::testing`.

use async_trait::async_trait;

pub use crate::vault::IamLoginRequest;
use crate::{
    ids::{InstanceId, NodeAddr},
    secret::Secret,
};

/// An instance the Auto Scaling group counts as a member, with its node's API address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FleetNode {
    /// The EC2 instance, which by convention is also the node's Raft `node_id`.
    pub instance: InstanceId,
    /// Where its API answers: the private IP EC2 reports, with the scheme and port.
    pub addr: NodeAddr,
}

/// Why the fleet could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The Auto Scaling or EC2 API failed (the SDK already retried).
    #[error("cannot list the instances of auto scaling group {group}: {reason}")]
    Unavailable {
        /// The group.
        group: String,
        /// The SDK's error, with its context.
        #[source]
        reason: crate::errors::ServiceFailure,
    },
    /// The group does not exist: a configuration error, not a cluster failure.
    #[error("auto scaling group {group} does not exist; check ASG_NAME")]
    NoSuchGroup {
        /// The group.
        group: String,
    },
    /// EC2 reports no private IP for an instance, so its node cannot be addressed.
    #[error(
        "instance {instance} has no private IP in EC2, so its node cannot be reached; \
         nothing was sent to it"
    )]
    NoAddress {
        /// The instance.
        instance: InstanceId,
    },
}

/// The cluster's Auto Scaling group.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Instances the group counts as InService now, sorted by instance id.
    async fn in_service(&self) -> Result<Vec<FleetNode>, FleetError>;

    /// Instances that are or are becoming members: InService and every Pending state
    /// (a launching node waits in Pending:Wait until its lifecycle action completes).
    /// Terminating instances are not members.
    async fn members(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.in_service().await
    }

    /// Every instance of the group whatever its lifecycle state, leaving ones
    /// (Terminating:Wait) included: a node that still holds the lead while its instance
    /// leaves is found here.
    async fn instances(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.members().await
    }

    /// One instance's node address, whatever its state (a terminating node included);
    /// `None` when EC2 no longer knows the instance.
    async fn node(&self, instance: &InstanceId) -> Result<Option<FleetNode>, FleetError>;

    /// The instance's lifecycle state in the group or its warm pool, as Auto Scaling
    /// names it (`Pending:Wait`, `Warmed:Pending:Wait`, `InService`, `Terminating:Wait`
    /// ...); `None` when neither holds the instance.
    async fn lifecycle_state(&self, instance: &InstanceId) -> Result<Option<String>, FleetError>;
}

/// Why a parameter could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParameterError {
    /// It does not exist.
    #[error("SSM parameter {name} does not exist")]
    Missing {
        /// The parameter's name.
        name: String,
    },
    /// SSM refused or failed (access denied, KMS, throttling after retries).
    #[error("cannot read SSM parameter {name}: {reason}")]
    Unavailable {
        /// The parameter's name.
        name: String,
        /// The SDK's error (it never holds the value).
        #[source]
        reason: crate::errors::ServiceFailure,
    },
}

/// What became of a write that must never replace a stored secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written now.
    Written,
    /// A parameter of that name exists already; it was left as it was.
    AlreadyExists,
}

/// Where secrets are kept (SSM Parameter Store, SecureString).
#[async_trait]
pub trait ParameterStore: Send + Sync {
    /// The decrypted value of one parameter.
    async fn secret(&self, name: &str) -> Result<Secret, ParameterError>;
    /// Writes a SecureString under `kms_key`, unless the name exists: a stored share or
    /// credential is never overwritten by a re-run.
    async fn put_new_secret(
        &self,
        name: &str,
        value: &Secret,
        kms_key: &str,
    ) -> Result<Stored, ParameterError>;
    /// Writes a SecureString under `kms_key`, replacing the value if the name exists:
    /// only for a credential whose new value was proven to work first (a secret ID).
    async fn replace_secret(
        &self,
        name: &str,
        value: &Secret,
        kms_key: &str,
    ) -> Result<(), ParameterError>;
    /// Deletes a parameter; one that does not exist is not an error.
    async fn delete(&self, name: &str) -> Result<(), ParameterError>;
    /// Whether a parameter exists, its value left unread (SSM: not decrypted).
    async fn exists(&self, name: &str) -> Result<bool, ParameterError> {
        match self.secret(name).await {
            Ok(_) => Ok(true),
            Err(ParameterError::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Why the function's AWS identity could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign sts:GetCallerIdentity with this function's AWS credentials: {reason}")]
pub struct IdentityError {
    /// The credentials provider's or signer's error (it never holds a key).
    pub reason: String,
}

/// Signs the request that proves this function's AWS identity to Vault.
#[async_trait]
pub trait CallerIdentitySigner: Send + Sync {
    /// A fresh signed request; `server_id` is signed in as `X-Vault-AWS-IAM-Server-ID`.
    async fn sign_caller_identity(
        &self,
        server_id: Option<&str>,
    ) -> Result<IamLoginRequest, IdentityError>;
}

impl crate::errors::Classify for FleetError {
    fn retry_helps(&self) -> bool {
        matches!(self, Self::Unavailable { reason, .. } if reason.retry_helps())
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Unavailable { reason, .. } => reason.name("FleetUnavailable"),
            Self::NoSuchGroup { .. } => "NoSuchGroup",
            Self::NoAddress { .. } => "NoNodeAddress",
        }
    }
}

impl crate::errors::Classify for ParameterError {
    fn retry_helps(&self) -> bool {
        matches!(self, Self::Unavailable { reason, .. } if reason.retry_helps())
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "MissingParameter",
            Self::Unavailable { reason, .. } => reason.name("ParameterStoreUnavailable"),
        }
    }
}

/// A backup could not be asked for.
#[derive(Debug, thiserror::Error)]
#[error("cannot ask {function} for a backup: {reason}")]
pub struct TriggerError {
    /// The backup function.
    pub function: String,
    /// The SDK's error.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// Asks the backup path for a snapshot now (snapshot-backup, invoked without waiting).
#[async_trait]
pub trait BackupTrigger: Send + Sync {
    /// Asks for a snapshot recorded with `reason`; returns once the request is accepted.
    async fn request_backup(&self, reason: &str) -> Result<(), TriggerError>;
}
