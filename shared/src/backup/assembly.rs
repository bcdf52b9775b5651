//! snapshot-backup on AWS: every port built from the SDK configuration, once per cold start.

use super::{BackupConfig, SnapshotBackup};
use crate::{
    aws::{
        sdk_config, vault_login, AsgFleet, CloudWatchMetrics, DynamoCatalog, DynamoLocks,
        DynamoStateRecords, S3SnapshotStore, SsmParameters,
    },
    lambda::StartupError,
    snapshots::store::SnapshotObjects,
    vault::{VaultClient, VaultError},
};

/// snapshot-backup as Lambda runs it.
pub type DeployedBackup = SnapshotBackup<VaultClient, SsmParameters>;

/// Reads the environment and builds snapshot-backup; the error names the first bad
/// variable.
pub async fn assemble() -> Result<DeployedBackup, StartupError> {
    let config = BackupConfig::from_env("snapshot-backup")?;
    let sdk = sdk_config().await;
    Ok(from_sdk(&sdk, config)?)
}

/// The DR region's bucket, with a client that speaks to `DR_REGION`.
pub(crate) fn dr_store(
    sdk: &aws_config::SdkConfig,
    config: &BackupConfig,
) -> Option<Box<dyn SnapshotObjects>> {
    config.dr.as_ref().map(|dr| {
        Box::new(S3SnapshotStore::in_region(
            sdk,
            &dr.region,
            dr.bucket.clone(),
            dr.kms_key.clone(),
        )) as Box<dyn SnapshotObjects>
    })
}

/// snapshot-backup with every port on AWS. Fails only if the Vault client cannot be
/// built (the CA bundle).
pub fn from_sdk(
    sdk: &aws_config::SdkConfig,
    config: BackupConfig,
) -> Result<DeployedBackup, VaultError> {
    Ok(SnapshotBackup {
        vault: VaultClient::new(&config.vault)?,
        login: vault_login(sdk, &config.auth),
        locks: Box::new(DynamoLocks::from_sdk(
            sdk,
            config.table.clone(),
            config.cluster.cluster.clone(),
        )),
        dr: dr_store(sdk, &config),
        dr_catalog: config.dr.as_ref().and_then(|dr| {
            dr.table.clone().map(|table| {
                Box::new(DynamoCatalog::in_region(sdk, &dr.region, table))
                    as Box<dyn crate::snapshots::catalog::Catalog>
            })
        }),
        fence: config.dr.as_ref().and_then(|dr| {
            dr.table.clone().map(|table| {
                Box::new(DynamoStateRecords::in_region(
                    sdk,
                    &dr.region,
                    table,
                    config.cluster.cluster.clone(),
                )) as Box<dyn crate::failover::record::FailoverRecords>
            })
        }),
        catalog: Box::new(DynamoCatalog::from_sdk(sdk, config.table)),
        store: Box::new(S3SnapshotStore::from_sdk(
            sdk,
            config.bucket,
            config.kms_key,
        )),
        metrics: Box::new(CloudWatchMetrics::from_sdk(sdk, config.metrics_namespace)),
        fleet: Box::new(AsgFleet::from_sdk(sdk, config.cluster)),
        settings: config.backup,
    })
}
