use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;

use super::describe;
use crate::telemetry::{Metric, MetricsError, MetricsSink, Unit};

/// CloudWatch `PutMetricData` into one namespace.
#[derive(Clone, Debug)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

/// Data points per request: far under the API's 1,000-point and 1 MB limits.
const BATCH: usize = 150;

impl CloudWatchMetrics {
    /// Metrics published to `namespace` through `client`.
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: String) -> Self {
        Self { client, namespace }
    }
}

fn unit(unit: Unit) -> StandardUnit {
    match unit {
        Unit::Count => StandardUnit::Count,
        Unit::None => StandardUnit::None,
        Unit::Milliseconds => StandardUnit::Milliseconds,
        Unit::Seconds => StandardUnit::Seconds,
        Unit::Bytes => StandardUnit::Bytes,
    }
}

#[async_trait]
impl MetricsSink for CloudWatchMetrics {
    async fn publish(&self, metrics: &[Metric]) -> Result<(), MetricsError> {
        let now = DateTime::from(std::time::SystemTime::now());
        for (index, batch) in metrics.chunks(BATCH).enumerate() {
            let data = batch
                .iter()
                .map(|m| {
                    let dimensions = m
                        .dimensions
                        .iter()
                        .map(|(k, v)| Dimension::builder().name(*k).value(v).build());
                    MetricDatum::builder()
                        .metric_name(m.name)
                        .value(m.value)
                        .unit(unit(m.unit))
                        .timestamp(now)
                        .set_dimensions(Some(dimensions.collect()))
                        .build()
                })
                .collect();
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| MetricsError {
                    namespace: self.namespace.clone(),
                    // Earlier batches were published; this one and the rest were not.
                    count: metrics.len() - index * BATCH,
                    reason: describe(e),
                })?;
        }
        Ok(())
    }
}
