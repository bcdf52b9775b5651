//! Launches given up: `LaunchAbandoned`, published when the function abandons a launch,
//! and when the terminate of an instance shows that the hook's timeout abandoned its
//! launch after errors.

use tracing::warn;

use super::NodeLifecycle;
use crate::{
    cluster::{node::NodeApi, ports::ParameterStore},
    error_chain,
    events::LifecycleAction,
    ids::InstanceId,
    telemetry::{Metric, Unit},
};

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// A terminate of an instance whose launch was started and never completed: the
    /// launch hook's timeout abandoned it (after errors, or a run cut off for good), so
    /// it is counted as an abandoned launch, once (the terminate's first delivery).
    pub(super) async fn count_launch_abandoned_by_timeout(&self, action: &LifecycleAction) {
        match self
            .records
            .unfinished_launch(&action.group, &action.instance)
            .await
        {
            Ok(true) => {
                warn!(instance = %action.instance, "the instance's launch never completed: its hook's timeout abandoned it; counted as an abandoned launch");
                self.count_abandoned(&action.instance).await;
            }
            Ok(false) => {}
            Err(e) => {
                warn!(instance = %action.instance, error = %error_chain(&e), "cannot tell whether the instance's launch completed; not counted");
            }
        }
    }

    pub(crate) async fn count_abandoned(&self, instance: &InstanceId) {
        let metric = Metric::cluster(
            self.settings.cluster.as_str(),
            "LaunchAbandoned",
            1.0,
            Unit::Count,
        );
        if let Err(e) = self.metrics.publish(&[metric]).await {
            warn!(instance = %instance, error = %error_chain(&e), "abandon not counted in metrics");
        }
    }
}
