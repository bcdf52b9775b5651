use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use async_trait::async_trait;

use super::FakeCluster;
use crate::{
    cluster::ports::{Fleet, FleetError, FleetNode, ParameterError, ParameterStore, Stored},
    ids::InstanceId,
    secret::Secret,
    telemetry::{Metric, MetricsError, MetricsSink},
};

/// A fleet whose instances a test sets: in service unless `states` says otherwise.
#[derive(Default)]
pub struct FakeFleet {
    /// The group's nodes.
    pub in_service: Mutex<Vec<FleetNode>>,
    /// Lifecycle states a test sets; a node not named here is `InService`. A node in a
    /// `Pending` state (`Pending:Wait`: its launch not completed) is a member, not in
    /// service.
    pub states: Mutex<BTreeMap<InstanceId, String>>,
    /// Fail the next listing as the AWS API would.
    pub fail_next: AtomicBool,
}

impl FakeFleet {
    /// The in-service nodes of `cluster` named `instances`.
    pub fn of(cluster: &FakeCluster, instances: &[&str]) -> Self {
        let nodes = instances
            .iter()
            .map(|i| FleetNode {
                instance: InstanceId::from(*i),
                addr: cluster.addr(i),
            })
            .collect();
        Self {
            in_service: Mutex::new(nodes),
            states: Mutex::default(),
            fail_next: AtomicBool::new(false),
        }
    }

    /// Every listed node whose state passes `keep` (a node with no state set is
    /// `InService`), or the injected failure.
    fn listed(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<FleetNode>, FleetError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(FleetError::Unavailable {
                group: "fake".into(),
                reason: "injected failure".into(),
            });
        }
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .in_service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|n| keep(states.get(&n.instance).map_or("InService", String::as_str)))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Fleet for FakeFleet {
    async fn in_service(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.listed(|state| state == "InService")
    }

    async fn members(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.listed(|state| state == "InService" || state.starts_with("Pending"))
    }

    async fn node(&self, instance: &InstanceId) -> Result<Option<FleetNode>, FleetError> {
        Ok(self
            .listed(|_| true)?
            .into_iter()
            .find(|n| &n.instance == instance))
    }

    async fn lifecycle_state(&self, instance: &InstanceId) -> Result<Option<String>, FleetError> {
        let set = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned();
        if set.is_some() {
            return Ok(set);
        }
        let in_service = self.node(instance).await?.is_some();
        Ok(in_service.then(|| "InService".to_owned()))
    }
}

#[async_trait]
impl<T: Fleet> Fleet for std::sync::Arc<T> {
    async fn in_service(&self) -> Result<Vec<FleetNode>, FleetError> {
        (**self).in_service().await
    }

    async fn members(&self) -> Result<Vec<FleetNode>, FleetError> {
        (**self).members().await
    }

    async fn instances(&self) -> Result<Vec<FleetNode>, FleetError> {
        (**self).instances().await
    }

    async fn node(&self, instance: &InstanceId) -> Result<Option<FleetNode>, FleetError> {
        (**self).node(instance).await
    }

    async fn lifecycle_state(&self, instance: &InstanceId) -> Result<Option<String>, FleetError> {
        (**self).lifecycle_state(instance).await
    }
}

/// SSM parameters held in a map.
#[derive(Default)]
pub struct FakeParameters {
    /// Name to value.
    pub values: Mutex<BTreeMap<String, String>>,
}

impl FakeParameters {
    /// Parameters with these values.
    pub fn with(pairs: &[(&str, &str)]) -> Self {
        Self {
            values: Mutex::new(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }
}

#[async_trait]
impl ParameterStore for FakeParameters {
    async fn secret(&self, name: &str) -> Result<Secret, ParameterError> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values
            .get(name)
            .map(|v| Secret::new(v.clone()))
            .ok_or_else(|| ParameterError::Missing {
                name: name.to_owned(),
            })
    }

    async fn put_new_secret(
        &self,
        name: &str,
        value: &Secret,
        _kms_key: &str,
    ) -> Result<Stored, ParameterError> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        if values.contains_key(name) {
            return Ok(Stored::AlreadyExists);
        }
        values.insert(name.to_owned(), value.expose().to_owned());
        Ok(Stored::Written)
    }

    async fn replace_secret(
        &self,
        name: &str,
        value: &Secret,
        _kms_key: &str,
    ) -> Result<(), ParameterError> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), value.expose().to_owned());
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), ParameterError> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }
}

/// Metrics kept in memory.
#[derive(Default)]
pub struct FakeMetrics {
    /// Everything published, in order.
    pub published: Mutex<Vec<Metric>>,
}

impl FakeMetrics {
    /// The value of the metric `name` whose dimensions include `node` (or none for
    /// cluster-wide metrics), if it was published.
    pub fn value(&self, name: &str, node: Option<&str>) -> Option<f64> {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published
            .iter()
            .rev()
            .find(|m| {
                m.name == name
                    && m.dimensions
                        .iter()
                        .find(|(k, _)| *k == "Node")
                        .map(|(_, v)| v.as_str())
                        == node
            })
            .map(|m| m.value)
    }

    /// How many times the metric `name` was published.
    pub fn count(&self, name: &str) -> usize {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published.iter().filter(|m| m.name == name).count()
    }
}

#[async_trait]
impl MetricsSink for FakeMetrics {
    async fn publish(&self, metrics: &[Metric]) -> Result<(), MetricsError> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(metrics);
        Ok(())
    }
}

// A test keeps one handle to read back what was published and gives the function another.
#[async_trait]
impl<T: MetricsSink> MetricsSink for std::sync::Arc<T> {
    async fn publish(&self, metrics: &[Metric]) -> Result<(), MetricsError> {
        self.as_ref().publish(metrics).await
    }
}

/// The backup path, remembering each snapshot asked for; refusing when `refuse` is set.
#[derive(Default, Clone)]
pub struct FakeBackups {
    /// The reasons asked for, in order (shared by clones).
    pub asked: std::sync::Arc<Mutex<Vec<String>>>,
    /// Answer every request with an error.
    pub refuse: bool,
}

#[async_trait]
impl crate::cluster::ports::BackupTrigger for FakeBackups {
    async fn request_backup(
        &self,
        reason: &str,
    ) -> Result<(), crate::cluster::ports::TriggerError> {
        if self.refuse {
            return Err(crate::cluster::ports::TriggerError {
                function: "snapshot-backup".into(),
                reason: crate::errors::ServiceFailure::unavailable("throttled"),
            });
        }
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reason.to_owned());
        Ok(())
    }
}
