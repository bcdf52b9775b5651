//! The bed every node-lifecycle test stands on: the function over the fakes, with the
//! handles a test reads back, and switches that cut a run off at a chosen write.

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{super::*, ports::*};
use crate::{
    cluster::{auth::VaultLogin, lifecycle_actions::Verdict},
    config::AuthSettings,
    testing::{FailingNode, FakeActions, FakeCluster, FakeLocks},
};

type Function = NodeLifecycle<FailingNode<FakeCluster>, Ssm>;

/// node-lifecycle over a `FakeCluster` that a `FailingNode` can cut off, and a handle on
/// every other port it writes to.
pub(super) struct Bed {
    pub(super) function: Function,
    pub(super) fleet: Group,
    pub(super) ssm: Ssm,
    /// SSM in the DR region.
    pub(super) dr_ssm: Ssm,
    pub(super) actions: Arc<FakeActions>,
    pub(super) records: Records,
    pub(super) locks: Arc<FakeLocks>,
    pub(super) metrics: Metrics,
}

fn settings() -> LifecycleSettings {
    LifecycleSettings {
        cluster: "prod".parse().unwrap_or_else(|e| panic!("{e}")),
        asg: "vault-prod".into(),
        ssm_path: "/vault-lifecycle/prod".into(),
        kms_key: "alias/vault".into(),
        key_shares: 5,
        key_threshold: 3,
        keep_root_token: false,
        approle_mount: "approle".into(),
        leader_ca_pem: None,
        // The production defaults: the clock is paused, so long waits cost nothing.
        node_api_timeout: Duration::from_secs(600),
        voter_timeout: Duration::from_secs(300),
        replacement_timeout: Duration::from_secs(600),
        departed_peer_grace: Duration::from_secs(300),
        heartbeat_interval: Duration::from_secs(60),
        init_lock_ttl: Duration::from_secs(900),
        init_timeout: crate::config::DEFAULT_INIT_TIMEOUT,
        approle_functions: crate::lifecycle::settings::DEPLOYED_FUNCTIONS.to_vec(),
        standby_of: None,
        approle_limits: crate::cluster::node::AppRoleLimits {
            secret_id_ttl: Duration::from_secs(2160 * 3600),
            bound_cidrs: vec!["10.0.1.0/24".into()],
        },
    }
}

impl Bed {
    fn over(cluster: FakeCluster) -> Self {
        let settings = settings();
        let auth = AuthSettings::AppRole {
            mount: "approle".into(),
            role_id_parameter: settings.approle_parameter("node-lifecycle", "role-id"),
            secret_id_parameter: settings.approle_parameter("node-lifecycle", "secret-id"),
        };
        let (fleet, ssm, records, metrics) = (
            Group::default(),
            Ssm::default(),
            Records::default(),
            Metrics::default(),
        );
        let (actions, locks) = (
            Arc::new(FakeActions::default()),
            Arc::new(FakeLocks::default()),
        );
        let dr_ssm = Ssm::default();
        Bed {
            function: NodeLifecycle {
                settings,
                fleet: Box::new(fleet.clone()),
                vault: FailingNode::new(cluster),
                parameters: ssm.clone(),
                login: VaultLogin::new(auth, ssm.clone()),
                locks: Box::new(locks.clone()),
                actions: Box::new(actions.clone()),
                records: Box::new(records.clone()),
                metrics: Box::new(metrics.clone()),
                dr_keys: Some(crate::lifecycle::dr_keys::DrKeys {
                    parameters: dr_ssm.clone(),
                    kms_key: "alias/vault-dr".into(),
                }),
                fence: None,
            },
            fleet,
            ssm,
            dr_ssm,
            actions,
            records,
            locks,
            metrics,
        }
    }

    /// Nodes that hold nothing yet, none of them in the group.
    pub(super) fn fresh(instances: &[&str]) -> Self {
        Self::over(FakeCluster::fresh(instances))
    }

    /// A running cluster this function bootstrapped: every node a healthy voter and a
    /// member, the first one active, the shares and this function's credentials in SSM.
    pub(super) fn running(instances: &[&str]) -> Self {
        use crate::lifecycle::records::{InitRecord, InitStage};

        let bed = Self::over(FakeCluster::healthy(instances));
        for instance in instances {
            bed.fleet.add(bed.cluster(), instance);
            bed.fleet.set_state(instance, "InService");
        }
        for (n, share) in bed.cluster().shares().iter().enumerate() {
            bed.ssm.put(&bed.share(n + 1), share.expose());
        }
        let s = &bed.function.settings;
        bed.ssm.put(
            &s.approle_parameter("node-lifecycle", "role-id"),
            "fake-role-id-node-lifecycle",
        );
        bed.ssm.put(
            &s.approle_parameter("node-lifecycle", "secret-id"),
            "fake-secret-id-node-lifecycle-1",
        );
        if let Ok(mut init) = bed.records.table.init.lock() {
            *init = Some(InitRecord {
                stage: InitStage::Bootstrapped,
                node: instances[0].into(),
                cluster_id: Some("c-1".into()),
                recovery: false,
            });
        }
        bed
    }

    /// The init record of a cluster bootstrapped on `i-1`, which is no longer there:
    /// the cluster exists and has no node left.
    pub(super) fn cluster_exists_without_nodes(&self) {
        use crate::lifecycle::records::{InitRecord, InitStage};
        if let Ok(mut init) = self.records.table.init.lock() {
            *init = Some(InitRecord {
                stage: InitStage::Bootstrapped,
                node: "i-1".into(),
                cluster_id: Some("c-1".into()),
                recovery: false,
            });
        }
    }

    pub(super) fn cluster(&self) -> &FakeCluster {
        &self.function.vault.inner
    }

    pub(super) fn node(&self) -> &FailingNode<FakeCluster> {
        &self.function.vault
    }

    /// The unseal share parameter `n` (from 1).
    pub(super) fn share(&self, n: usize) -> String {
        self.function.settings.share_parameter(false, n)
    }

    /// The unseal shares in SSM, in order, as far as they go without a gap.
    pub(super) fn stored_shares(&self) -> Vec<String> {
        (1..=10)
            .map_while(|n| self.ssm.value(&self.share(n)))
            .collect()
    }

    /// The cluster's shares, in order.
    pub(super) fn cluster_shares(&self) -> Vec<String> {
        self.cluster()
            .shares()
            .iter()
            .map(|s| s.expose().to_owned())
            .collect()
    }

    pub(super) fn root_token_parameter(&self) -> Option<String> {
        self.ssm
            .value(&self.function.settings.root_token_parameter())
    }

    pub(super) fn verdict(&self, token: &str) -> Option<Verdict> {
        self.actions.completed.lock().ok()?.get(token).copied()
    }

    pub(super) fn heartbeats(&self) -> u32 {
        self.actions.heartbeats.lock().map(|h| *h).unwrap_or(0)
    }

    pub(super) fn lock_holder(&self) -> Option<String> {
        let held = self.locks.held.lock().ok()?;
        held.get("init").map(|(owner, _)| owner.clone())
    }

    pub(super) async fn launch(
        &self,
        instance: &str,
        token: &str,
    ) -> Result<Outcome, LifecycleError> {
        self.function
            .run(&action_event(Transition::Launching, instance, token), far())
            .await
    }

    /// The launch of `instance` in an invocation that ends at `deadline`.
    pub(super) async fn launch_until(
        &self,
        instance: &str,
        token: &str,
        deadline: Instant,
    ) -> Result<Outcome, LifecycleError> {
        self.function
            .run(
                &action_event(Transition::Launching, instance, token),
                deadline,
            )
            .await
    }

    pub(super) async fn terminate(
        &self,
        instance: &str,
        token: &str,
    ) -> Result<Outcome, LifecycleError> {
        self.function
            .run(
                &action_event(Transition::Terminating, instance, token),
                far(),
            )
            .await
    }

    pub(super) async fn reconcile(&self) -> crate::lifecycle::reconcile::ReconcileReport {
        match self
            .function
            .run(&json!({"action": "reconcile"}), far())
            .await
        {
            Ok(Outcome::Reconciled(report)) => report,
            other => panic!("reconcile: {other:?}"),
        }
    }

    /// Launches `instance` into the group and expects it to become a voter.
    pub(super) async fn launched(&self, instance: &str) -> crate::lifecycle::launch::LaunchReport {
        self.fleet.add(self.cluster(), instance);
        match self.launch(instance, &format!("t-{instance}")).await {
            Ok(Outcome::Launched(report)) => report,
            other => panic!("launch of {instance}: {other:?}"),
        }
    }

    pub(super) fn untouched(&self) -> bool {
        self.actions
            .completed
            .lock()
            .map(|m| m.is_empty())
            .unwrap_or(false)
            && self
                .records
                .table
                .actions
                .lock()
                .map(|m| m.is_empty())
                .unwrap_or(false)
            && self
                .locks
                .held
                .lock()
                .map(|m| m.is_empty())
                .unwrap_or(false)
            && self.records.init_stage().is_none()
    }
}

pub(super) fn action_event(transition: Transition, instance: &str, token: &str) -> Value {
    let (detail_type, transition) = match transition {
        Transition::Launching => (
            "EC2 Instance-launch Lifecycle Action",
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        ),
        Transition::Terminating => (
            "EC2 Instance-terminate Lifecycle Action",
            "autoscaling:EC2_INSTANCE_TERMINATING",
        ),
    };
    json!({
        "version": "0", "id": "e-1", "source": "aws.autoscaling", "account": "123456789012",
        "time": "2026-11-23T10:00:00Z", "region": "eu-west-1", "resources": [],
        "detail-type": detail_type,
        "detail": {
            "LifecycleActionToken": token,
            "AutoScalingGroupName": "vault-prod",
            "LifecycleHookName": "hook",
            "EC2InstanceId": instance,
            "LifecycleTransition": transition
        }
    })
}

/// `event` with the `Origin` and `Destination` a group with a warm pool sends.
pub(super) fn between(mut event: Value, origin: &str, destination: &str) -> Value {
    event["detail"]["Origin"] = json!(origin);
    event["detail"]["Destination"] = json!(destination);
    event
}

pub(super) fn launch_event(group: &str) -> Value {
    let mut event = action_event(Transition::Launching, "i-0123456789abcdef0", "token-5e1f");
    event["detail"]["AutoScalingGroupName"] = json!(group);
    event
}

/// A Lambda's longest invocation.
pub(super) fn far() -> Instant {
    Instant::now() + Duration::from_secs(900)
}

pub(super) fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}
