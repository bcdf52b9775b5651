//! What a failover needs of moto besides a region's cluster fixtures: a Route 53 hosted
//! zone, an SNS topic, and a read-back of what was published to it.

use anyhow::{Context, Result};
use shared::cluster::dr_ports::Notification;

use super::{Moto, RegionFixture};

impl RegionFixture {
    /// Creates a public hosted zone for `domain`; returns its id (`/hostedzone/...`).
    pub async fn create_hosted_zone(&self, domain: &str) -> Result<String> {
        let out = aws_sdk_route53::Client::new(&self.sdk)
            .create_hosted_zone()
            .name(domain)
            .caller_reference(crate::unique_name("zone"))
            .send()
            .await
            .with_context(|| format!("create hosted zone {domain}"))?;
        out.hosted_zone()
            .map(|z| z.id().to_owned())
            .context("CreateHostedZone returned no zone")
    }

    /// Creates an SNS topic named `name` in this region; returns its ARN.
    pub async fn create_topic(&self, name: &str) -> Result<String> {
        let out = aws_sdk_sns::Client::new(&self.sdk)
            .create_topic()
            .name(name)
            .send()
            .await
            .with_context(|| format!("create topic {name}"))?;
        out.topic_arn()
            .map(str::to_owned)
            .context("CreateTopic returned no ARN")
    }
}

impl Moto {
    /// Every notification published to `topic` (its ARN), oldest first, from moto's
    /// model dump (`/moto-api/data.json`): moto keeps each topic's publications there.
    pub async fn published(&self, topic: &str) -> Result<Vec<Notification>> {
        let dump: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", self.url))
            .await?
            .error_for_status()?
            .json()
            .await?;
        let topics = dump["sns"]["Topic"].as_array().cloned().unwrap_or_default();
        let Some(found) = topics.iter().find(|t| t["arn"] == topic) else {
            return Ok(Vec::new());
        };
        // Each publication is [message id, message, subject, attributes, group id].
        let sent = found["sent_notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(sent
            .iter()
            .map(|n| Notification {
                subject: n[2].as_str().unwrap_or_default().to_owned(),
                message: n[1].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }
}
