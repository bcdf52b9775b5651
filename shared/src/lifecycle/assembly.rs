//! node-lifecycle on AWS: every port built from the SDK configuration, once per cold
//! start.

use super::{LifecycleConfig, NodeLifecycle};
use crate::{
    aws::{
        sdk_config, AsgFleet, AsgLifecycleActions, CloudWatchMetrics, DynamoLocks,
        DynamoStateRecords, SsmParameters,
    },
    cluster::auth::VaultLogin,
    lambda::StartupError,
    vault::{VaultClient, VaultError},
};

/// node-lifecycle as Lambda runs it.
pub type DeployedLifecycle = NodeLifecycle<VaultClient, SsmParameters>;

/// Reads the environment and builds node-lifecycle; the error names the first bad
/// variable.
pub async fn assemble() -> Result<DeployedLifecycle, StartupError> {
    let config = LifecycleConfig::from_env()?;
    let sdk = sdk_config().await;
    Ok(from_sdk(&sdk, config)?)
}

/// node-lifecycle with every port on AWS. Fails only if the Vault client cannot be built
/// (the CA bundle).
pub fn from_sdk(
    sdk: &aws_config::SdkConfig,
    config: LifecycleConfig,
) -> Result<DeployedLifecycle, VaultError> {
    let cluster = config.cluster.cluster.clone();
    // node-lifecycle logs in with the AppRole its bootstrap makes (its configuration
    // refuses aws auth), so it needs no AWS identity for Vault.
    let login = VaultLogin::new(config.auth.clone(), SsmParameters::from_sdk(sdk));
    Ok(NodeLifecycle {
        vault: VaultClient::new(&config.vault)?,
        parameters: SsmParameters::from_sdk(sdk),
        login,
        locks: Box::new(DynamoLocks::from_sdk(
            sdk,
            config.table.clone(),
            cluster.clone(),
        )),
        records: Box::new(DynamoStateRecords::from_sdk(
            sdk,
            config.table,
            cluster.clone(),
        )),
        actions: Box::new(AsgLifecycleActions::from_sdk(sdk)),
        metrics: Box::new(CloudWatchMetrics::from_sdk(sdk, config.metrics_namespace)),
        fleet: Box::new(AsgFleet::from_sdk(sdk, config.cluster)),
        dr_keys: config
            .dr_keys
            .clone()
            .map(|(region, kms_key)| super::dr_keys::DrKeys {
                parameters: SsmParameters::in_region(sdk, &region),
                kms_key,
            }),
        fence: match (&config.dr_state_table, &config.dr_keys) {
            (Some(table), Some((region, _))) => Some(Box::new(DynamoStateRecords::in_region(
                sdk,
                region,
                table.clone(),
                cluster.clone(),
            ))
                as Box<dyn crate::failover::record::FailoverRecords>),
            _ => None,
        },
        settings: config.lifecycle,
    })
}
