//! An Auto Scaling group's size: DescribeAutoScalingGroups to read it,
//! SetDesiredCapacity or UpdateAutoScalingGroup to change it.

use async_trait::async_trait;
use tracing::info;

use super::describe;
use crate::cluster::dr_ports::{Capacity, CapacityError, GroupCapacity};

/// One Auto Scaling group's size.
#[derive(Clone, Debug)]
pub struct AsgCapacity {
    client: aws_sdk_autoscaling::Client,
    group: String,
}

impl AsgCapacity {
    /// The size of `group`, read and changed through `client`.
    pub fn new(client: aws_sdk_autoscaling::Client, group: String) -> Self {
        Self { client, group }
    }

    fn unavailable(&self, reason: crate::errors::ServiceFailure) -> CapacityError {
        CapacityError::Unavailable {
            group: self.group.clone(),
            reason,
        }
    }

    /// The group's capacity now, and what it becomes with `min` and `desired`, once
    /// checked against its bounds.
    async fn resized(
        &self,
        min: Option<u32>,
        desired: u32,
    ) -> Result<(Capacity, Capacity), CapacityError> {
        let now = self.capacity().await?;
        let next = now.resized(&self.group, min, desired)?;
        Ok((now, next))
    }
}

/// A size Auto Scaling reported as an `i32`; it never reports a negative one.
fn size(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// A size already checked against the group's maximum, which Auto Scaling holds as an
/// `i32`: it fits.
fn wire(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[async_trait]
impl GroupCapacity for AsgCapacity {
    async fn capacity(&self) -> Result<Capacity, CapacityError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.group)
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        let group = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(self.group.as_str()))
            .ok_or_else(|| CapacityError::NoSuchGroup {
                group: self.group.clone(),
            })?;
        Ok(Capacity {
            min: size(group.min_size()),
            max: size(group.max_size()),
            desired: size(group.desired_capacity()),
        })
    }

    /// Asks Auto Scaling only when the desired capacity differs.
    async fn set_desired(&self, desired: u32) -> Result<(), CapacityError> {
        let (now, next) = self.resized(None, desired).await?;
        if now == next {
            return Ok(());
        }
        self.client
            .set_desired_capacity()
            .auto_scaling_group_name(&self.group)
            .desired_capacity(wire(desired))
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        info!(group = %self.group, from = now.desired, to = desired, "set desired capacity");
        Ok(())
    }

    /// Asks Auto Scaling only when the minimum or the desired capacity differs.
    async fn resize(&self, min: u32, desired: u32) -> Result<(), CapacityError> {
        let (now, next) = self.resized(Some(min), desired).await?;
        if now == next {
            return Ok(());
        }
        self.client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&self.group)
            .min_size(wire(min))
            .desired_capacity(wire(desired))
            .send()
            .await
            .map_err(|e| self.unavailable(describe(e)))?;
        info!(group = %self.group, from = %now, min, desired, "resized group");
        Ok(())
    }
}
