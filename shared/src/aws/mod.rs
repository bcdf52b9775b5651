//! Thin adapters from the ports to the AWS SDK: one call, map the types, map the error.
//! The SDK already retries throttling and 5xx, so nothing here loops.

mod backup_trigger;
mod capacity;
mod catalog;
mod cloudwatch;
mod dynamo_locks;
mod fleet;
mod iam_login;
mod lifecycle_actions;
mod route53;
mod s3_store;
mod s3_upload;
mod sns;
mod ssm;
mod state_records;

use crate::ids::ClusterName;
pub use backup_trigger::LambdaBackupTrigger;
pub use capacity::AsgCapacity;
pub use catalog::DynamoCatalog;
pub use cloudwatch::CloudWatchMetrics;
pub use dynamo_locks::DynamoLocks;
pub use fleet::AsgFleet;
pub use iam_login::StsCallerIdentity;
pub use lifecycle_actions::AsgLifecycleActions;
pub use route53::Route53Records;
pub use s3_store::S3SnapshotStore;
pub use sns::SnsNotifier;
pub use ssm::SsmParameters;
pub use state_records::DynamoStateRecords;

/// The SDK configuration for this process: region, credentials and `AWS_ENDPOINT_URL`
/// from the standard sources. Load it once per cold start.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// `sdk` with its region replaced by `region`: for a resource of the other region (the DR
/// region's, or the primary's from the DR region).
pub(crate) fn in_region(sdk: &aws_config::SdkConfig, region: &str) -> aws_config::SdkConfig {
    sdk.to_builder()
        .region(aws_config::Region::new(region.to_owned()))
        .build()
}

/// A function's own Vault login: its AppRole credentials from SSM, or its AWS identity
/// signed for Vault's aws auth method.
pub fn vault_login(
    sdk: &aws_config::SdkConfig,
    auth: &crate::config::AuthSettings,
) -> crate::cluster::auth::VaultLogin<SsmParameters> {
    let login = crate::cluster::auth::VaultLogin::new(auth.clone(), SsmParameters::from_sdk(sdk));
    match StsCallerIdentity::from_sdk(sdk, auth) {
        Some(identity) => login.with_identity(std::sync::Arc::new(identity)),
        None => login,
    }
}

/// An SDK error with its whole context (service code, message, request id) in one line,
/// and what kind of failure its error code says it is: a denied call is permanent
/// everywhere, whatever the function.
pub(crate) fn describe<E>(error: E) -> crate::errors::ServiceFailure
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use crate::errors::FailureKind;
    let kind = match error.code() {
        Some(code) if DENIED_CODES.contains(&code) => FailureKind::Denied,
        Some(code) if NOT_FOUND_CODES.contains(&code) => FailureKind::NotFound,
        _ => FailureKind::Unavailable,
    };
    crate::errors::ServiceFailure {
        kind,
        detail: aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
    }
}

/// An error that carries no service error code (a request that could not be built, a
/// body cut mid-way): a failure a retry may cure, with its whole context.
pub(crate) fn describe_any<E: std::error::Error>(error: E) -> crate::errors::ServiceFailure {
    crate::errors::ServiceFailure::unavailable(
        aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
    )
}

/// Error codes by which AWS services say the caller may not do this.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "KMSAccessDeniedException",
    "AccessDeniedException.KMS",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
];

/// Error codes by which AWS services say the resource named does not exist.
const NOT_FOUND_CODES: &[&str] = &["ResourceNotFoundException", "NoSuchBucket"];

impl AsgFleet {
    /// The fleet, with clients built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, settings: crate::config::ClusterSettings) -> Self {
        Self::new(
            aws_sdk_autoscaling::Client::new(sdk),
            aws_sdk_ec2::Client::new(sdk),
            settings,
        )
    }
}

impl AsgCapacity {
    /// The size of `group` in `sdk`'s region.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, group: String) -> Self {
        Self::new(aws_sdk_autoscaling::Client::new(sdk), group)
    }

    /// The size of `group` in `region` (the primary's group, from the DR region).
    pub fn in_region(sdk: &aws_config::SdkConfig, region: &str, group: String) -> Self {
        Self::from_sdk(&in_region(sdk, region), group)
    }
}

impl SsmParameters {
    /// Parameters read with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_ssm::Client::new(sdk))
    }

    /// SSM in `region` (the DR region's), whatever region `sdk` is in.
    pub fn in_region(sdk: &aws_config::SdkConfig, region: &str) -> Self {
        let regional = in_region(sdk, region);
        Self::from_sdk(&regional)
    }
}

impl CloudWatchMetrics {
    /// Metrics into `namespace`, with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, namespace: String) -> Self {
        Self::new(aws_sdk_cloudwatch::Client::new(sdk), namespace)
    }
}

impl DynamoCatalog {
    /// The catalog in `table`, with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table)
    }

    /// The catalog in `table` of `region` (the DR region's), whatever region `sdk` is in.
    pub fn in_region(sdk: &aws_config::SdkConfig, region: &str, table: String) -> Self {
        let regional = in_region(sdk, region);
        Self::from_sdk(&regional, table)
    }
}

impl DynamoLocks {
    /// Locks in `table` for `cluster`, with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String, cluster: ClusterName) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table, cluster)
    }
}

impl DynamoStateRecords {
    /// Records in `table` for `cluster`, with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String, cluster: ClusterName) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk), table, cluster)
    }

    /// Records in `table` of `region` (the DR region's, for a primary's failover
    /// record) for `cluster`.
    pub fn in_region(
        sdk: &aws_config::SdkConfig,
        region: &str,
        table: String,
        cluster: ClusterName,
    ) -> Self {
        Self::from_sdk(&in_region(sdk, region), table, cluster)
    }
}

impl AsgLifecycleActions {
    /// Completes and heartbeats lifecycle actions with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_autoscaling::Client::new(sdk))
    }
}

impl S3SnapshotStore {
    /// The bucket in `region` (another region's, for DR copies), with a client built
    /// from `sdk` for that region.
    pub fn in_region(
        sdk: &aws_config::SdkConfig,
        region: &str,
        bucket: String,
        kms_key: Option<String>,
    ) -> Self {
        let regional = in_region(sdk, region);
        Self::from_sdk(&regional, bucket, kms_key)
    }
}

impl StsCallerIdentity {
    /// Signs with the credentials `sdk` resolves (the Lambda's execution role); `None`
    /// when `sdk` has no credentials provider.
    pub fn from_sdk(
        sdk: &aws_config::SdkConfig,
        auth: &crate::config::AuthSettings,
    ) -> Option<Self> {
        let region = match auth {
            crate::config::AuthSettings::Aws { sts_region, .. } => sts_region.clone(),
            crate::config::AuthSettings::AppRole { .. } => None,
        };
        sdk.credentials_provider()
            .map(|credentials| Self::new(credentials, region))
    }
}
