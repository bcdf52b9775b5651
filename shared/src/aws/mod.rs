//! Thin adapters from the ports to the AWS SDK: one call, map the types, map the error.
//! The SDK already retries throttling and 5xx, so nothing here loops.

mod catalog;
mod cloudwatch;
mod dynamo_locks;
mod fleet;
mod iam_login;
mod lifecycle_actions;
mod s3_store;
mod ssm;
mod state_records;

pub use catalog::DynamoCatalog;
pub use cloudwatch::CloudWatchMetrics;
pub use dynamo_locks::DynamoLocks;
pub use fleet::AsgFleet;
pub use iam_login::StsCallerIdentity;
pub use lifecycle_actions::AsgLifecycleActions;
pub use s3_store::S3SnapshotStore;
pub use ssm::SsmParameters;
pub use state_records::DynamoStateRecords;

/// The SDK configuration for this process: region, credentials and `AWS_ENDPOINT_URL`
/// from the standard sources. Load it once per cold start.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An SDK error with its whole context (service code, message, request id) in one line.
pub(crate) fn describe<E: std::error::Error>(error: E) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(error).to_string()
}

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

impl SsmParameters {
    /// Parameters read with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_ssm::Client::new(sdk))
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

/// node-lifecycle with every port on AWS, built once per cold start. Fails only if the
/// Vault client cannot be built (the CA bundle).
pub fn node_lifecycle(
    sdk: &aws_config::SdkConfig,
    config: crate::lifecycle::LifecycleConfig,
) -> Result<
    crate::lifecycle::NodeLifecycle<crate::vault::VaultClient, SsmParameters>,
    crate::vault::VaultError,
> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let cluster = config.cluster.cluster.clone();
    // node-lifecycle logs in with the AppRole its bootstrap makes (its configuration
    // refuses aws auth), so it needs no AWS identity for Vault.
    let login =
        crate::cluster::auth::VaultLogin::new(config.auth.clone(), SsmParameters::from_sdk(sdk));
    Ok(crate::lifecycle::NodeLifecycle {
        vault: crate::vault::VaultClient::new(&config.vault)?,
        parameters: SsmParameters::from_sdk(sdk),
        login,
        locks: Box::new(DynamoLocks::new(
            dynamodb.clone(),
            config.table.clone(),
            cluster.clone(),
        )),
        records: Box::new(DynamoStateRecords::new(dynamodb, config.table, cluster)),
        actions: Box::new(AsgLifecycleActions::new(aws_sdk_autoscaling::Client::new(
            sdk,
        ))),
        metrics: Box::new(CloudWatchMetrics::from_sdk(sdk, config.metrics_namespace)),
        fleet: Box::new(AsgFleet::from_sdk(sdk, config.cluster)),
        settings: config.lifecycle,
    })
}

/// snapshot-backup with every port on AWS, built once per cold start. The DR store's
/// client speaks to `DR_REGION`.
pub fn snapshot_backup(
    sdk: &aws_config::SdkConfig,
    config: crate::snapshots::backup::BackupConfig,
) -> Result<
    crate::snapshots::backup::SnapshotBackup<crate::vault::VaultClient, SsmParameters>,
    crate::vault::VaultError,
> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let mut login =
        crate::cluster::auth::VaultLogin::new(config.auth.clone(), SsmParameters::from_sdk(sdk));
    if let Some(identity) = StsCallerIdentity::from_sdk(sdk, &config.auth) {
        login = login.with_identity(std::sync::Arc::new(identity));
    }
    let dr = config.dr.as_ref().map(|dr| {
        let regional = sdk
            .to_builder()
            .region(aws_config::Region::new(dr.region.clone()))
            .build();
        Box::new(S3SnapshotStore::from_sdk(
            &regional,
            dr.bucket.clone(),
            dr.kms_key.clone(),
        )) as Box<dyn crate::snapshots::store::SnapshotObjects>
    });
    Ok(crate::snapshots::backup::SnapshotBackup {
        vault: crate::vault::VaultClient::new(&config.vault)?,
        login,
        locks: Box::new(DynamoLocks::new(
            dynamodb.clone(),
            config.table.clone(),
            config.cluster.cluster.clone(),
        )),
        catalog: Box::new(DynamoCatalog::new(dynamodb, config.table)),
        store: Box::new(S3SnapshotStore::from_sdk(
            sdk,
            config.bucket,
            config.kms_key,
        )),
        dr,
        metrics: Box::new(CloudWatchMetrics::from_sdk(sdk, config.metrics_namespace)),
        fleet: Box::new(AsgFleet::from_sdk(sdk, config.cluster)),
        settings: config.backup,
    })
}

/// snapshot-restore with every port on AWS, built once per cold start.
pub fn snapshot_restore(
    sdk: &aws_config::SdkConfig,
    config: crate::snapshots::restore::RestoreConfig,
) -> Result<
    crate::snapshots::restore::SnapshotRestore<crate::vault::VaultClient, SsmParameters>,
    crate::vault::VaultError,
> {
    Ok(crate::snapshots::restore::SnapshotRestore {
        backup: snapshot_backup(sdk, config.backup)?,
        parameters: SsmParameters::from_sdk(sdk),
        settings: config.restore,
    })
}
