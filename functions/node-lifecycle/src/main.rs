//! node-lifecycle: wiring only; the steps live in `shared::lifecycle`.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use shared::{
    aws::{node_lifecycle, sdk_config},
    lambda::{deadline, startup_failed},
    lifecycle::LifecycleConfig,
    telemetry::init_logging,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // Fails at cold start with the variable's name, before any event is taken.
    let config = LifecycleConfig::from_env().map_err(startup_failed)?;
    // Built once per cold start, reused by every invocation.
    let sdk = sdk_config().await;
    let lifecycle = node_lifecycle(&sdk, config).map_err(startup_failed)?;
    let lifecycle = &lifecycle;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline(event.context.deadline);
        lifecycle.handle(&event.payload, deadline).await
    }))
    .await
}
