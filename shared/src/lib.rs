//! Domain logic and adapters shared by the Lambda functions that run the lifecycle and
//! disaster recovery of a Vault or OpenBao Raft cluster on an EC2 Auto Scaling group.
//!
//! Map of the crate:
//! - [`config`]: environment variables, with errors that name the variable.
//! - [`chunks`]: a body read chunk by chunk (a snapshot from a node or from the bucket).
//! - [`ids`]: validated identifiers (cluster name, instance id, node address).
//! - [`secret`]: [`secret::Secret`], the only type that holds shares, tokens and secret IDs.
//! - [`events`]: the events AWS delivers and the direct requests, parsed into domain
//!   requests before anything changes.
//! - [`vault`]: the typed Vault/OpenBao HTTP client.
//! - [`cluster`]: the ports (fleet, parameters, node API), the functions' Vault login, and
//!   health-probe's logic.
//! - [`aws`]: thin adapters from the ports to the AWS SDK (Auto Scaling, EC2, SSM,
//!   CloudWatch, DynamoDB).
//! - [`lifecycle`]: node-lifecycle's launch, terminate and reconcile, with the cluster's
//!   one-time initialisation and bootstrap.
//! - [`snapshots`]: Raft snapshots, checked as they stream.
//! - [`telemetry`]: JSON logs and the metrics port.
//! - [`lambda`]: what every function's `main` shares: start-up and error reporting.
//! - `testing` (feature `testing`): fakes for every port and a log capture.
#![warn(missing_docs)]

pub mod aws;
pub mod chunks;
pub mod cluster;
pub mod config;
pub mod events;
pub mod ids;
pub mod lambda;
pub mod lifecycle;
pub mod secret;
pub mod snapshots;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vault;

/// An error and all its sources, joined with ": ", for a log line or an error message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // reqwest and the SDK repeat their cause in their own message; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
