//! Domain logic and adapters shared by the Lambda functions that run the lifecycle and
//! disaster recovery of a Vault or OpenBao Raft cluster on an EC2 Auto Scaling group.
//!
//! Map of the crate. Imports go down only: the per-function modules use the shared
//! concepts, which talk through the ports; the adapters implement the ports.
//!
//! One module per function, each with its request handling, its steps, its configuration
//! and its assembly from the SDK configuration (`assemble`, which `main` hands to
//! `lambda::serve`):
//! - [`probe`]: the health-probe function.
//! - [`lifecycle`]: node-lifecycle's launch, terminate and reconcile, with the cluster's
//!   one-time initialisation and bootstrap.
//! - [`backup`]: snapshot-backup (take, copy to DR, retention, metrics).
//! - [`restore`]: snapshot-restore (choose, check, safety snapshot, recover).
//! - [`rotation`]: credential-rotation (keyring, shares, root key, secret IDs, database).
//! - [`failover`]: dr-failover, run in the DR region (confirm, fence, restore into the
//!   standby, adopt the primary's shares, verify, switch DNS, notify; each phase recorded).
//!
//! What they share:
//! - [`cluster`]: the ports every function stands on (fleet, node, parameters, locks,
//!   lifecycle actions) and those of a failover (DNS record, notifications, a group's
//!   size), the functions' Vault login, finding the leader, polling.
//! - [`keys`]: where a cluster's shares, root token and AppRole credentials are kept,
//!   the seal kind, reading the threshold of shares, and the one unseal procedure.
//! - [`snapshots`]: the archive check, the catalog, the store, streaming a snapshot in,
//!   taking one and reading one back.
//! - [`events`]: the events AWS delivers and the direct requests, parsed into domain
//!   requests before anything changes.
//! - [`errors`]: how every error says whether a retry can help.
//! - [`lambda`]: `serve`, the invocation, and errors as the Lambda runtime reports them.
//! - [`config`]: environment variables, with errors that name the variable.
//! - [`ids`], [`secret`], [`chunks`], [`telemetry`]: identifiers, the redacting
//!   [`secret::Secret`], bodies read chunk by chunk, logs and the metrics port.
//!
//! Adapters:
//! - [`vault`]: the typed Vault/OpenBao HTTP client, behind the node port.
//! - [`aws`]: thin adapters from the ports to the AWS SDK.
//! - `testing` (feature `testing`): a stateful fake for every port, a failure-injection
//!   wrapper for the node port, and a log capture.
#![warn(missing_docs)]

pub mod aws;
pub mod backup;
pub mod chunks;
pub mod cluster;
pub mod config;
pub mod errors;
pub mod events;
pub mod failover;
pub mod ids;
pub mod keys;
pub mod lambda;
pub mod lifecycle;
pub mod probe;
pub mod restore;
pub mod rotation;
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
        // HTTP clients and the SDK repeat their cause in their own message; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
