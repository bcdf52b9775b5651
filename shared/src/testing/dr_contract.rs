//! The contracts of the failover's ports: one body of calls and expected outcomes per
//! port, run over the fakes of [`super::dr`] by the unit tests below and over the AWS
//! adapters against moto in `tests/tests/real/dr_adapters.rs`, so the fakes cannot drift
//! from the services. Each step reads back the state it changed.

use std::{fmt::Debug, future::Future, net::Ipv4Addr};

use crate::cluster::dr_ports::{
    Capacity, CapacityError, DnsRecords, DnsTarget, GroupCapacity, Notification, Notifier,
};

fn breach(step: &str, found: impl Debug) -> String {
    format!("contract broken at \"{step}\": found {found:?}")
}

fn target(
    made: Result<DnsTarget, crate::cluster::dr_ports::DnsError>,
) -> Result<DnsTarget, String> {
    made.map_err(|e| breach("build a target", e.to_string()))
}

/// The DNS record's contract. Starts with no record of the port's name: creates it as a
/// CNAME, repoints it (names differing only in case and final dot are the same), changes
/// its TTL, turns it into A records and back into a CNAME, reading it back each time.
pub async fn dns_contract(dns: &dyn DnsRecords) -> Result<(), String> {
    let read = |step: &'static str| async move {
        dns.current().await.map_err(|e| breach(step, e.to_string()))
    };
    if let Some(found) = read("read a record never written").await? {
        return Err(breach("no record at first", found));
    }
    let primary = target(DnsTarget::cname("vault.primary.example.com", 60))?;
    let dr = target(DnsTarget::cname("Vault.DR.Example.com.", 60))?;
    let dr_short = target(DnsTarget::cname("vault.dr.example.com", 15))?;
    let ip = |s: &str| s.parse::<Ipv4Addr>().map_err(|e| e.to_string());
    let addrs = target(DnsTarget::a([ip("10.0.0.2")?, ip("10.0.0.1")?], 15))?;
    let other_addrs = target(DnsTarget::a([ip("10.0.0.3")?], 15))?;
    let steps = [
        ("create the record as a CNAME", &primary),
        ("point it at the same target again", &primary),
        ("repoint the CNAME", &dr),
        ("change the TTL", &dr_short),
        ("turn the CNAME into A records", &addrs),
        ("change the addresses", &other_addrs),
        ("turn the A records back into a CNAME", &primary),
    ];
    for (step, wanted) in steps {
        dns.point_at(wanted)
            .await
            .map_err(|e| breach(step, e.to_string()))?;
        match read(step).await? {
            Some(found) if found == *wanted => {}
            found => return Err(breach(step, (wanted.to_string(), found))),
        }
    }
    Ok(())
}

/// The notification topic's contract: two notifications, one with a subject too long
/// and on two lines, arrive in order, fitted by [`Notification::fitted`]. `sent` reads
/// back every notification the topic received so far, oldest first.
pub async fn notifier_contract<F, Fut>(notifier: &dyn Notifier, sent: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Vec<Notification>, String>>,
{
    let before = sent().await?.len();
    let long_subject = format!("dr-failover: DNS switched\nto {}", "région-é ".repeat(20));
    let wanted = [
        (
            "dr-failover: failover started",
            "phase: fence\nphase: restore",
        ),
        (
            long_subject.as_str(),
            "record vault.example.com now points at the DR cluster",
        ),
    ];
    for (subject, message) in wanted {
        notifier
            .notify(subject, message)
            .await
            .map_err(|e| breach("notify", e.to_string()))?;
    }
    let received = sent().await?;
    let new = received.get(before..).unwrap_or_default();
    let expected: Vec<Notification> = wanted
        .iter()
        .map(|(s, m)| Notification::fitted(s, m))
        .collect();
    if new != expected.as_slice() {
        return Err(breach("read back what was sent", new));
    }
    Ok(())
}

/// The group size's contract. Starts with a group of min 0 and max at least 3: sets the
/// desired capacity within the bounds (twice: idempotent), raises the minimum, scales
/// the group to 0 (min 0, desired 0: a fenced primary); every request outside the
/// bounds is refused with `OutOfBounds`, naming them, and changes nothing.
pub async fn group_contract(group: &dyn GroupCapacity) -> Result<(), String> {
    let read = |step: &'static str| async move {
        group
            .capacity()
            .await
            .map_err(|e| breach(step, e.to_string()))
    };
    let first = read("read the group").await?;
    if first.min != 0 || first.max < 3 {
        return Err(breach("start with min 0 and max 3 or more", first));
    }
    let max = first.max;
    let at = |min, desired| Capacity { min, max, desired };
    let expect = |step: &'static str, wanted: Capacity| async move {
        match read(step).await? {
            found if found == wanted => Ok(()),
            found => Err(breach(step, (wanted, found))),
        }
    };
    let refused =
        |step: &'static str, answer: Result<(), CapacityError>, (min, desired)| match answer {
            Err(CapacityError::OutOfBounds {
                desired: d,
                min: m,
                max: x,
                ..
            }) if (m, d, x) == (min, desired, max) => Ok(()),
            other => Err(breach(step, other.map_err(|e| e.to_string()))),
        };
    let ok = |step: &'static str, answer: Result<(), CapacityError>| {
        answer.map_err(|e| breach(step, e.to_string()))
    };

    ok("set desired 2", group.set_desired(2).await)?;
    expect("desired 2", at(0, 2)).await?;
    ok("set desired 2 again", group.set_desired(2).await)?;
    expect("still desired 2", at(0, 2)).await?;
    refused(
        "desired above max",
        group.set_desired(max + 1).await,
        (0, max + 1),
    )?;
    expect("unchanged by a desired above max", at(0, 2)).await?;

    ok("resize to min 2, desired 3", group.resize(2, 3).await)?;
    expect("min 2, desired 3", at(2, 3)).await?;
    refused("desired below min", group.set_desired(1).await, (2, 1))?;
    refused("min above desired", group.resize(3, 2).await, (3, 2))?;
    refused(
        "min above max",
        group.resize(max + 1, max + 1).await,
        (max + 1, max + 1),
    )?;
    expect("unchanged by the refusals", at(2, 3)).await?;

    ok("scale to 0", group.resize(0, 0).await)?;
    expect("min 0, desired 0", at(0, 0)).await?;
    ok("scale to 0 again", group.resize(0, 0).await)?;
    expect("still min 0, desired 0", at(0, 0)).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::{
        errors::Classify,
        testing::{FakeDns, FakeGroup, FakeNotifier},
    };

    #[tokio::test]
    async fn the_fake_dns_keeps_the_dns_contract() {
        let dns = FakeDns::default();
        dns_contract(&dns).await.expect("contract");
        assert_eq!(
            *dns.changes.lock().unwrap(),
            6,
            "the repeated target changed nothing"
        );
    }

    #[tokio::test]
    async fn the_fake_notifier_keeps_the_notifier_contract() {
        let notifier = FakeNotifier::default();
        notifier_contract(&notifier, || async { Ok(notifier.sent()) })
            .await
            .expect("contract");
    }

    #[tokio::test]
    async fn the_fake_group_keeps_the_group_contract() {
        let group = FakeGroup::new("vault-dr", 0, 5, 0);
        group_contract(&group).await.expect("contract");
    }

    #[tokio::test]
    async fn an_injected_dns_failure_changes_nothing_and_a_retry_may_help() {
        let before = DnsTarget::cname("vault.primary.example.com", 60).unwrap();
        let dns = FakeDns::pointing_at(before.clone());
        dns.fail_next.store(true, Ordering::SeqCst);
        let dr = DnsTarget::cname("vault.dr.example.com", 60).unwrap();
        let err = dns.point_at(&dr).await.expect_err("injected");
        assert!(err.retry_helps(), "{err}");
        assert_eq!(dns.current().await.unwrap(), Some(before));
        dns.point_at(&dr).await.expect("the next call succeeds");
        assert_eq!(dns.current().await.unwrap(), Some(dr));
    }

    #[tokio::test]
    async fn an_injected_notify_failure_sends_nothing() {
        let notifier = FakeNotifier::default();
        notifier.fail_next.store(true, Ordering::SeqCst);
        let err = notifier.notify("s", "m").await.expect_err("injected");
        assert_eq!(err.name(), "NotificationNotSent");
        assert!(notifier.sent().is_empty());
    }

    #[tokio::test]
    async fn an_injected_group_failure_changes_nothing() {
        let group = FakeGroup::new("vault", 3, 5, 3);
        group.fail_next.store(true, Ordering::SeqCst);
        let err = group.resize(0, 0).await.expect_err("injected");
        assert_eq!(
            (err.name(), err.retry_helps()),
            ("CapacityUnavailable", true)
        );
        assert_eq!(
            group.now(),
            Capacity {
                min: 3,
                max: 5,
                desired: 3
            }
        );
        let out = group.set_desired(6).await.expect_err("above max");
        assert_eq!(
            (out.name(), out.retry_helps()),
            ("CapacityOutOfBounds", false)
        );
        assert!(
            out.to_string().contains("vault") && out.to_string().contains("max 5"),
            "{out}"
        );
    }
}
