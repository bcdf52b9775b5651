//! Fakes of the failover's ports: a DNS record, a notification topic and a group's size,
//! each plain state a test sets and reads back, with `fail_next` to fail one call as the
//! service would.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use async_trait::async_trait;

use crate::{
    cluster::dr_ports::{
        Capacity, CapacityError, DnsError, DnsRecords, DnsTarget, GroupCapacity, Notification,
        Notifier, NotifyError,
    },
    errors::ServiceFailure,
};

fn injected() -> ServiceFailure {
    ServiceFailure::unavailable("injected failure")
}

/// One DNS record; `None` until something points it somewhere.
#[derive(Default)]
pub struct FakeDns {
    /// Where the record points.
    pub record: Mutex<Option<DnsTarget>>,
    /// How many times `point_at` changed the record (an unchanged target does not count).
    pub changes: Mutex<u32>,
    /// Fail the next call (read or change) as the DNS service would, changing nothing.
    pub fail_next: AtomicBool,
}

impl FakeDns {
    /// A record that points at `target`.
    pub fn pointing_at(target: DnsTarget) -> Self {
        Self {
            record: Mutex::new(Some(target)),
            ..Self::default()
        }
    }

    fn failed(&self) -> Result<(), DnsError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(DnsError::Unavailable {
                record: "fake".into(),
                reason: injected(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl DnsRecords for FakeDns {
    async fn current(&self) -> Result<Option<DnsTarget>, DnsError> {
        self.failed()?;
        Ok(self
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn point_at(&self, target: &DnsTarget) -> Result<(), DnsError> {
        self.failed()?;
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if record.as_ref() != Some(target) {
            *record = Some(target.clone());
            *self.changes.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        }
        Ok(())
    }
}

/// A topic that keeps every notification, fitted as the real topic receives it.
#[derive(Default)]
pub struct FakeNotifier {
    /// Everything sent, oldest first.
    pub sent: Mutex<Vec<Notification>>,
    /// Fail the next notification as the service would, sending nothing.
    pub fail_next: AtomicBool,
}

impl FakeNotifier {
    /// A copy of everything sent, oldest first.
    pub fn sent(&self) -> Vec<Notification> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Notifier for FakeNotifier {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), NotifyError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(NotifyError::Unavailable {
                topic: "fake".into(),
                reason: injected(),
            });
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Notification::fitted(subject, message));
        Ok(())
    }
}

/// A group's size, refusing what Auto Scaling refuses (a desired capacity outside the
/// bounds), which moto accepts.
pub struct FakeGroup {
    /// The group's name, in errors.
    pub name: String,
    /// Its bounds and desired capacity.
    pub capacity: Mutex<Capacity>,
    /// Fail the next call as Auto Scaling would, changing nothing.
    pub fail_next: AtomicBool,
}

impl FakeGroup {
    /// A group named `name` with bounds `min..=max`, aiming for `desired`.
    pub fn new(name: &str, min: u32, max: u32, desired: u32) -> Self {
        Self {
            name: name.to_owned(),
            capacity: Mutex::new(Capacity { min, max, desired }),
            fail_next: AtomicBool::new(false),
        }
    }

    /// The capacity now.
    pub fn now(&self) -> Capacity {
        *self.capacity.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> Result<(), CapacityError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(CapacityError::Unavailable {
                group: self.name.clone(),
                reason: injected(),
            });
        }
        Ok(())
    }

    /// Sets min and desired after checking them as Auto Scaling does.
    fn set(&self, min: Option<u32>, desired: u32) -> Result<(), CapacityError> {
        self.failed()?;
        let mut capacity = self.capacity.lock().unwrap_or_else(|p| p.into_inner());
        *capacity = capacity.resized(&self.name, min, desired)?;
        Ok(())
    }
}

#[async_trait]
impl GroupCapacity for FakeGroup {
    async fn capacity(&self) -> Result<Capacity, CapacityError> {
        self.failed()?;
        Ok(self.now())
    }

    async fn set_desired(&self, desired: u32) -> Result<(), CapacityError> {
        self.set(None, desired)
    }

    async fn resize(&self, min: u32, desired: u32) -> Result<(), CapacityError> {
        self.set(Some(min), desired)
    }
}

// Shared fakes: a test keeps one handle to read back and gives the function another.

#[async_trait]
impl<T: DnsRecords> DnsRecords for Arc<T> {
    async fn current(&self) -> Result<Option<DnsTarget>, DnsError> {
        self.as_ref().current().await
    }
    async fn point_at(&self, target: &DnsTarget) -> Result<(), DnsError> {
        self.as_ref().point_at(target).await
    }
}

#[async_trait]
impl<T: Notifier> Notifier for Arc<T> {
    async fn notify(&self, subject: &str, message: &str) -> Result<(), NotifyError> {
        self.as_ref().notify(subject, message).await
    }
}

#[async_trait]
impl<T: GroupCapacity> GroupCapacity for Arc<T> {
    async fn capacity(&self) -> Result<Capacity, CapacityError> {
        self.as_ref().capacity().await
    }
    async fn set_desired(&self, desired: u32) -> Result<(), CapacityError> {
        self.as_ref().set_desired(desired).await
    }
    async fn resize(&self, min: u32, desired: u32) -> Result<(), CapacityError> {
        self.as_ref().resize(min, desired).await
    }
}
