//! Logs and metrics.
//!
//! Logs are JSON lines, one per step outcome, with named fields (never whole structs).
//! Metrics go to CloudWatch with `PutMetricData` rather than the embedded metric format:
//! the probe's figures must reach CloudWatch even when a function runs outside Lambda's
//! log pipeline (the emulator, a test, a re-run by hand), a failed publish must be an
//! error the invocation reports, and the tests read them back through the same API the
//! alarms use. At one probe a minute the API cost is negligible.

use async_trait::async_trait;
use tracing_subscriber::EnvFilter;

/// Starts JSON logging. The level comes from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's
/// logging configuration), else `RUST_LOG`, else `info`.
pub fn init_logging() {
    let set = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let filter = set("AWS_LAMBDA_LOG_LEVEL")
        .map(|level| level.to_lowercase())
        .or_else(|| set("RUST_LOG"))
        .unwrap_or_else(|| "info".to_owned());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_env_filter(EnvFilter::new(filter))
        .init();
}

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things.
    Count,
    /// A flag (0 or 1) or a plain number.
    None,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
}

/// One data point.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name, e.g. `FailureTolerance`.
    pub name: &'static str,
    /// Its value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// Its dimensions, `Cluster` first.
    pub dimensions: Vec<(&'static str, String)>,
}

impl Metric {
    /// A cluster-wide metric.
    pub fn cluster(cluster: &str, name: &'static str, value: f64, unit: Unit) -> Self {
        Self {
            name,
            value,
            unit,
            dimensions: vec![("Cluster", cluster.to_owned())],
        }
    }

    /// A per-node metric.
    pub fn node(cluster: &str, node: &str, name: &'static str, value: f64, unit: Unit) -> Self {
        Self {
            name,
            value,
            unit,
            dimensions: vec![("Cluster", cluster.to_owned()), ("Node", node.to_owned())],
        }
    }
}

/// Why metrics were not published.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish {count} metrics to namespace {namespace}: {reason}")]
pub struct MetricsError {
    /// The namespace.
    pub namespace: String,
    /// How many data points were lost.
    pub count: usize,
    /// The SDK's error.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// Where metrics go (CloudWatch in AWS, a vector in unit tests).
#[async_trait]
pub trait MetricsSink: Send + Sync {
    /// Publishes every data point, all stamped with the same time.
    async fn publish(&self, metrics: &[Metric]) -> Result<(), MetricsError>;
}

impl crate::errors::Classify for MetricsError {
    fn retry_helps(&self) -> bool {
        self.reason.retry_helps()
    }
    fn name(&self) -> &'static str {
        self.reason.name("MetricsNotPublished")
    }
}
