//! The ports the bed lends the function, each shared with the test that reads it back:
//! SSM, the Auto Scaling group, the state table and the metrics, with switches that cut a
//! run off at a chosen write.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use async_trait::async_trait;

use super::super::*;
use crate::{
    cluster::ports::{FleetError, ParameterError, Stored},
    lifecycle::records::{
        ActionRecord, ActionStage, InitRecord, InitStage, InitWrite, RecordError,
    },
    secret::Secret,
    telemetry::{Metric, MetricsError},
    testing::{FakeCluster, FakeMetrics, FakeParameters, FakeRecords},
};

/// SSM for one test: the function and its own login read the same parameters (as they
/// do in AWS), and a test can make the write of one parameter, or every delete, fail.
#[derive(Clone, Default)]
pub(super) struct Ssm(Arc<SsmState>);

#[derive(Default)]
struct SsmState {
    values: FakeParameters,
    fail_write_of: Mutex<Option<(String, usize)>>,
    fail_deletes: AtomicBool,
    store_then_fail: AtomicBool,
}

impl Ssm {
    pub(super) fn value(&self, name: &str) -> Option<String> {
        self.0.values.values.lock().ok()?.get(name).cloned()
    }

    pub(super) fn put(&self, name: &str, value: &str) {
        if let Ok(mut values) = self.0.values.values.lock() {
            values.insert(name.to_owned(), value.to_owned());
        }
    }

    pub(super) fn remove(&self, name: &str) {
        if let Ok(mut values) = self.0.values.values.lock() {
            values.remove(name);
        }
    }

    pub(super) fn all(&self) -> BTreeMap<String, String> {
        self.0
            .values
            .values
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// The next write of `name` fails, as SSM does when it is throttled.
    pub(super) fn fail_write_of(&self, name: &str) {
        self.fail_writes_of(name, 1);
    }

    /// The next `times` writes of `name` fail (`usize::MAX`: SSM never recovers).
    pub(super) fn fail_writes_of(&self, name: &str, times: usize) {
        if let Ok(mut fail) = self.0.fail_write_of.lock() {
            *fail = Some((name.to_owned(), times));
        }
    }

    /// The next write of `name` is stored and its answer lost: it fails all the same.
    pub(super) fn store_then_fail_write_of(&self, name: &str) {
        self.0.store_then_fail.store(true, Ordering::SeqCst);
        self.fail_write_of(name);
    }

    pub(super) fn fail_deletes(&self, fail: bool) {
        self.0.fail_deletes.store(fail, Ordering::SeqCst);
    }
}

fn ssm_down(name: &str) -> ParameterError {
    ParameterError::Unavailable {
        name: name.to_owned(),
        reason: "injected: SSM unavailable".into(),
    }
}

#[async_trait]
impl ParameterStore for Ssm {
    async fn secret(&self, name: &str) -> Result<Secret, ParameterError> {
        self.0.values.secret(name).await
    }

    async fn put_new_secret(
        &self,
        name: &str,
        value: &Secret,
        kms_key: &str,
    ) -> Result<Stored, ParameterError> {
        // A write is a round trip: let other runs of the test proceed meanwhile.
        tokio::task::yield_now().await;
        let failing = self
            .0
            .fail_write_of
            .lock()
            .map(|mut f| match f.as_mut() {
                Some((n, times)) if n == name && *times > 0 => {
                    *times -= 1;
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if failing {
            if self.0.store_then_fail.swap(false, Ordering::SeqCst) {
                self.0.values.put_new_secret(name, value, kms_key).await?;
            }
            return Err(ssm_down(name));
        }
        self.0.values.put_new_secret(name, value, kms_key).await
    }

    async fn replace_secret(
        &self,
        name: &str,
        value: &Secret,
        kms_key: &str,
    ) -> Result<(), ParameterError> {
        self.0.values.replace_secret(name, value, kms_key).await
    }

    async fn delete(&self, name: &str) -> Result<(), ParameterError> {
        if self.0.fail_deletes.load(Ordering::SeqCst) {
            return Err(ssm_down(name));
        }
        self.0.values.delete(name).await
    }
}

/// The Auto Scaling group: its members, the terminating instances EC2 still knows,
/// lifecycle states a test set, and how many single-instance lookups were made. A member is in `Pending:Wait` and a terminating instance
/// in `Terminating:Wait` unless a test says otherwise.
#[derive(Clone, Default)]
pub(super) struct Group(Arc<Mutex<GroupState>>);

type GroupState = (
    Vec<FleetNode>,
    Vec<FleetNode>,
    BTreeMap<String, String>,
    usize,
);

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Auto Scaling reports `instance` in `state` (`InService`, `Warmed:Pending:Wait` ...).
    pub(super) fn set_state(&self, instance: &str, state: &str) {
        self.lock().2.insert(instance.to_owned(), state.to_owned());
    }

    /// `instance` is a member (launching or in service).
    pub(super) fn add(&self, cluster: &FakeCluster, instance: &str) {
        let mut group = self.lock();
        group.0.push(FleetNode {
            instance: instance.into(),
            addr: cluster.addr(instance),
        });
        group.0.sort();
    }

    /// `instance` is terminating: no longer a member, still known to EC2.
    pub(super) fn terminating(&self, instance: &str) {
        let mut group = self.lock();
        let (leaving, staying) = group
            .0
            .drain(..)
            .partition(|n| n.instance.as_str() == instance);
        group.0 = staying;
        group.1.extend::<Vec<FleetNode>>(leaving);
        group.2.remove(instance);
    }

    /// `instance` waits in the warm pool (`state`): known to EC2, no member.
    pub(super) fn warm(&self, cluster: &FakeCluster, instance: &str, state: &str) {
        let mut group = self.lock();
        group.0.retain(|n| n.instance.as_str() != instance);
        group.1.retain(|n| n.instance.as_str() != instance);
        group.1.push(FleetNode {
            instance: instance.into(),
            addr: cluster.addr(instance),
        });
        group.2.insert(instance.to_owned(), state.to_owned());
    }

    /// How many times one instance's address was asked (DescribeInstances on AWS).
    pub(super) fn node_lookups(&self) -> usize {
        self.lock().3
    }

    /// `instance` is gone from the group and from EC2.
    pub(super) fn gone(&self, instance: &str) {
        let mut group = self.lock();
        group.0.retain(|n| n.instance.as_str() != instance);
        group.1.retain(|n| n.instance.as_str() != instance);
        group.2.remove(instance);
    }
}

#[async_trait]
impl Fleet for Group {
    async fn in_service(&self) -> Result<Vec<FleetNode>, FleetError> {
        Ok(self.lock().0.clone())
    }

    async fn instances(&self) -> Result<Vec<FleetNode>, FleetError> {
        let group = self.lock();
        Ok(group.0.iter().chain(&group.1).cloned().collect())
    }

    async fn node(&self, instance: &InstanceId) -> Result<Option<FleetNode>, FleetError> {
        let mut group = self.lock();
        group.3 += 1;
        Ok(group
            .0
            .iter()
            .chain(&group.1)
            .find(|n| &n.instance == instance)
            .cloned())
    }

    async fn lifecycle_state(&self, instance: &InstanceId) -> Result<Option<String>, FleetError> {
        let group = self.lock();
        let id = instance.as_str();
        Ok(if let Some(set) = group.2.get(id) {
            Some(set.clone())
        } else if group.0.iter().any(|n| n.instance.as_str() == id) {
            Some("Pending:Wait".to_owned())
        } else if group.1.iter().any(|n| n.instance.as_str() == id) {
            Some("Terminating:Wait".to_owned())
        } else {
            None
        })
    }
}

/// The state table, with a switch that fails the write of one initialisation stage.
#[derive(Clone, Default)]
pub(super) struct Records {
    pub(super) table: Arc<FakeRecords>,
    fail_init_stage: Arc<Mutex<Option<InitStage>>>,
}

impl Records {
    pub(super) fn fail_write_of(&self, stage: InitStage) {
        if let Ok(mut fail) = self.fail_init_stage.lock() {
            *fail = Some(stage);
        }
    }

    pub(super) fn init_stage(&self) -> Option<InitStage> {
        self.table.init.lock().ok()?.as_ref().map(|r| r.stage)
    }

    /// The stage of the one action recorded with `token`.
    pub(super) fn stage(&self, token: &str) -> Option<ActionStage> {
        let suffix = format!("/{token}");
        let actions = self.table.actions.lock().ok()?;
        let mut found = actions.iter().filter(|(key, _)| key.ends_with(&suffix));
        let (_, record) = found.next()?;
        assert!(found.next().is_none(), "several actions with token {token}");
        Some(record.stage)
    }

    /// Forgets the record of every action with `token`, as a run that died before
    /// writing it would leave the table.
    pub(super) fn forget(&self, token: &str) {
        let suffix = format!("/{token}");
        if let Ok(mut actions) = self.table.actions.lock() {
            actions.retain(|key, _| !key.ends_with(&suffix));
        }
    }
}

#[async_trait]
impl StateRecords for Records {
    async fn action(&self, action: &LifecycleAction) -> Result<Option<ActionRecord>, RecordError> {
        self.table.action(action).await
    }
    async fn put_action(
        &self,
        action: &LifecycleAction,
        record: &ActionRecord,
    ) -> Result<(), RecordError> {
        self.table.put_action(action, record).await
    }
    async fn unfinished_launch(
        &self,
        group: &str,
        instance: &crate::ids::InstanceId,
    ) -> Result<bool, RecordError> {
        self.table.unfinished_launch(group, instance).await
    }
    async fn init(&self) -> Result<Option<InitRecord>, RecordError> {
        self.table.init().await
    }
    async fn put_init(&self, record: &InitRecord) -> Result<InitWrite, RecordError> {
        let failing = self
            .fail_init_stage
            .lock()
            .map(|mut f| f.take_if(|s| *s == record.stage).is_some())
            .unwrap_or(false);
        if failing {
            return Err(RecordError {
                action: "write",
                what: "the initialisation record".into(),
                table: "state".into(),
                reason: "injected: DynamoDB unavailable".into(),
            });
        }
        self.table.put_init(record).await
    }
}

#[derive(Clone, Default)]
pub(super) struct Metrics(pub(super) Arc<FakeMetrics>);

#[async_trait]
impl MetricsSink for Metrics {
    async fn publish(&self, metrics: &[Metric]) -> Result<(), MetricsError> {
        self.0.publish(metrics).await
    }
}
