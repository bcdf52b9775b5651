//! The size of an Auto Scaling group: the DR group is brought up, the primary's fenced
//! (scaled to 0), and each returned to its idle size afterwards.

use std::fmt;

use async_trait::async_trait;

use crate::errors::{Classify, ServiceFailure};

/// An Auto Scaling group's size bounds and the number of instances it aims for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capacity {
    /// The fewest instances the group keeps.
    pub min: u32,
    /// The most instances the group may have.
    pub max: u32,
    /// How many instances the group aims for now.
    pub desired: u32,
}

impl Capacity {
    /// This capacity with `min` (the group's own when `None`) and `desired`, once checked
    /// that `min <= desired <= max`, as Auto Scaling checks it; else
    /// [`CapacityError::OutOfBounds`] naming `group`.
    pub fn resized(
        &self,
        group: &str,
        min: Option<u32>,
        desired: u32,
    ) -> Result<Capacity, CapacityError> {
        let min = min.unwrap_or(self.min);
        if min > desired || desired > self.max {
            return Err(CapacityError::OutOfBounds {
                group: group.to_owned(),
                desired,
                min,
                max: self.max,
            });
        }
        Ok(Capacity {
            min,
            max: self.max,
            desired,
        })
    }
}

/// `min 0, desired 3, max 5`.
impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { min, desired, max } = self;
        write!(f, "min {min}, desired {desired}, max {max}")
    }
}

/// Why a group's size could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// The group does not exist: a configuration error.
    #[error("auto scaling group {group} does not exist; check the group's name")]
    NoSuchGroup {
        /// The group.
        group: String,
    },
    /// The size asked for lies outside the group's bounds. Checked before asking Auto
    /// Scaling, which refuses it too (moto does not).
    #[error(
        "auto scaling group {group} cannot aim for {desired} instances with min {min} and \
         max {max}; nothing was changed"
    )]
    OutOfBounds {
        /// The group.
        group: String,
        /// The desired capacity asked for.
        desired: u32,
        /// The lower bound it was checked against (the group's, or the one asked for).
        min: u32,
        /// The group's upper bound.
        max: u32,
    },
    /// Auto Scaling failed or denied the call (the SDK already retried).
    #[error("cannot read or change the size of auto scaling group {group}: {reason}")]
    Unavailable {
        /// The group.
        group: String,
        /// The service's error, with its context.
        #[source]
        reason: ServiceFailure,
    },
}

impl Classify for CapacityError {
    fn retry_helps(&self) -> bool {
        matches!(self, Self::Unavailable { reason, .. } if reason.retry_helps())
    }
    fn name(&self) -> &'static str {
        match self {
            Self::NoSuchGroup { .. } => "NoSuchGroup",
            Self::OutOfBounds { .. } => "CapacityOutOfBounds",
            Self::Unavailable { reason, .. } => reason.name("CapacityUnavailable"),
        }
    }
}

/// One Auto Scaling group's size (the group fixed when built). Its maximum is the
/// infrastructure's ceiling and is never changed here.
#[async_trait]
pub trait GroupCapacity: Send + Sync {
    /// The group's bounds and desired capacity now.
    async fn capacity(&self) -> Result<Capacity, CapacityError>;

    /// Sets the desired capacity within the group's bounds, at once (cooldowns are not
    /// honoured: a failover does not wait for them). Refused with
    /// [`CapacityError::OutOfBounds`], nothing changed, outside `min..=max`. Idempotent.
    async fn set_desired(&self, desired: u32) -> Result<(), CapacityError>;

    /// Sets the minimum and the desired capacity together: how a group is scaled to 0
    /// (`resize(0, 0)` fences a primary whose minimum is 3) and given back its size.
    /// Refused with [`CapacityError::OutOfBounds`], nothing changed, unless
    /// `min <= desired <= max`. Idempotent.
    async fn resize(&self, min: u32, desired: u32) -> Result<(), CapacityError>;
}
