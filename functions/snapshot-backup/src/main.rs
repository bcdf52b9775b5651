//! snapshot-backup: wiring only; the steps live in `shared::snapshots::backup`.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{
    aws::{sdk_config, snapshot_backup},
    lambda::{deadline, startup_failed},
    snapshots::backup::BackupConfig,
    telemetry::init_logging,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // Fails at cold start with the variable's name, before any event is taken.
    let config = BackupConfig::from_env("snapshot-backup").map_err(startup_failed)?;
    // Built once per cold start, reused by every invocation.
    let sdk = sdk_config().await;
    let backup = snapshot_backup(&sdk, config).map_err(startup_failed)?;
    let backup = &backup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline(event.context.deadline);
        backup
            .handle(&event.payload, &event.context.request_id, deadline)
            .await
    }))
    .await
}
