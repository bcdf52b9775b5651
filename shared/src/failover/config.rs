//! dr-failover's configuration, read once at cold start. It runs in the DR region: its
//! cluster (`CLUSTER_NAME`, `ASG_NAME`, ...) is the standby, its bucket and table the DR
//! region's, and the primary is named by the `PRIMARY_*` variables.

use std::time::Duration;

use crate::{
    cluster::dr_ports::DnsTarget,
    config::{invalid, ssm_cluster_path, AuthSettings, ConfigError, Env, PrimaryCluster},
    ids::{ClusterName, NodeAddr},
    keys::KeyLayout,
    restore::RestoreConfig,
};

/// The DNS record switched to the DR cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// `DNS_ZONE_ID`: the Route 53 hosted zone.
    pub zone_id: String,
    /// `DNS_RECORD_NAME`: the name clients use.
    pub record_name: String,
    /// `DNS_FAILOVER_TARGET` (a host name: CNAME) and `DNS_TTL` (default 60): what the
    /// record answers after a failover.
    pub target: DnsTarget,
    /// `DNS_PRIMARY_TARGET` (optional, a host name): what a failback points it back at.
    pub primary_target: Option<DnsTarget>,
}

/// What dr-failover does, beyond where things are.
#[derive(Debug, Clone)]
pub struct FailoverSettings {
    /// `PRIMARY_CLUSTER`: the primary's cluster name (its DR copies are catalogued under
    /// it in the DR table, its shares kept under `<SSM_PREFIX>/<it>/` in the DR region).
    pub primary: ClusterName,
    /// `PRIMARY_API_ADDR`: the primary's API as the DR region reaches it (its load
    /// balancer; not the failover record).
    pub primary_api: NodeAddr,
    /// `PRIMARY_REGION`.
    pub primary_region: String,
    /// `PRIMARY_ASG_NAME`: the group fenced (scaled to 0).
    pub primary_group: String,
    /// `PRIMARY_PROBES` (default 3, at least 1): how many probes of the primary must all
    /// fail before an alarm fails over.
    pub probes: u32,
    /// `PRIMARY_PROBE_INTERVAL_SECS` (default 2): the pause between them.
    pub probe_interval: Duration,
    /// `FAILOVER_ALARMS`: the alarm names that may start a failover (comma-separated;
    /// any other alarm is refused, nothing changed).
    pub alarms: Vec<String>,
    /// `FAILOVER_REQUIRE_PROVEN` (default false): restore only a copy a drill proved,
    /// instead of the newest that no drill failed (a daily drill and hourly backups make
    /// the proven one up to a day older: a larger RPO for the proof).
    pub require_proven: bool,
    /// `STANDBY_SIZE` (default 3, at least 1): the DR group's size once it serves.
    pub standby_size: u32,
    /// `FAILOVER_LOCK_TTL_SECS` (default 900): how long the lock holds if its run dies.
    pub lock_ttl: Duration,
    /// `STANDBY_UP_TIMEOUT_SECS` (default 600): how long the first standby node may take
    /// to answer as active (a pilot-light group boots an instance first).
    pub standby_timeout: Duration,
    /// The record switched, when `DNS_ZONE_ID` is set.
    pub dns: Option<DnsSettings>,
    /// `NOTIFY_TOPIC_ARN` (optional): the SNS topic told of each failover.
    pub topic: Option<String>,
    /// The standby's own parameters: `<SSM_PREFIX>/<CLUSTER_NAME>`.
    pub standby_keys: KeyLayout,
    /// The primary's parameters in the DR region: `<SSM_PREFIX>/<PRIMARY_CLUSTER>`.
    pub primary_keys: KeyLayout,
    /// `KMS_KEY_ID`: the DR region's key the standby's parameters are written under
    /// (the primary's shares it adopts).
    pub kms_key: String,
    /// `KEY_SHARES` (default 5) and `KEY_THRESHOLD` (default 3): the primary's share
    /// count and threshold (the standby's too). A standby emptied again after its first
    /// use is rebuilt in a new node initialised with them, then sent the primary's
    /// snapshot: a node keeps the seal configuration it was initialised with until it
    /// restarts, and takes the primary's shares only under the same counts.
    pub key_counts: (u8, u8),
}

/// Everything dr-failover reads at cold start.
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// The restore's settings (bucket, table, standby cluster), read for dr-failover's
    /// own AppRole.
    pub restore: RestoreConfig,
    /// The same for a failback's restore into the primary: the primary's cluster, group
    /// (in `PRIMARY_REGION`) and dr-failover's AppRole in the primary's data (its
    /// credentials copied to this region under the primary's path).
    pub primary_restore: RestoreConfig,
    /// The rest.
    pub failover: FailoverSettings,
}

impl FailoverConfig {
    /// Reads the process environment; the error names the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// Reads the given variables.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let mut restore = RestoreConfig::for_function(env, "dr-failover")?;
        // A failback's snapshot of the DR cluster deletes nothing: retention is the
        // standby's own snapshot-backup's (and its permissions).
        restore.backup.backup.retention.last = usize::MAX;
        let standby = restore.backup.cluster.cluster.clone();
        let PrimaryCluster {
            name: primary,
            api: primary_api,
        } = PrimaryCluster::from_env(env, &standby)?.ok_or(ConfigError::Missing {
            name: "PRIMARY_CLUSTER",
            hint: "the primary cluster's name, whose DR copies and shares this region holds",
        })?;
        let alarms: Vec<String> = env
            .required(
                "FAILOVER_ALARMS",
                "the names of the alarms that may start a failover, comma-separated",
            )?
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        let probes: u32 = env.parsed_or("PRIMARY_PROBES", 3, "a whole number from 1")?;
        if probes == 0 {
            return Err(invalid("PRIMARY_PROBES", "0", "at least 1"));
        }
        let standby_size: u32 = env.parsed_or("STANDBY_SIZE", 3, "a whole number from 1")?;
        if standby_size == 0 {
            return Err(invalid("STANDBY_SIZE", "0", "at least 1"));
        }
        let dns = match env.optional("DNS_ZONE_ID") {
            None => None,
            Some(zone) => {
                let record_name = env
                    .required(
                        "DNS_RECORD_NAME",
                        "DNS_ZONE_ID is set: the record clients use",
                    )?
                    .to_owned();
                let target_text = env.required(
                    "DNS_FAILOVER_TARGET",
                    "DNS_ZONE_ID is set: the DR cluster's host name the record points at after a failover",
                )?;
                let ttl: u32 = env.parsed_or("DNS_TTL", 60, "a whole number of seconds")?;
                let target = DnsTarget::cname(target_text, ttl)
                    .map_err(|e| invalid("DNS_FAILOVER_TARGET", target_text, e.to_string()))?;
                let primary_target = match env.optional("DNS_PRIMARY_TARGET") {
                    None => None,
                    Some(text) => Some(
                        DnsTarget::cname(text, ttl)
                            .map_err(|e| invalid("DNS_PRIMARY_TARGET", text, e.to_string()))?,
                    ),
                };
                Some(DnsSettings {
                    zone_id: zone.to_owned(),
                    record_name,
                    target,
                    primary_target,
                })
            }
        };
        let prefix_path = ssm_cluster_path(env, &primary)?;
        let primary_group = env
            .required(
                "PRIMARY_ASG_NAME",
                "the primary cluster's Auto Scaling group",
            )?
            .to_owned();
        let mut primary_restore = restore.clone();
        primary_restore.backup.cluster.cluster = primary.clone();
        primary_restore.backup.cluster.asg = primary_group.clone();
        primary_restore.backup.cluster.port = env.parsed_or(
            "PRIMARY_VAULT_PORT",
            restore.backup.cluster.port,
            "a port from 1 to 65535",
        )?;
        primary_restore.backup.auth = AuthSettings::from_env(env, &primary, "dr-failover")?;
        primary_restore.backup.backup.cluster = primary.clone();
        primary_restore.backup.backup.keys = KeyLayout::from_root(&prefix_path);
        Ok(Self {
            failover: FailoverSettings {
                primary_keys: KeyLayout::from_root(&prefix_path),
                standby_keys: KeyLayout::from_root(&ssm_cluster_path(env, &standby)?),
                primary,
                primary_api,
                primary_region: env
                    .required("PRIMARY_REGION", "the primary cluster's AWS region")?
                    .to_owned(),
                primary_group,
                probes,
                require_proven: env.parsed_or("FAILOVER_REQUIRE_PROVEN", false, "true or false")?,
                probe_interval: env
                    .seconds_or("PRIMARY_PROBE_INTERVAL_SECS", Duration::from_secs(2))?,
                alarms,
                standby_size,
                lock_ttl: env.seconds_or("FAILOVER_LOCK_TTL_SECS", Duration::from_secs(900))?,
                standby_timeout: env
                    .seconds_or("STANDBY_UP_TIMEOUT_SECS", Duration::from_secs(600))?,
                dns,
                topic: env.optional("NOTIFY_TOPIC_ARN").map(str::to_owned),
                kms_key: env
                    .required(
                        "KMS_KEY_ID",
                        "the DR region's KMS key the standby's SSM parameters are encrypted with",
                    )?
                    .to_owned(),
                key_counts: crate::config::key_counts(env)?,
            },
            restore,
            primary_restore,
        })
    }
}
