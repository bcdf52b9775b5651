use std::net::IpAddr;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::LifecycleState;

use super::describe;
use crate::{
    cluster::ports::{Fleet, FleetError, FleetNode},
    config::ClusterSettings,
    ids::InstanceId,
};

/// The cluster's Auto Scaling group, each node addressed by the private IP EC2 reports.
#[derive(Clone, Debug)]
pub struct AsgFleet {
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    settings: ClusterSettings,
}

impl AsgFleet {
    /// A fleet over `settings.asg`, addressing nodes as `settings` says.
    pub fn new(
        autoscaling: aws_sdk_autoscaling::Client,
        ec2: aws_sdk_ec2::Client,
        settings: ClusterSettings,
    ) -> Self {
        Self {
            autoscaling,
            ec2,
            settings,
        }
    }

    fn unavailable(&self, reason: impl Into<crate::errors::ServiceFailure>) -> FleetError {
        FleetError::Unavailable {
            group: self.settings.asg.clone(),
            reason: reason.into(),
        }
    }

    /// The group's instances whose lifecycle state passes `keep`.
    async fn group_instances(
        &self,
        keep: impl Fn(&LifecycleState) -> bool,
    ) -> Result<Vec<FleetNode>, FleetError> {
        let group = &self.settings.asg;
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        let Some(found) = out.auto_scaling_groups().first() else {
            return Err(FleetError::NoSuchGroup {
                group: group.clone(),
            });
        };
        let ids: Vec<String> = found
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().is_some_and(&keep))
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        self.addresses(ids).await
    }

    /// Each instance's node address, from EC2.
    async fn addresses(&self, ids: Vec<String>) -> Result<Vec<FleetNode>, FleetError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // A group holds at most a few dozen instances: one page of DescribeInstances.
        let described = self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        let mut nodes = Vec::new();
        for instance in described.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = instance.instance_id() else {
                continue;
            };
            // The private IP that EC2 reports, never a tag: whoever may tag an instance
            // must not be able to choose where a share or a credential is sent.
            let ip = instance
                .private_ip_address()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .ok_or_else(|| FleetError::NoAddress {
                    instance: id.into(),
                })?;
            let addr = self.settings.node_addr(ip);
            nodes.push(FleetNode {
                instance: InstanceId::from(id),
                addr,
            });
        }
        nodes.sort();
        Ok(nodes)
    }
}

#[async_trait]
impl Fleet for AsgFleet {
    async fn in_service(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.group_instances(|state| *state == LifecycleState::InService)
            .await
    }

    async fn members(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.group_instances(|state| {
            matches!(
                state,
                LifecycleState::InService
                    | LifecycleState::Pending
                    | LifecycleState::PendingWait
                    | LifecycleState::PendingProceed
            )
        })
        .await
    }

    async fn instances(&self) -> Result<Vec<FleetNode>, FleetError> {
        self.group_instances(|_| true).await
    }

    async fn node(&self, instance: &InstanceId) -> Result<Option<FleetNode>, FleetError> {
        match self.addresses(vec![instance.to_string()]).await {
            Ok(nodes) => Ok(nodes.into_iter().next()),
            // EC2 answers InvalidInstanceID.NotFound for an instance it forgot.
            Err(FleetError::Unavailable { reason, .. }) if reason.detail.contains("NotFound") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// DescribeAutoScalingInstances reports warm pool instances too (`Warmed:*` states).
    async fn lifecycle_state(&self, instance: &InstanceId) -> Result<Option<String>, FleetError> {
        let out = self
            .autoscaling
            .describe_auto_scaling_instances()
            .instance_ids(instance.as_str())
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        Ok(out
            .auto_scaling_instances()
            .iter()
            .filter(|i| i.instance_id() == Some(instance.as_str()))
            .filter(|i| i.auto_scaling_group_name() == Some(self.settings.asg.as_str()))
            .find_map(|i| i.lifecycle_state().map(str::to_owned)))
    }
}
