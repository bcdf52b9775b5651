//! credential-rotation on AWS: every port built from the SDK configuration, once per cold
//! start.

use super::{CredentialRotation, RotationConfig, ShareStore};
use crate::{
    aws::{
        sdk_config, vault_login, AsgFleet, DynamoLocks, DynamoStateRecords, LambdaBackupTrigger,
        SsmParameters,
    },
    keys::{DrKeys, KeyLayout},
    lambda::StartupError,
    vault::{VaultClient, VaultError},
};

/// credential-rotation as Lambda runs it.
pub type DeployedRotation = CredentialRotation<AsgFleet, VaultClient, SsmParameters>;

/// Reads the environment and builds credential-rotation; the error names the first bad
/// variable.
pub async fn assemble() -> Result<DeployedRotation, StartupError> {
    let config = RotationConfig::from_env()?;
    let sdk = sdk_config().await;
    Ok(from_sdk(&sdk, config)?)
}

/// credential-rotation with every port on AWS. Fails only if the Vault client cannot be
/// built (the CA bundle).
pub fn from_sdk(
    sdk: &aws_config::SdkConfig,
    config: RotationConfig,
) -> Result<DeployedRotation, VaultError> {
    Ok(CredentialRotation {
        vault: VaultClient::new(&config.vault)?,
        login: vault_login(sdk, &config.auth),
        locks: Box::new(DynamoLocks::from_sdk(
            sdk,
            config.table.clone(),
            config.cluster.cluster.clone(),
        )),
        fleet: AsgFleet::from_sdk(sdk, config.cluster.clone()),
        parameters: SsmParameters::from_sdk(sdk),
        shares: ShareStore {
            max_age: config.shares_max_age,
            layout: KeyLayout::from_root(&config.ssm_path),
            kms_key: config.kms_key,
            dr: config.dr_keys.clone().map(|(region, kms_key)| DrKeys {
                parameters: SsmParameters::in_region(sdk, &region),
                kms_key,
            }),
        },
        serving_for: config.primary_cluster.clone().map(|primary| {
            Box::new(DynamoStateRecords::from_sdk(
                sdk,
                config.table.clone(),
                primary,
            )) as Box<dyn crate::failover::record::FailoverRecords>
        }),
        on_schedule: config.on_schedule,
        fence: match (&config.dr_state_table, &config.dr_keys) {
            (Some(table), Some((region, _))) => Some(Box::new(DynamoStateRecords::in_region(
                sdk,
                region,
                table.clone(),
                config.cluster.cluster.clone(),
            ))
                as Box<dyn crate::failover::record::FailoverRecords>),
            _ => None,
        },
        secret_ids: config.secret_ids,
        root_key_max_age: config.root_key_max_age,
        backup: config.backup_function.map(|function| {
            Box::new(LambdaBackupTrigger::from_sdk(sdk, function))
                as Box<dyn crate::cluster::ports::BackupTrigger>
        }),
        databases: config.databases,
        keyring: config.keyring,
    })
}
