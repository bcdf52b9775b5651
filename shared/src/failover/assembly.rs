//! dr-failover on AWS: every port built from the SDK configuration, once per cold start.
//! It runs in the DR region; only the primary's group is reached in the primary region.

use super::{DrFailover, FailoverConfig, PrimaryAt};
use crate::{
    aws::{
        sdk_config, AsgCapacity, AsgFleet, DynamoCatalog, DynamoLocks, DynamoStateRecords,
        Route53Records, SnsNotifier, SsmParameters,
    },
    lambda::StartupError,
    vault::{VaultClient, VaultError},
};

/// dr-failover as Lambda runs it.
pub type DeployedFailover = DrFailover<VaultClient, SsmParameters>;

/// Reads the environment and builds dr-failover; the error names the first bad variable.
pub async fn assemble() -> Result<DeployedFailover, StartupError> {
    let config = FailoverConfig::from_env()?;
    let sdk = sdk_config().await;
    Ok(from_sdk(&sdk, config)?)
}

/// dr-failover with every port on AWS. Fails only if the Vault client cannot be built
/// (the CA bundle).
pub fn from_sdk(
    sdk: &aws_config::SdkConfig,
    config: FailoverConfig,
) -> Result<DeployedFailover, VaultError> {
    let settings = config.failover;
    let backup = &config.restore.backup;
    let table = backup.table.clone();
    let standby_group = backup.cluster.asg.clone();
    let vault = VaultClient::new(&backup.vault)?;
    let primary_sdk = crate::aws::in_region(sdk, &settings.primary_region);
    Ok(DrFailover {
        // Each probe is one attempt: the probes are the retries, and a dead primary
        // must not cost the client's backoff three times over.
        primary: Box::new(PrimaryAt {
            vault: VaultClient::new(&crate::config::VaultSettings {
                max_retries: 0,
                ..backup.vault.clone()
            })?,
            addr: settings.primary_api.clone(),
        }),
        vault,
        standby_fleet: Box::new(AsgFleet::from_sdk(sdk, backup.cluster.clone())),
        standby_group: Box::new(AsgCapacity::from_sdk(sdk, standby_group)),
        primary_group: Box::new(AsgCapacity::in_region(
            sdk,
            &settings.primary_region,
            settings.primary_group.clone(),
        )),
        catalog: Box::new(DynamoCatalog::from_sdk(sdk, table.clone())),
        records: Box::new(DynamoStateRecords::from_sdk(
            sdk,
            table.clone(),
            settings.primary.clone(),
        )),
        locks: Box::new(DynamoLocks::from_sdk(sdk, table, settings.primary.clone())),
        parameters: SsmParameters::from_sdk(sdk),
        dns: settings.dns.as_ref().map(|d| {
            Box::new(Route53Records::from_sdk(
                sdk,
                d.zone_id.clone(),
                &d.record_name,
            )) as Box<dyn crate::cluster::dr_ports::DnsRecords>
        }),
        notifier: settings.topic.as_ref().map(|topic| {
            Box::new(SnsNotifier::from_sdk(sdk, topic.clone()))
                as Box<dyn crate::cluster::dr_ports::Notifier>
        }),
        metrics: Box::new(crate::aws::CloudWatchMetrics::from_sdk(
            sdk,
            backup.metrics_namespace.clone(),
        )),
        standby_backup: Box::new(crate::backup::from_sdk(sdk, config.restore.backup.clone())?),
        primary_fleet: Box::new(AsgFleet::from_sdk(
            &primary_sdk,
            config.primary_restore.backup.cluster.clone(),
        )),
        primary_restorer: {
            // The primary's nodes, found in its region; everything else (bucket, table,
            // SSM) is this region's.
            let mut restorer = crate::restore::from_sdk(sdk, config.primary_restore.clone())?;
            restorer.fleet = Box::new(AsgFleet::from_sdk(
                &primary_sdk,
                config.primary_restore.backup.cluster,
            ));
            Box::new(restorer)
        },
        restorer: Box::new(crate::restore::from_sdk(sdk, config.restore)?),
        settings,
    })
}
