//! What every function's `main` shares: [`serve`] starts logging, assembles the function
//! (a bad variable fails the cold start, naming it), and hands each event to its
//! [`Handler`] with the invocation's id and deadline; an error becomes the invocation's
//! result through [`FunctionError`].
//!
//! The `error_type` of a failed invocation says whether a retry can help: `Permanent.*`
//! (bad input, bad configuration: fix something first) or `Transient.*` (AWS or a node
//! did not answer: a retry or the next schedule tick may succeed). The message is the
//! whole error chain; no error in this crate holds a secret.

use std::future::Future;

use async_trait::async_trait;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use tracing::error;

use crate::{config::ConfigError, error_chain, errors::Classify, vault::VaultError};

/// One invocation, as a function's handler sees it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The event or direct request, as delivered.
    pub payload: Value,
    /// Lambda's request id: a retried invocation has the same one.
    pub request_id: String,
    /// When Lambda cuts the invocation off, on tokio's clock: waits stop before it.
    pub deadline: tokio::time::Instant,
}

/// A function's handling of one invocation.
#[async_trait]
pub trait Handler: Send + Sync {
    /// What it returns, as JSON.
    type Output: serde::Serialize + Send;
    /// Carries the invocation out; the error says whether a retry can help.
    async fn handle(&self, invocation: Invocation) -> Result<Self::Output, FunctionError>;
}

/// Why a function could not start: its configuration, or a client it needs.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A variable is missing or invalid (the message names it).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Vault client could not be built (the CA bundle).
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Runs a function: logging first, then `assemble` (built once per cold start, reused by
/// every invocation), then the Lambda runtime's loop. A start-up failure is logged as
/// one line and ends the process before any event is taken.
pub async fn serve<H: Handler>(
    assemble: impl Future<Output = Result<H, StartupError>>,
) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init_logging();
    let handler = assemble.await.map_err(startup_failed)?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation {
            deadline: deadline(event.context.deadline),
            request_id: event.context.request_id,
            payload: event.payload,
        };
        handler.handle(invocation).await
    }))
    .await
}

/// A failed invocation, ready for the Lambda runtime.
#[derive(Debug)]
pub struct FunctionError {
    /// `Permanent.<Variant>` or `Transient.<Variant>`.
    pub error_type: String,
    /// The error chain.
    pub message: String,
}

impl FunctionError {
    /// Logs the failure once, as one structured line, and wraps it.
    pub fn new(retry_helps: bool, variant: &str, error: &dyn std::error::Error) -> Self {
        let error_type = format!(
            "{}.{variant}",
            if retry_helps {
                "Transient"
            } else {
                "Permanent"
            }
        );
        let message = error_chain(error);
        error!(error_type = %error_type, error = %message, "invocation failed");
        Self {
            error_type,
            message,
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.error_type,
            error_message: e.message,
        }
    }
}

impl<E: Classify> From<E> for FunctionError {
    fn from(e: E) -> Self {
        Self::new(e.retry_helps(), e.name(), &e)
    }
}

/// Logs a start-up failure (bad configuration) as one structured line and returns it for
/// `main` to exit with, so the cold start fails before any event is taken.
pub fn startup_failed(
    error: impl std::error::Error + Send + Sync + 'static,
) -> lambda_runtime::Error {
    error!(error = %error_chain(&error), "cannot start");
    Box::new(error)
}

/// Lambda's longest timeout: the budget assumed when a deadline cannot be real.
const LONGEST_INVOCATION: std::time::Duration = std::time::Duration::from_secs(900);

/// The invocation's deadline (`Context::deadline`, epoch milliseconds) on tokio's clock,
/// which every `wait_until_*` step measures against. Lambda always sends a future
/// instant; a deadline already past cannot be one (cargo-lambda's emulator sends its
/// timeout, not an instant), so it is logged and replaced by Lambda's 15-minute maximum.
pub fn deadline(epoch_ms: u64) -> tokio::time::Instant {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(epoch_ms);
    match at.duration_since(std::time::SystemTime::now()) {
        Ok(left) if !left.is_zero() => tokio::time::Instant::now() + left,
        _ => {
            tracing::warn!(
                deadline_ms = epoch_ms,
                "the invocation's deadline is not in the future; assuming Lambda's 15-minute maximum"
            );
            tokio::time::Instant::now() + LONGEST_INVOCATION
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        backup::BackupError,
        cluster::{locks::LockError, ports::FleetError},
        errors::{FailureKind, ServiceFailure},
        lifecycle::LifecycleError,
        restore::RestoreError,
        snapshots::take::TakeError,
    };

    fn denied_by_vault() -> VaultError {
        VaultError::Status {
            node: "https://10.0.0.1:8200".parse().expect("addr"),
            method: "GET".into(),
            path: "sys/storage/raft/snapshot".into(),
            status: 403,
            errors: vec!["permission denied".into()],
        }
    }

    #[test]
    fn the_same_error_gets_the_same_answer_in_every_function() {
        let lock = |kind| LockError {
            action: "claim",
            name: "backup".into(),
            table: "state".into(),
            reason: ServiceFailure {
                kind,
                detail: "AccessDeniedException: not authorised".into(),
            },
        };
        let denied = FunctionError::from(BackupError::Lock(lock(FailureKind::Denied)));
        assert_eq!(denied.error_type, "Permanent.AccessDenied");
        let denied = FunctionError::from(RestoreError::Lock(lock(FailureKind::Denied)));
        assert_eq!(denied.error_type, "Permanent.AccessDenied");
        let denied = FunctionError::from(LifecycleError::Lock(lock(FailureKind::Denied)));
        assert_eq!(denied.error_type, "Permanent.AccessDenied");
        let busy = FunctionError::from(RestoreError::Lock(lock(FailureKind::Unavailable)));
        assert_eq!(busy.error_type, "Transient.LockUnavailable");

        let group = || FleetError::NoSuchGroup {
            group: "vault-prod".into(),
        };
        for error_type in [
            FunctionError::from(BackupError::Fleet(group())).error_type,
            FunctionError::from(RestoreError::Fleet(group())).error_type,
            FunctionError::from(LifecycleError::Fleet(group())).error_type,
        ] {
            assert_eq!(error_type, "Permanent.NoSuchGroup");
        }

        let backup = FunctionError::from(BackupError::Take(TakeError::Snapshot {
            node: "https://10.0.0.1:8200".into(),
            source: denied_by_vault(),
        }));
        let restore = FunctionError::from(RestoreError::SafetySnapshot(TakeError::Snapshot {
            node: "https://10.0.0.1:8200".into(),
            source: denied_by_vault(),
        }));
        let lifecycle = FunctionError::from(LifecycleError::Vault {
            step: "reading the raft configuration".into(),
            source: denied_by_vault(),
        });
        for error_type in [backup.error_type, restore.error_type, lifecycle.error_type] {
            assert_eq!(error_type, "Permanent.PolicyDenied");
        }
    }

    #[test]
    fn a_real_deadline_is_kept_and_an_impossible_one_replaced() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let left = deadline(now_ms + 60_000) - tokio::time::Instant::now();
        assert!(
            left > std::time::Duration::from_secs(55) && left <= std::time::Duration::from_secs(60),
            "{left:?}"
        );
        let assumed = deadline(600_000) - tokio::time::Instant::now();
        assert!(assumed > std::time::Duration::from_secs(890), "{assumed:?}");
    }
}
