use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use aws_sdk_autoscaling::types::LifecycleState;
use tracing::warn;

use super::describe;
use crate::{
    cluster::ports::{Fleet, FleetError, FleetNode},
    config::ClusterSettings,
    ids::{InstanceId, NodeAddr},
};

/// How many instances' addresses one fleet remembers; past it, it forgets them all.
const KNOWN: usize = 1024;

/// The cluster's Auto Scaling group, each node addressed by the private IP EC2 reports.
#[derive(Clone, Debug)]
pub struct AsgFleet {
    autoscaling: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    settings: ClusterSettings,
    /// The address (from the private IP EC2 reported) of each member seen so far. An instance keeps its
    /// primary private IP for its whole life, so a listing of the group's members asks
    /// EC2 only about instances it has not seen: the waits of a launch or a terminate
    /// list the group every few hundred milliseconds. A single instance's address
    /// ([`Fleet::node`]) is always asked of EC2: that instance may be gone, and its IP
    /// given to another.
    known: Arc<Mutex<HashMap<String, NodeAddr>>>,
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
            known: Arc::default(),
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

    /// Each instance's node address, from EC2. An instance that EC2 reports without a
    /// private IP (it is being created or has gone) is skipped with a warning, so one such
    /// instance never stops a function that works on the others; [`AsgFleet::node`] names
    /// it instead.
    async fn addresses(&self, ids: Vec<String>) -> Result<Vec<FleetNode>, FleetError> {
        let (mut nodes, unknown) = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let (mut nodes, mut unknown) = (Vec::new(), Vec::new());
            for id in ids {
                match known.get(&id) {
                    Some(addr) => nodes.push(FleetNode {
                        instance: InstanceId::from(id.as_str()),
                        addr: addr.clone(),
                    }),
                    None => unknown.push(id),
                }
            }
            (nodes, unknown)
        };
        let (described, skipped) = self.described(unknown).await?;
        {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() + described.len() > KNOWN {
                known.clear();
            }
            for node in &described {
                known.insert(node.instance.to_string(), node.addr.clone());
            }
        }
        for instance in &skipped {
            warn!(instance = %instance, group = %self.settings.asg, "instance skipped: EC2 reports no private IP for it");
        }
        nodes.extend(described);
        nodes.sort();
        Ok(nodes)
    }

    /// The nodes of `ids` that EC2 reports with a private IP, and those it reports without.
    async fn described(
        &self,
        ids: Vec<String>,
    ) -> Result<(Vec<FleetNode>, Vec<InstanceId>), FleetError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        // A group holds at most a few dozen instances: one page of DescribeInstances.
        let described = self
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        let reported = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| Some((i.instance_id()?, i.private_ip_address())));
        Ok(nodes_at_private_ips(&self.settings, reported))
    }
}

/// The node of each `(instance, private IP)` that EC2 reported, sorted, and the instances
/// without a usable IP. The private IP that EC2 reports, never a tag: whoever may tag an
/// instance must not be able to choose where a share or a credential is sent.
fn nodes_at_private_ips<'a>(
    settings: &ClusterSettings,
    reported: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> (Vec<FleetNode>, Vec<InstanceId>) {
    let (mut nodes, mut skipped) = (Vec::new(), Vec::new());
    for (id, ip) in reported {
        match ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
            Some(ip) => nodes.push(FleetNode {
                instance: InstanceId::from(id),
                addr: settings.node_addr(ip),
            }),
            None => skipped.push(InstanceId::from(id)),
        }
    }
    nodes.sort();
    (nodes, skipped)
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
        match self.described(vec![instance.to_string()]).await {
            Ok((_, skipped)) if skipped.contains(instance) => Err(FleetError::NoAddress {
                instance: instance.clone(),
            }),
            Ok((nodes, _)) => Ok(nodes.into_iter().next()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    #[test]
    fn an_instance_without_a_private_ip_is_skipped_and_named() {
        let settings = ClusterSettings::from_env(&Env::from_pairs([
            ("CLUSTER_NAME", "prod"),
            ("ASG_NAME", "vault"),
        ]))
        .expect("settings");
        let reported = [
            ("i-0b", Some("10.0.1.12")),
            ("i-0c", None),
            ("i-0d", Some("not an ip")),
            ("i-0a", Some("10.0.1.11")),
        ];
        let (nodes, skipped) = nodes_at_private_ips(&settings, reported.into_iter());
        let listed: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (n.instance.to_string(), n.addr.to_string()))
            .collect();
        assert_eq!(
            listed,
            [
                ("i-0a".to_owned(), "https://10.0.1.11:8200".to_owned()),
                ("i-0b".to_owned(), "https://10.0.1.12:8200".to_owned()),
            ]
        );
        assert_eq!(
            skipped,
            [InstanceId::from("i-0c"), InstanceId::from("i-0d")]
        );
    }
}
