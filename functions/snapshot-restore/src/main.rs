//! snapshot-restore: wiring only; the steps live in `shared::snapshots::restore`.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{
    aws::{sdk_config, snapshot_restore},
    lambda::{deadline, startup_failed},
    snapshots::restore::RestoreConfig,
    telemetry::init_logging,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // Fails at cold start with the variable's name, before any event is taken.
    let config = RestoreConfig::from_env().map_err(startup_failed)?;
    // Built once per cold start, reused by every invocation.
    let sdk = sdk_config().await;
    let restore = snapshot_restore(&sdk, config).map_err(startup_failed)?;
    let restore = &restore;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline(event.context.deadline);
        restore
            .handle(&event.payload, &event.context.request_id, deadline)
            .await
    }))
    .await
}
