//! health-probe: wiring only; the steps live in `shared::cluster::health`.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{
    aws::{
        sdk_config, AsgFleet, CloudWatchMetrics, DynamoCatalog, SsmParameters, StsCallerIdentity,
    },
    cluster::{auth::VaultLogin, health::HealthProbe},
    config::ProbeConfig,
    lambda::startup_failed,
    telemetry::init_logging,
    vault::VaultClient,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // Fails at cold start with the variable's name, before any event is taken.
    let config = ProbeConfig::from_env().map_err(startup_failed)?;
    let api = VaultClient::new(&config.vault).map_err(startup_failed)?;
    // Built once per cold start, reused by every invocation.
    let sdk = sdk_config().await;
    let mut login = VaultLogin::new(config.auth.clone(), SsmParameters::from_sdk(&sdk));
    if let Some(identity) = StsCallerIdentity::from_sdk(&sdk, &config.auth) {
        login = login.with_identity(std::sync::Arc::new(identity));
    }
    let probe = HealthProbe {
        cluster: config.cluster.cluster.clone(),
        fleet: AsgFleet::from_sdk(&sdk, config.cluster),
        api,
        login,
        metrics: CloudWatchMetrics::from_sdk(&sdk, config.metrics_namespace),
        catalog: config.state_table.map(|table| {
            Box::new(DynamoCatalog::from_sdk(&sdk, table))
                as Box<dyn shared::snapshots::catalog::Catalog>
        }),
    };
    let probe = &probe;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        probe.handle(&event.payload).await
    }))
    .await
}
