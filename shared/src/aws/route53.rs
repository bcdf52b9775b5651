//! The cluster's DNS record in a Route 53 hosted zone: ListResourceRecordSets to read it,
//! one ChangeResourceRecordSets batch to point it elsewhere.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use aws_sdk_route53::{
    error::ProvideErrorMetadata,
    types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType},
};
use tracing::info;

use super::{describe, describe_any};
use crate::cluster::dr_ports::{DnsError, DnsRecords, DnsTarget};

/// One record (a CNAME or A records) of one Route 53 hosted zone.
#[derive(Clone, Debug)]
pub struct Route53Records {
    client: aws_sdk_route53::Client,
    zone: String,
    /// The record's name, lower case, without the final dot.
    record: String,
}

impl Route53Records {
    /// The record `record` of hosted zone `zone` (`Z0123...` or `/hostedzone/Z0123...`).
    pub fn new(client: aws_sdk_route53::Client, zone: String, record: &str) -> Self {
        Self {
            client,
            zone,
            record: plain_name(record),
        }
    }

    /// The record, with a client built from `sdk` (Route 53 is global: any region does).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, zone: String, record: &str) -> Self {
        Self::new(aws_sdk_route53::Client::new(sdk), zone, record)
    }

    /// The hosted zone.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Route 53's error as this port's: a missing zone and a refused change by their code.
    fn failure<E>(&self, error: E, target: Option<&DnsTarget>) -> DnsError
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        match (error.code(), target) {
            (Some("NoSuchHostedZone"), _) => DnsError::NoSuchZone {
                zone: self.zone.clone(),
                record: self.record.clone(),
            },
            (Some("InvalidChangeBatch" | "InvalidInput"), Some(target)) => DnsError::Refused {
                record: self.record.clone(),
                target: target.to_string(),
                reason: describe(error),
            },
            _ => DnsError::Unavailable {
                record: self.record.clone(),
                reason: describe(error),
            },
        }
    }

    /// The CNAME or A record set of this name as Route 53 holds it, with its target;
    /// `None` when there is none. Record sets of other types (TXT, AAAA ...) are left out.
    async fn managed_set(&self) -> Result<Option<(ResourceRecordSet, DnsTarget)>, DnsError> {
        // Route 53 lists record sets in name order from the one asked for: the first
        // page holds every set of this name.
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .start_record_name(&self.record)
            .send()
            .await
            .map_err(|e| self.failure(e, None))?;
        let sets: Vec<&ResourceRecordSet> = out
            .resource_record_sets()
            .iter()
            .filter(|s| plain_name(s.name()) == self.record)
            .filter(|s| matches!(s.r#type(), RrType::Cname | RrType::A))
            .collect();
        match sets.as_slice() {
            [] => Ok(None),
            [set] => Ok(Some(((*set).clone(), self.target_of(set)?))),
            // Weighted or failover sets, or (moto only) a CNAME beside A records.
            many => Err(many
                .iter()
                .find_map(|s| self.target_of(s).err())
                .unwrap_or_else(|| self.unmanaged("a CNAME beside A records"))),
        }
    }

    /// What a plain record set points at; an alias or a routing policy is not changed here.
    fn target_of(&self, set: &ResourceRecordSet) -> Result<DnsTarget, DnsError> {
        if let Some(alias) = set.alias_target() {
            return Err(self.unmanaged(&format!("an alias to {}", alias.dns_name())));
        }
        if let Some(id) = set.set_identifier() {
            return Err(self.unmanaged(&format!(
                "one of several records with a routing policy (set {id})"
            )));
        }
        let values: Vec<&str> = set
            .resource_records()
            .iter()
            .map(ResourceRecord::value)
            .collect();
        let ttl = set
            .ttl()
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| self.unmanaged("a record without a TTL"))?;
        match (set.r#type(), values.as_slice()) {
            (RrType::Cname, [host]) => DnsTarget::cname(host, ttl),
            (RrType::A, _) => {
                let addrs: Result<Vec<Ipv4Addr>, _> = values.iter().map(|v| v.parse()).collect();
                let addrs =
                    addrs.map_err(|_| self.unmanaged(&format!("A records of {values:?}")))?;
                DnsTarget::a(addrs, ttl)
            }
            (kind, _) => Err(self.unmanaged(&format!("a {kind} record of {values:?}"))),
        }
    }

    fn unmanaged(&self, found: &str) -> DnsError {
        DnsError::Unmanaged {
            record: self.record.clone(),
            found: found.to_owned(),
        }
    }
}

/// A DNS name as compared here: lower case, without the final dot.
fn plain_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The record set that points `record` at `target`.
fn record_set(record: &str, target: &DnsTarget) -> Result<ResourceRecordSet, DnsError> {
    let kind = match target.record_type() {
        "CNAME" => RrType::Cname,
        _ => RrType::A,
    };
    let records = target
        .values()
        .into_iter()
        .map(|value| ResourceRecord::builder().value(value).build())
        .collect::<Result<Vec<_>, _>>();
    ResourceRecordSet::builder()
        .name(record)
        .r#type(kind)
        .ttl(i64::from(target.ttl()))
        .set_resource_records(Some(records.map_err(|e| built(record, e))?))
        .build()
        .map_err(|e| built(record, e))
}

/// A request the SDK could not build (a required field missing: a bug, not an input).
fn built(record: &str, error: aws_sdk_route53::error::BuildError) -> DnsError {
    DnsError::Unavailable {
        record: record.to_owned(),
        reason: describe_any(error),
    }
}

fn change(action: ChangeAction, set: ResourceRecordSet, record: &str) -> Result<Change, DnsError> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| built(record, e))
}

#[async_trait]
impl DnsRecords for Route53Records {
    async fn current(&self) -> Result<Option<DnsTarget>, DnsError> {
        Ok(self.managed_set().await?.map(|(_, target)| target))
    }

    /// Reads the record first and changes nothing when it already points at `target`.
    /// A change of type deletes the old record set and creates the new one in one batch,
    /// which Route 53 applies atomically (a CNAME cannot sit beside other records); the
    /// delete names the set exactly as read, so a concurrent change makes Route 53 refuse
    /// the batch rather than lose either. Does not wait for INSYNC (about a minute in
    /// AWS): a failover cannot make it faster, and resolvers keep the old answer for
    /// its TTL anyway.
    async fn point_at(&self, target: &DnsTarget) -> Result<(), DnsError> {
        let current = self.managed_set().await?;
        let mut changes = Vec::new();
        match current {
            Some((_, ref now)) if now == target => return Ok(()),
            Some((set, ref now)) if now.record_type() != target.record_type() => {
                changes.push(change(ChangeAction::Delete, set, &self.record)?);
            }
            _ => {}
        }
        let set = record_set(&self.record, target)?;
        changes.push(change(ChangeAction::Upsert, set, &self.record)?);
        let batch = ChangeBatch::builder()
            .comment(format!("point {} at {target}", self.record))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| built(&self.record, e))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| self.failure(e, Some(target)))?;
        let status = out
            .change_info()
            .map(|c| c.status().as_str())
            .unwrap_or("unknown");
        info!(record = %self.record, target = %target, status, "pointed DNS record");
        Ok(())
    }
}
