use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    operation::{delete_item::DeleteItemError, put_item::PutItemError},
    types::AttributeValue,
};

use super::describe;
use crate::{
    cluster::locks::{Claim, LockError, Locks, Released},
    ids::ClusterName,
};

/// Locks as items of the state table: `pk = lock#<cluster>`, `sk = <name>`, with `owner`
/// and `expires_at` (epoch seconds, also the table's TTL attribute, so DynamoDB removes
/// lapsed locks by itself eventually; the condition does not wait for that).
#[derive(Clone, Debug)]
pub struct DynamoLocks {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cluster: ClusterName,
}

impl DynamoLocks {
    /// Locks of `cluster` in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, cluster: ClusterName) -> Self {
        Self {
            client,
            table,
            cluster,
        }
    }

    fn error(
        &self,
        action: &'static str,
        name: &str,
        reason: impl Into<crate::errors::ServiceFailure>,
    ) -> LockError {
        LockError {
            action,
            name: name.to_owned(),
            table: self.table.clone(),
            reason: reason.into(),
        }
    }

    fn key(&self, name: &str) -> [(&'static str, AttributeValue); 2] {
        [
            ("pk", AttributeValue::S(format!("lock#{}", self.cluster))),
            ("sk", AttributeValue::S(name.to_owned())),
        ]
    }
}

fn epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[async_trait]
impl Locks for DynamoLocks {
    async fn claim(&self, name: &str, owner: &str, ttl: Duration) -> Result<Claim, LockError> {
        let now = SystemTime::now();
        let expires_at = now + ttl;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("owner", AttributeValue::S(owner.to_owned()))
            .item(
                "expires_at",
                AttributeValue::N(epoch(expires_at).to_string()),
            )
            // Free, lapsed, or already ours.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", AttributeValue::N(epoch(now).to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()));
        for (k, v) in self.key(name) {
            put = put.item(k, v);
        }
        match put.send().await {
            Ok(_) => Ok(Claim::Acquired { expires_at }),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                let mut get = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .consistent_read(true);
                for (k, v) in self.key(name) {
                    get = get.key(k, v);
                }
                let item = get
                    .send()
                    .await
                    .map_err(|e| self.error("claim", name, describe(e)))?;
                let item = item.item().cloned().unwrap_or_default();
                let holder = item
                    .get("owner")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let until = item
                    .get("expires_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                Ok(Claim::HeldBy {
                    owner: holder,
                    expires_at: UNIX_EPOCH + Duration::from_secs(until),
                })
            }
            Err(e) => Err(self.error("claim", name, describe(e))),
        }
    }

    async fn release(&self, name: &str, owner: &str) -> Result<Released, LockError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()));
        for (k, v) in self.key(name) {
            delete = delete.key(k, v);
        }
        match delete.send().await {
            Ok(_) => Ok(Released::Released),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(Released::NotOwner)
            }
            Err(e) => Err(self.error("release", name, describe(e))),
        }
    }
}
