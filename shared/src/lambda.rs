//! What every function's `main` shares: how an error becomes the invocation's result.
//!
//! The `error_type` of a failed invocation says whether a retry can help: `Permanent.*`
//! (bad input, bad configuration: fix something first) or `Transient.*` (AWS or a node
//! did not answer: a retry or the next schedule tick may succeed). The message is the
//! whole error chain; no error in this crate holds a secret.

use lambda_runtime::Diagnostic;
use tracing::error;

use crate::{cluster::health::ProbeError, error_chain, events::EventError};

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

impl From<EventError> for FunctionError {
    fn from(e: EventError) -> Self {
        let variant = match e {
            EventError::Unrecognised { .. } => "UnrecognisedEvent",
            EventError::Invalid { .. } => "InvalidEvent",
        };
        Self::new(false, variant, &e)
    }
}

impl From<ProbeError> for FunctionError {
    fn from(e: ProbeError) -> Self {
        use crate::cluster::ports::FleetError;
        let (retry_helps, variant) = match &e {
            ProbeError::Fleet(FleetError::NoSuchGroup { .. }) => (false, "NoSuchGroup"),
            ProbeError::Fleet(FleetError::NoAddress { .. } | FleetError::BadAddressTag { .. }) => {
                (false, "NoNodeAddress")
            }
            ProbeError::Fleet(FleetError::Unavailable { .. }) => (true, "FleetUnavailable"),
            ProbeError::Metrics(_) => (true, "MetricsNotPublished"),
            ProbeError::Login(_) => (false, "LoginRefused"),
            ProbeError::Denied(_) => (false, "PolicyDenied"),
        };
        Self::new(retry_helps, variant, &e)
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
