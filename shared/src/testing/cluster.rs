use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};

use crate::{
    cluster::ports::{
        Fleet, FleetError, FleetNode, IamLoginRequest, NodeApi, ParameterError, ParameterStore,
        Stored,
    },
    ids::{InstanceId, NodeAddr},
    secret::Secret,
    telemetry::{Metric, MetricsError, MetricsSink},
    vault::{AutopilotServer, AutopilotState, Health, Login, VaultError},
};

/// One fake node: what it answers.
#[derive(Debug, Clone)]
pub struct FakeNode {
    /// `None`: it does not answer at all.
    pub health: Option<Health>,
    /// Autopilot's view of it, when it is a Raft peer.
    pub autopilot: Option<AutopilotServer>,
}

/// A cluster of fake nodes behind the `NodeApi` port. Node `i-1` answers at
/// `https://i-1.test:8200`.
#[derive(Default)]
pub struct FakeCluster {
    /// The nodes, by instance id.
    pub nodes: Mutex<BTreeMap<String, FakeNode>>,
    /// Autopilot's cluster-wide failure tolerance.
    pub failure_tolerance: Mutex<u32>,
    /// Logins made.
    pub login_count: AtomicUsize,
    /// Answer 400 to every login.
    pub refuse_logins: AtomicBool,
    /// Answer 403 to autopilot's state, as Vault does when a policy lacks the path.
    pub deny_autopilot: AtomicBool,
}

fn health(code: u16, sealed: bool) -> Health {
    Health {
        code,
        initialized: true,
        sealed,
        standby: code == 429,
        version: "2.7.2".into(),
        cluster_id: Some("c-1".into()),
    }
}

impl FakeCluster {
    /// Unsealed voters, the first one active, failure tolerance (n-1)/2.
    pub fn healthy(instances: &[&str]) -> Self {
        let cluster = Self::default();
        for (i, id) in instances.iter().enumerate() {
            let status = if i == 0 { "leader" } else { "voter" };
            let node = FakeNode {
                health: Some(health(if i == 0 { 200 } else { 429 }, false)),
                autopilot: Some(AutopilotServer {
                    id: id.to_string(),
                    healthy: true,
                    status: status.into(),
                    last_contact: Some(Duration::from_millis(5)),
                    stable_since: None,
                }),
            };
            cluster.lock().insert(id.to_string(), node);
        }
        *cluster
            .failure_tolerance
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (instances.len().saturating_sub(1) / 2) as u32;
        cluster
    }

    /// Every login is refused with 400, as Vault does for a wrong secret ID.
    pub fn refusing_logins(self) -> Self {
        self.refuse_logins.store(true, Ordering::SeqCst);
        self
    }

    /// The address the fake answers at for `instance`.
    pub fn addr(&self, instance: &str) -> NodeAddr {
        format!("https://{instance}.test:8200")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The node stops answering.
    pub fn kill(&self, instance: &str) {
        if let Some(node) = self.lock().get_mut(instance) {
            node.health = None;
        }
    }

    /// The node answers 503 sealed; autopilot marks it unhealthy.
    pub fn seal(&self, instance: &str) {
        if let Some(node) = self.lock().get_mut(instance) {
            node.health = Some(health(503, true));
            if let Some(a) = node.autopilot.as_mut() {
                a.healthy = false;
            }
        }
    }

    /// Logins made so far.
    pub fn logins(&self) -> usize {
        self.login_count.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FakeNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, addr: &NodeAddr) -> Option<FakeNode> {
        let instance = addr
            .as_str()
            .trim_start_matches("https://")
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        self.lock().get(&instance).cloned()
    }
}

fn unreachable(addr: &NodeAddr, path: &str) -> VaultError {
    VaultError::Status {
        node: addr.clone(),
        method: Method::GET,
        path: path.into(),
        status: StatusCode::SERVICE_UNAVAILABLE,
        errors: vec!["fake node is down".into()],
    }
}

#[async_trait]
impl NodeApi for FakeCluster {
    async fn health(&self, node: &NodeAddr) -> Result<Health, VaultError> {
        self.node(node)
            .and_then(|n| n.health)
            .ok_or_else(|| unreachable(node, "sys/health"))
    }

    async fn approle_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        _role_id: &Secret,
        _secret_id: &Secret,
    ) -> Result<Login, VaultError> {
        self.login_count.fetch_add(1, Ordering::SeqCst);
        if self.refuse_logins.load(Ordering::SeqCst) {
            return Err(VaultError::Status {
                node: node.clone(),
                method: Method::POST,
                path: format!("auth/{mount}/login"),
                status: StatusCode::BAD_REQUEST,
                errors: vec!["invalid role or secret ID".into()],
            });
        }
        let n = self.login_count.load(Ordering::SeqCst);
        Ok(Login {
            token: Secret::new(format!("fake-token-{n}")),
            lease: Duration::from_secs(300),
        })
    }

    async fn aws_login(
        &self,
        node: &NodeAddr,
        mount: &str,
        _role: &str,
        _request: &IamLoginRequest,
    ) -> Result<Login, VaultError> {
        let nothing = Secret::new("");
        self.approle_login(node, mount, &nothing, &nothing).await
    }

    async fn autopilot_state(
        &self,
        node: &NodeAddr,
        _token: &Secret,
    ) -> Result<AutopilotState, VaultError> {
        if self.deny_autopilot.load(Ordering::SeqCst) {
            return Err(VaultError::Status {
                node: node.clone(),
                method: Method::GET,
                path: "sys/storage/raft/autopilot/state".into(),
                status: StatusCode::FORBIDDEN,
                errors: vec!["permission denied".into()],
            });
        }
        let nodes = self.lock().clone();
        if !nodes
            .values()
            .any(|n| n.health.as_ref().is_some_and(|h| h.code == 200))
        {
            return Err(unreachable(node, "sys/storage/raft/autopilot/state"));
        }
        let servers: BTreeMap<String, AutopilotServer> = nodes
            .into_values()
            .filter_map(|n| n.autopilot)
            .map(|a| (a.id.clone(), a))
            .collect();
        Ok(AutopilotState {
            healthy: servers.values().all(|s| s.healthy),
            failure_tolerance: *self
                .failure_tolerance
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            leader: servers
                .values()
                .find(|s| s.status == "leader")
                .map(|s| s.id.clone()),
            servers,
        })
    }
}

/// A fleet whose in-service instances a test sets.
#[derive(Default)]
pub struct FakeFleet {
    /// The in-service nodes.
    pub in_service: Mutex<Vec<FleetNode>>,
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
            fail_next: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl Fleet for FakeFleet {
    async fn in_service(&self) -> Result<Vec<FleetNode>, FleetError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(FleetError::Unavailable {
                group: "fake".into(),
                reason: "injected failure".into(),
            });
        }
        Ok(self
            .in_service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn node(&self, instance: &InstanceId) -> Result<Option<FleetNode>, FleetError> {
        Ok(self
            .in_service()
            .await?
            .into_iter()
            .find(|n| &n.instance == instance))
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
