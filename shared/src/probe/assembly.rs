//! health-probe on AWS: every port built from the SDK configuration, once per cold start.

use super::{HealthProbe, PrimaryWatch, ProbeConfig};
use crate::{
    aws::{sdk_config, vault_login, AsgFleet, CloudWatchMetrics, DynamoCatalog, SsmParameters},
    lambda::StartupError,
    snapshots::catalog::Catalog,
    vault::{VaultClient, VaultError},
};

/// health-probe as Lambda runs it.
pub type DeployedProbe = HealthProbe<AsgFleet, VaultClient, SsmParameters, CloudWatchMetrics>;

/// Reads the environment and builds health-probe; the error names the first bad variable.
pub async fn assemble() -> Result<DeployedProbe, StartupError> {
    let config = ProbeConfig::from_env()?;
    let sdk = sdk_config().await;
    Ok(from_sdk(&sdk, config)?)
}

/// health-probe with every port on AWS. Fails only if the Vault client cannot be built
/// (the CA bundle).
pub fn from_sdk(
    sdk: &aws_config::SdkConfig,
    config: ProbeConfig,
) -> Result<DeployedProbe, VaultError> {
    let api = VaultClient::new(&config.vault)?;
    Ok(HealthProbe {
        cluster: config.cluster.cluster.clone(),
        login: vault_login(sdk, &config.auth),
        fleet: AsgFleet::from_sdk(sdk, config.cluster),
        api,
        metrics: CloudWatchMetrics::from_sdk(sdk, config.metrics_namespace),
        catalog: config
            .state_table
            .map(|table| Box::new(DynamoCatalog::from_sdk(sdk, table)) as Box<dyn Catalog>),
        primary: config.primary.map(|primary| PrimaryWatch {
            primary,
            timeout: config.vault.request_timeout,
        }),
    })
}
