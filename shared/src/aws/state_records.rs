use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{operation::put_item::PutItemError, types::AttributeValue};

use super::describe;
use crate::{
    events::{LifecycleAction, Transition},
    ids::{ClusterName, InstanceId},
    lifecycle::records::{
        action_key, launch_key_prefix, ActionRecord, ActionStage, InitRecord, InitStage, InitWrite,
        RecordError, StateRecords,
    },
};

/// Lifecycle actions' records live a week: long past any redelivery or retry.
const ACTION_RECORD_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// node-lifecycle's records as items of the state table: `pk = lifecycle#<cluster>`,
/// `sk = <group>/<instance>/<transition>/<token>` for lifecycle actions (with a TTL), and `pk = cluster#<cluster>`,
/// `sk = init` for the initialisation record (kept for the cluster's life). Reads are
/// strongly consistent: a redelivered event right after a completion must see it.
#[derive(Clone, Debug)]
pub struct DynamoStateRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
    cluster: ClusterName,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoStateRecords {
    /// Records of `cluster` in `table`.
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
        what: &str,
        reason: impl Into<crate::errors::ServiceFailure>,
    ) -> RecordError {
        RecordError {
            action,
            what: what.to_owned(),
            table: self.table.clone(),
            reason: reason.into(),
        }
    }

    async fn get(&self, pk: String, sk: &str, what: &str) -> Result<Option<Item>, RecordError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .send()
            .await
            .map_err(|e| self.error("read", what, describe(e)))?;
        Ok(out.item().cloned())
    }

    async fn put(&self, item: Item, what: &str) -> Result<(), RecordError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error("write", what, describe(e)))?;
        Ok(())
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[async_trait]
impl StateRecords for DynamoStateRecords {
    async fn action(&self, action: &LifecycleAction) -> Result<Option<ActionRecord>, RecordError> {
        let key = action_key(action);
        let what = format!("the record of lifecycle action {key}");
        let Some(item) = self
            .get(format!("lifecycle#{}", self.cluster), &key, &what)
            .await?
        else {
            return Ok(None);
        };
        let bad =
            |field: &str| self.error("read", &what, format!("its {field} is missing or unknown"));
        Ok(Some(ActionRecord {
            instance: InstanceId::from(text(&item, "instance").ok_or_else(|| bad("instance"))?),
            transition: match text(&item, "transition") {
                Some("launch") => Transition::Launching,
                Some("terminate") => Transition::Terminating,
                _ => return Err(bad("transition")),
            },
            stage: text(&item, "stage")
                .and_then(ActionStage::parse)
                .ok_or_else(|| bad("stage"))?,
        }))
    }

    async fn unfinished_launch(
        &self,
        group: &str,
        instance: &InstanceId,
    ) -> Result<bool, RecordError> {
        let prefix = launch_key_prefix(group, instance);
        let what = format!("the launch records of {instance}");
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(format!("lifecycle#{}", self.cluster)))
            .expression_attribute_values(":prefix", s(prefix))
            .send()
            .await
            .map_err(|e| self.error("read", &what, describe(e)))?;
        // An instance has one launch, or a few (a redelivery with another token): one page.
        Ok(out.items().iter().any(|item| {
            text(item, "stage")
                .and_then(ActionStage::parse)
                .is_some_and(ActionStage::in_progress)
        }))
    }

    async fn put_action(
        &self,
        action: &LifecycleAction,
        record: &ActionRecord,
    ) -> Result<(), RecordError> {
        let key = action_key(action);
        let expires_at = SystemTime::now() + ACTION_RECORD_LIFETIME;
        let epoch = expires_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("lifecycle#{}", self.cluster))),
            ("sk".to_owned(), s(key.as_str())),
            ("instance".to_owned(), s(record.instance.as_str())),
            (
                "transition".to_owned(),
                s(match record.transition {
                    Transition::Launching => "launch",
                    Transition::Terminating => "terminate",
                }),
            ),
            ("stage".to_owned(), s(record.stage.as_str())),
            (
                "expires_at".to_owned(),
                AttributeValue::N(epoch.to_string()),
            ),
        ]);
        self.put(item, &format!("the record of lifecycle action {key}"))
            .await
    }

    async fn init(&self) -> Result<Option<InitRecord>, RecordError> {
        let what = "the cluster's initialisation record";
        let Some(item) = self
            .get(format!("cluster#{}", self.cluster), "init", what)
            .await?
        else {
            return Ok(None);
        };
        let bad =
            |field: &str| self.error("read", what, format!("its {field} is missing or unknown"));
        Ok(Some(InitRecord {
            stage: text(&item, "stage")
                .and_then(InitStage::parse)
                .ok_or_else(|| bad("stage"))?,
            node: InstanceId::from(text(&item, "node").ok_or_else(|| bad("node"))?),
            cluster_id: text(&item, "cluster_id").map(str::to_owned),
            recovery: item
                .get("recovery")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        }))
    }

    async fn put_init(&self, record: &InitRecord) -> Result<InitWrite, RecordError> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("cluster#{}", self.cluster))),
            ("sk".to_owned(), s("init")),
            ("stage".to_owned(), s(record.stage.as_str())),
            ("node".to_owned(), s(record.node.as_str())),
            ("recovery".to_owned(), AttributeValue::Bool(record.recovery)),
            (
                "updated_at".to_owned(),
                s(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ),
        ]);
        if let Some(id) = &record.cluster_id {
            item.insert("cluster_id".to_owned(), s(id));
        }
        let what = "the cluster's initialisation record";
        // The stage only moves forward: absent, or at this stage or an earlier one.
        let stages = record.stage.at_or_before();
        let names: Vec<String> = (0..stages.len()).map(|i| format!(":s{i}")).collect();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!(
                "attribute_not_exists(pk) OR #stage IN ({})",
                names.join(", ")
            ))
            .expression_attribute_names("#stage", "stage");
        for (name, stage) in names.iter().zip(&stages) {
            put = put.expression_attribute_values(name, s(stage.as_str()));
        }
        match put.send().await {
            Ok(_) => Ok(InitWrite::Written),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                let stored = self.init().await?.map(|r| r.stage).ok_or_else(|| {
                    self.error(
                        "write",
                        what,
                        "the record refused the write and then vanished",
                    )
                })?;
                Ok(InitWrite::Behind { stored })
            }
            Err(e) => Err(self.error("write", what, describe(e))),
        }
    }
}

/// A failover of the primary cluster (this table's cluster, in the DR region's table):
/// `pk = failover#<primary>`, `sk = current`, the record as JSON in `record`, its last
/// phase as an attribute an operator can read.
#[async_trait]
impl crate::failover::record::FailoverRecords for DynamoStateRecords {
    async fn current(
        &self,
    ) -> Result<Option<crate::failover::record::FailoverRecord>, RecordError> {
        let what = format!("the failover record of {}", self.cluster);
        let Some(item) = self
            .get(format!("failover#{}", self.cluster), "current", &what)
            .await?
        else {
            return Ok(None);
        };
        let json =
            text(&item, "record").ok_or_else(|| self.error("read", &what, "it has no record"))?;
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| self.error("read", &what, format!("its record is not readable: {e}")))
    }

    async fn put(
        &self,
        record: &crate::failover::record::FailoverRecord,
    ) -> Result<(), RecordError> {
        let what = format!("the failover record of {}", self.cluster);
        let json =
            serde_json::to_string(record).map_err(|e| self.error("write", &what, e.to_string()))?;
        let last = record
            .last_phase()
            .map_or("none", crate::failover::record::Phase::as_str);
        let item = Item::from([
            ("pk".to_owned(), s(format!("failover#{}", self.cluster))),
            ("sk".to_owned(), s("current")),
            ("record".to_owned(), s(json)),
            ("phase".to_owned(), s(last)),
            ("started_at".to_owned(), s(record.started_at.to_rfc3339())),
        ]);
        DynamoStateRecords::put(self, item, &what).await
    }

    async fn archive(
        &self,
        record: &crate::failover::record::FailoverRecord,
    ) -> Result<(), RecordError> {
        let what = format!("the failover record of {}", self.cluster);
        let json =
            serde_json::to_string(record).map_err(|e| self.error("write", &what, e.to_string()))?;
        let pk = format!("failover#{}", self.cluster);
        // History first: a run cut off between the two leaves the current record, and
        // its next failback finds it complete and archives it again.
        let item = Item::from([
            ("pk".to_owned(), s(pk.clone())),
            (
                "sk".to_owned(),
                s(format!("history#{}", record.started_at.to_rfc3339())),
            ),
            ("record".to_owned(), s(json)),
        ]);
        DynamoStateRecords::put(self, item, &what).await?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s("current"))
            .send()
            .await
            .map_err(|e| self.error("delete", &what, describe(e)))?;
        Ok(())
    }
}
