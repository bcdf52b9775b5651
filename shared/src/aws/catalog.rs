use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};

use super::{describe, describe_any};
use crate::{
    ids::ClusterName,
    snapshots::{
        catalog::{Catalog, CatalogEntry, CatalogError, RestoreRecord},
        store::Location,
    },
};

/// A delivery's record outlives any redelivery or retry.
const DELIVERY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The catalog as items of the state table: `pk = catalog#<cluster>`,
/// `sk = <taken_at>#<key>#<version>` (so a query returns entries oldest first), the whole
/// entry as JSON in `entry` and its main fields as attributes an operator can read;
/// deliveries under `pk = backup-delivery#<cluster>` (with a TTL); restores under
/// `pk = restore#<cluster>`, `sk = <restored_at>`.
#[derive(Clone, Debug)]
pub struct DynamoCatalog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn time_key(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn sort_key(entry: &CatalogEntry) -> String {
    format!(
        "{}#{}#{}",
        time_key(&entry.taken_at),
        entry.object.key,
        entry.object.version_id.as_deref().unwrap_or("null")
    )
}

impl DynamoCatalog {
    /// The catalog in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    fn error(
        &self,
        action: &'static str,
        cluster: &str,
        reason: impl Into<crate::errors::ServiceFailure>,
    ) -> CatalogError {
        CatalogError {
            action,
            cluster: cluster.to_owned(),
            table: self.table.clone(),
            reason: reason.into(),
        }
    }

    fn parse(&self, cluster: &str, item: &Item) -> Result<CatalogEntry, CatalogError> {
        let json = item
            .get("entry")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| self.error("read", cluster, "an item has no entry"))?;
        serde_json::from_str(json).map_err(|e| {
            self.error(
                "read",
                cluster,
                format!("an item's entry is not a catalog entry: {e}"),
            )
        })
    }

    async fn query(
        &self,
        cluster: &ClusterName,
        newest_only: bool,
    ) -> Result<Vec<CatalogEntry>, CatalogError> {
        let mut entries = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("catalog#{cluster}")))
                .set_exclusive_start_key(start.take());
            if newest_only {
                query = query.scan_index_forward(false).limit(1);
            }
            let out = query
                .send()
                .await
                .map_err(|e| self.error("read", cluster.as_str(), describe(e)))?;
            for item in out.items() {
                entries.push(self.parse(cluster.as_str(), item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !newest_only && !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(entries),
            }
        }
    }
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn put(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        let json = serde_json::to_string(entry)
            .map_err(|e| self.error("write", &entry.cluster, e.to_string()))?;
        let mut item = Item::from([
            ("pk".to_owned(), s(format!("catalog#{}", entry.cluster))),
            ("sk".to_owned(), s(sort_key(entry))),
            ("entry".to_owned(), s(json)),
            ("taken_at".to_owned(), s(time_key(&entry.taken_at))),
            ("key".to_owned(), s(&entry.object.key)),
            ("sha256".to_owned(), s(&entry.sha256)),
            ("bytes".to_owned(), n(entry.bytes)),
            ("raft_index".to_owned(), n(entry.index)),
            ("raft_term".to_owned(), n(entry.term)),
            ("kind".to_owned(), s(entry.kind.as_str())),
        ]);
        if let Some(version) = &entry.object.version_id {
            item.insert("version_id".to_owned(), s(version));
        }
        if let Some(dr) = &entry.dr_copy {
            item.insert("dr_copy".to_owned(), s(dr.to_string()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error("write", &entry.cluster, describe(e)))?;
        Ok(())
    }

    async fn entries(&self, cluster: &ClusterName) -> Result<Vec<CatalogEntry>, CatalogError> {
        self.query(cluster, false).await
    }

    async fn newest(&self, cluster: &ClusterName) -> Result<Option<CatalogEntry>, CatalogError> {
        Ok(self.query(cluster, true).await?.pop())
    }

    async fn remove(&self, entries: &[CatalogEntry]) -> Result<(), CatalogError> {
        for batch in entries.chunks(25) {
            let cluster = batch[0].cluster.as_str();
            let mut requests = batch
                .iter()
                .map(|entry| {
                    DeleteRequest::builder()
                        .key("pk", s(format!("catalog#{}", entry.cluster)))
                        .key("sk", s(sort_key(entry)))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.error("delete from", cluster, describe_any(e)))?;
            // DynamoDB may leave some of a batch unprocessed under load: send them again.
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| self.error("delete from", cluster, describe(e)))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == 5 {
                    return Err(self.error(
                        "delete from",
                        cluster,
                        format!(
                            "{} deletions still unprocessed after 6 tries",
                            requests.len()
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
        Ok(())
    }

    async fn delivery(
        &self,
        cluster: &ClusterName,
        id: &str,
    ) -> Result<Option<Location>, CatalogError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(format!("backup-delivery#{cluster}")))
            .key("sk", s(id))
            .send()
            .await
            .map_err(|e| self.error("read", cluster.as_str(), describe(e)))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let json = item
            .get("object")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| {
                self.error(
                    "read",
                    cluster.as_str(),
                    format!("delivery {id} has no object"),
                )
            })?;
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| self.error("read", cluster.as_str(), format!("delivery {id}: {e}")))
    }

    async fn put_delivery(
        &self,
        cluster: &ClusterName,
        id: &str,
        object: &Location,
    ) -> Result<(), CatalogError> {
        let expires_at = (SystemTime::now() + DELIVERY_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let json = serde_json::to_string(object)
            .map_err(|e| self.error("write", cluster.as_str(), e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("backup-delivery#{cluster}")))
            .item("sk", s(id))
            .item("object", s(json))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map_err(|e| self.error("write", cluster.as_str(), describe(e)))?;
        Ok(())
    }

    async fn put_restore(
        &self,
        cluster: &ClusterName,
        record: &RestoreRecord,
    ) -> Result<(), CatalogError> {
        let json = serde_json::to_string(record)
            .map_err(|e| self.error("write", cluster.as_str(), e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("restore#{cluster}")))
            .item("sk", s(time_key(&record.restored_at)))
            .item("restore", s(json))
            .item("source", s(record.source.to_string()))
            .item("raft_index", n(record.index))
            .send()
            .await
            .map_err(|e| self.error("write", cluster.as_str(), describe(e)))?;
        Ok(())
    }
}
