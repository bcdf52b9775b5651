//! The snapshot catalog: one entry per snapshot stored and checked, the source of truth
//! for retention and restore. The adapter is `crate::aws::DynamoCatalog`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::Location;
use crate::ids::ClusterName;

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// The backup schedule.
    Scheduled,
    /// A person asked for it.
    Manual,
    /// The safety snapshot snapshot-restore takes before it restores.
    PreRestore,
}

impl BackupKind {
    /// The word stored in the catalog and the object's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
            Self::PreRestore => "pre-restore",
        }
    }
}

/// A snapshot stored and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The cluster it was taken from (`CLUSTER_NAME`).
    pub cluster: String,
    /// When the snapshot was taken (the upload began), UTC.
    pub taken_at: DateTime<Utc>,
    /// The object in the primary bucket.
    pub object: Location,
    /// Its copy in the DR region's bucket, once copied and checked.
    pub dr_copy: Option<Location>,
    /// SHA-256 of the object, hex.
    pub sha256: String,
    /// The object's size in bytes.
    pub bytes: u64,
    /// The Raft index in the snapshot's meta.json.
    pub index: u64,
    /// The Raft term in meta.json.
    pub term: u64,
    /// The size of the state in meta.json.
    pub state_size: u64,
    /// Vault's cluster id at the time.
    pub cluster_id: String,
    /// The server's version at the time.
    pub server_version: String,
    /// Why it was taken.
    pub kind: BackupKind,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// The generation of shares in force when it was taken: after a restore, the server's
    /// root key is under that generation's shares. `None` for entries written before
    /// generations were recorded, or when SSM could not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_generation: Option<crate::keys::Generation>,
    /// The generation of the database engines' root credentials when it was taken: a
    /// restore of an older one brings back root passwords the databases refuse. `None`
    /// for entries written before it was recorded, or when SSM could not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_generation: Option<crate::keys::Generation>,
    /// The canary written just before the snapshot was taken (`vault-lifecycle/canary`):
    /// a restore of it must bring that value back. `None` for entries written before
    /// canaries, or when the write was refused (a cluster bootstrapped without the mount
    /// or an older policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// The last restore drill of this snapshot (a DR copy's entry, in the DR region):
    /// a failover never chooses one that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillResult>,
}

/// A restore drill's verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillResult {
    /// When the drill ran.
    pub at: DateTime<Utc>,
    /// Whether the snapshot restored and held what its entry says.
    pub passed: bool,
    /// What the drill found (why it failed, or the index it saw).
    pub detail: String,
}

impl CatalogEntry {
    /// A drill restored it and found what its entry says.
    pub fn drill_proven(&self) -> bool {
        self.drill.as_ref().is_some_and(|d| d.passed)
    }

    /// A drill failed it: never restored by a failover.
    pub fn drill_failed(&self) -> bool {
        self.drill.as_ref().is_some_and(|d| !d.passed)
    }
}

/// A restore, as the catalog remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// When the restore finished.
    pub restored_at: DateTime<Utc>,
    /// The snapshot restored.
    pub source: Location,
    /// The cluster the snapshot came from.
    pub source_cluster: String,
    /// Its Raft index and term.
    pub index: u64,
    /// See `index`.
    pub term: u64,
    /// The safety snapshot taken just before.
    pub safety_snapshot: Location,
    /// Whether `force` was given.
    pub forced: bool,
    /// The reason given, if any.
    pub reason: Option<String>,
}

/// Why the catalog could not be read or written. Nothing in it is a secret.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the snapshot catalog of cluster {cluster} in table {table}: {reason}")]
pub struct CatalogError {
    /// `read`, `write`, `delete from`.
    pub action: &'static str,
    /// The cluster.
    pub cluster: String,
    /// The table.
    pub table: String,
    /// The SDK's error, or what is wrong with an item.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// The catalog of every cluster in the table.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Adds `entry`, or replaces the entry for the same object version.
    async fn put(&self, entry: &CatalogEntry) -> Result<(), CatalogError>;
    /// Every entry of `cluster`, oldest first, read page by page.
    async fn entries(&self, cluster: &ClusterName) -> Result<Vec<CatalogEntry>, CatalogError>;
    /// The newest entry of `cluster`.
    async fn newest(&self, cluster: &ClusterName) -> Result<Option<CatalogEntry>, CatalogError>;
    /// Removes these entries (already absent is fine), in batches.
    async fn remove(&self, entries: &[CatalogEntry]) -> Result<(), CatalogError>;
    /// The entry that a delivery of a backup request (by its id) produced, if any.
    async fn delivery(
        &self,
        cluster: &ClusterName,
        id: &str,
    ) -> Result<Option<Location>, CatalogError>;
    /// Remembers that the delivery `id` produced `object` (kept a week).
    async fn put_delivery(
        &self,
        cluster: &ClusterName,
        id: &str,
        object: &Location,
    ) -> Result<(), CatalogError>;
    /// Records a restore into `cluster`.
    async fn put_restore(
        &self,
        cluster: &ClusterName,
        record: &RestoreRecord,
    ) -> Result<(), CatalogError>;
}

impl crate::errors::Classify for CatalogError {
    fn retry_helps(&self) -> bool {
        self.reason.retry_helps()
    }
    fn name(&self) -> &'static str {
        self.reason.name("CatalogUnavailable")
    }
}
