//! The DNS record clients reach the cluster by: what it points at, and pointing it
//! elsewhere.

use std::{collections::BTreeSet, fmt, net::Ipv4Addr};

use async_trait::async_trait;

use crate::errors::{Classify, ServiceFailure};

/// What a record answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    /// A CNAME to this host name: lower case, without the final dot.
    Cname(String),
    /// A records: these IPv4 addresses, each once, sorted.
    A(BTreeSet<Ipv4Addr>),
}

/// Where a record points, with its TTL. Two targets that resolve alike are equal: host
/// names are compared without case or final dot, addresses without order, so a
/// failover compares what it reads with what it wants and changes only the difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    value: RecordValue,
    ttl: u32,
}

impl DnsTarget {
    /// A CNAME to `host` (case and a final dot ignored). Refused when `host` is not a
    /// DNS name: empty, a label empty or over 63 characters, over 253 characters, or a
    /// character other than a letter, digit, `-` or `_`.
    pub fn cname(host: &str, ttl: u32) -> Result<Self, DnsError> {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let invalid = |reason| DnsError::InvalidTarget {
            value: host.clone(),
            reason,
        };
        if host.is_empty() || host.len() > 253 {
            return Err(invalid("a host name has 1 to 253 characters"));
        }
        for label in host.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("each label of a host name has 1 to 63 characters"));
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    "a host name has only letters, digits, '-', '_' and dots",
                ));
            }
        }
        Ok(Self {
            value: RecordValue::Cname(host),
            ttl,
        })
    }

    /// A records for `addrs` (duplicates dropped); refused when there is none.
    pub fn a(addrs: impl IntoIterator<Item = Ipv4Addr>, ttl: u32) -> Result<Self, DnsError> {
        let addrs: BTreeSet<Ipv4Addr> = addrs.into_iter().collect();
        if addrs.is_empty() {
            return Err(DnsError::InvalidTarget {
                value: String::new(),
                reason: "an A record needs at least one address",
            });
        }
        Ok(Self {
            value: RecordValue::A(addrs),
            ttl,
        })
    }

    /// What the record answers.
    pub fn value(&self) -> &RecordValue {
        &self.value
    }

    /// How long resolvers may cache the answer, in seconds.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The record type as DNS names it: `CNAME` or `A`.
    pub fn record_type(&self) -> &'static str {
        match self.value {
            RecordValue::Cname(_) => "CNAME",
            RecordValue::A(_) => "A",
        }
    }

    /// The record's values as DNS writes them: the host name, or each address.
    pub fn values(&self) -> Vec<String> {
        match &self.value {
            RecordValue::Cname(host) => vec![host.clone()],
            RecordValue::A(addrs) => addrs.iter().map(Ipv4Addr::to_string).collect(),
        }
    }
}

/// `CNAME vault.dr.example.com (TTL 60 s)`, `A 10.0.0.1, 10.0.0.2 (TTL 60 s)`.
impl fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values().join(", ");
        write!(f, "{} {values} (TTL {} s)", self.record_type(), self.ttl)
    }
}

/// Why a DNS record could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A target that no DNS record can hold (from configuration or a request).
    #[error("{value:?} is not a valid DNS record target: {reason}")]
    InvalidTarget {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The hosted zone does not exist: a configuration error.
    #[error("hosted zone {zone} of DNS record {record} does not exist; check the zone id")]
    NoSuchZone {
        /// The hosted zone id.
        zone: String,
        /// The record's name.
        record: String,
    },
    /// The record exists in a form this port does not change (an alias, a weighted or
    /// failover routing policy, or a CNAME beside other records).
    #[error(
        "DNS record {record} is {found}; only a plain CNAME or A record is read or \
         changed here, so it was left as it was"
    )]
    Unmanaged {
        /// The record's name.
        record: String,
        /// What the record is.
        found: String,
    },
    /// The DNS service refused the change (a name outside the zone, a conflict).
    #[error("the DNS service refused to point {record} at {target}; the record was left as it was: {reason}")]
    Refused {
        /// The record's name.
        record: String,
        /// What it was to point at.
        target: String,
        /// The service's answer.
        #[source]
        reason: ServiceFailure,
    },
    /// The DNS service failed or denied the call (the SDK already retried).
    #[error("cannot read or change DNS record {record}: {reason}")]
    Unavailable {
        /// The record's name.
        record: String,
        /// The service's error, with its context.
        #[source]
        reason: ServiceFailure,
    },
}

impl Classify for DnsError {
    fn retry_helps(&self) -> bool {
        matches!(self, Self::Unavailable { reason, .. } if reason.retry_helps())
    }
    fn name(&self) -> &'static str {
        match self {
            Self::InvalidTarget { .. } => "InvalidDnsTarget",
            Self::NoSuchZone { .. } => "NoSuchHostedZone",
            Self::Unmanaged { .. } => "UnmanagedDnsRecord",
            Self::Refused { .. } => "DnsChangeRefused",
            Self::Unavailable { reason, .. } => reason.name("DnsUnavailable"),
        }
    }
}

/// The one DNS record (name and zone fixed when built) that clients use to reach the
/// cluster.
#[async_trait]
pub trait DnsRecords: Send + Sync {
    /// Where the record points now; `None` when it does not exist.
    async fn current(&self) -> Result<Option<DnsTarget>, DnsError>;

    /// Points the record at `target`, creating it if needed, whatever it pointed at
    /// before (a CNAME may become A records and back). Idempotent. Returns once the DNS
    /// service accepted the change; resolvers see it after their cached answer's TTL.
    async fn point_at(&self, target: &DnsTarget) -> Result<(), DnsError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_that_resolve_alike_are_equal() -> Result<(), DnsError> {
        assert_eq!(
            DnsTarget::cname("Vault.DR.example.com.", 60)?,
            DnsTarget::cname("vault.dr.example.com", 60)?
        );
        let one = DnsTarget::a(
            ["10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            30,
        )?;
        let two = DnsTarget::a(
            ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
            30,
        )?;
        assert_eq!(one, two);
        assert_eq!(one.to_string(), "A 10.0.0.1, 10.0.0.2 (TTL 30 s)");
        assert_ne!(one, DnsTarget::a(["10.0.0.1".parse().unwrap()], 30)?);
        Ok(())
    }

    #[test]
    fn a_target_no_record_can_hold_is_refused() {
        for host in ["", ".", "a..b", "vault dr.example.com", "é.example.com"] {
            let err = DnsTarget::cname(host, 60).expect_err(host);
            assert_eq!(err.name(), "InvalidDnsTarget", "{host}: {err}");
        }
        let long = format!("{}.example.com", "a".repeat(64));
        assert!(DnsTarget::cname(&long, 60).is_err());
        let err = DnsTarget::a([], 60).expect_err("no address");
        assert!(err.to_string().contains("at least one address"), "{err}");
    }
}
