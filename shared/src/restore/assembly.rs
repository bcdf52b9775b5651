//! snapshot-restore on AWS: every port built from the SDK configuration, once per cold
//! start.

use super::{RestoreConfig, SnapshotRestore};
use crate::{
    aws::{
        sdk_config, vault_login, AsgFleet, DynamoCatalog, DynamoLocks, S3SnapshotStore,
        SsmParameters,
    },
    lambda::StartupError,
    vault::{VaultClient, VaultError},
};

/// snapshot-restore as Lambda runs it.
pub type DeployedRestore = SnapshotRestore<VaultClient, SsmParameters>;

/// Reads the environment and builds snapshot-restore; the error names the first bad
/// variable.
pub async fn assemble() -> Result<DeployedRestore, StartupError> {
    let config = RestoreConfig::from_env()?;
    let sdk = sdk_config().await;
    Ok(from_sdk(&sdk, config)?)
}

/// snapshot-restore with every port on AWS. Fails only if the Vault client cannot be
/// built (the CA bundle).
pub fn from_sdk(
    sdk: &aws_config::SdkConfig,
    config: RestoreConfig,
) -> Result<DeployedRestore, VaultError> {
    let backup = config.backup;
    Ok(SnapshotRestore {
        vault: VaultClient::new(&backup.vault)?,
        login: vault_login(sdk, &backup.auth),
        locks: Box::new(DynamoLocks::from_sdk(
            sdk,
            backup.table.clone(),
            backup.cluster.cluster.clone(),
        )),
        catalog: Box::new(DynamoCatalog::from_sdk(sdk, backup.table)),
        store: Box::new(S3SnapshotStore::from_sdk(
            sdk,
            backup.bucket,
            backup.kms_key,
        )),
        fleet: Box::new(AsgFleet::from_sdk(sdk, backup.cluster)),
        parameters: SsmParameters::from_sdk(sdk),
        snapshots: backup.backup,
        settings: config.restore,
    })
}
