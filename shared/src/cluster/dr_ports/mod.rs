//! The ports a failover to the DR region stands on, besides those of [`super::ports`]:
//! the DNS record clients use to reach the cluster ([`DnsRecords`]), the operators'
//! notification topic ([`Notifier`]) and the size of an Auto Scaling group
//! ([`GroupCapacity`]), which fences the primary (scaled to 0) and brings the DR group up.
//! The adapters are `crate::aws::{Route53Records, SnsNotifier, AsgCapacity}`; the fakes
//! and the contracts both keep are in `crate::testing`.

mod capacity;
mod dns;
mod notify;

pub use capacity::{Capacity, CapacityError, GroupCapacity};
pub use dns::{DnsError, DnsRecords, DnsTarget, RecordValue};
pub use notify::{fit_subject, Notification, Notifier, NotifyError, MAX_SUBJECT_CHARS};
