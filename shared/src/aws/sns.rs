//! The operators' notification topic: one SNS Publish per notification.

use async_trait::async_trait;
use aws_sdk_sns::error::ProvideErrorMetadata;
use tracing::info;

use super::{describe, in_region};
use crate::cluster::dr_ports::{Notification, Notifier, NotifyError};

/// One SNS topic, published to in its own region.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic: String,
}

impl SnsNotifier {
    /// Publishes to `topic` (its ARN) through `client`, which must be in the topic's region.
    pub fn new(client: aws_sdk_sns::Client, topic: String) -> Self {
        Self { client, topic }
    }

    /// Publishes to `topic` in the region its ARN names (SNS takes a topic only in its own
    /// region), whatever region `sdk` is in; in `sdk`'s region when the ARN names none.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, topic: String) -> Self {
        let client = match topic_region(&topic) {
            Some(region) => aws_sdk_sns::Client::new(&in_region(sdk, region)),
            None => aws_sdk_sns::Client::new(sdk),
        };
        Self::new(client, topic)
    }
}

/// The region of `arn:<partition>:sns:<region>:<account>:<name>`.
fn topic_region(arn: &str) -> Option<&str> {
    let mut fields = arn.split(':');
    match (fields.next(), fields.nth(1), fields.next()) {
        (Some("arn"), Some("sns"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), NotifyError> {
        let fitted = Notification::fitted(subject, message);
        let subject = Some(fitted.subject).filter(|s| !s.is_empty());
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic)
            .set_subject(subject)
            .message(fitted.message)
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("NotFound") => NotifyError::NoSuchTopic {
                    topic: self.topic.clone(),
                },
                Some("InvalidParameter" | "InvalidParameterValue") => NotifyError::Refused {
                    topic: self.topic.clone(),
                    reason: describe(e),
                },
                _ => NotifyError::Unavailable {
                    topic: self.topic.clone(),
                    reason: describe(e),
                },
            })?;
        info!(topic = %self.topic, message_id = out.message_id().unwrap_or(""), "notified");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::topic_region;

    #[test]
    fn a_topic_is_published_to_in_the_region_its_arn_names() {
        assert_eq!(
            topic_region("arn:aws:sns:eu-central-1:123456789012:vault-dr"),
            Some("eu-central-1")
        );
        assert_eq!(topic_region("arn:aws:sns::123456789012:vault-dr"), None);
        assert_eq!(topic_region("vault-dr"), None);
    }
}
