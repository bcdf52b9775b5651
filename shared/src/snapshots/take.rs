//! One snapshot from the active node into the bucket, checked as it streams, tagged with
//! its checksum and recorded in the catalog: what a scheduled backup and a restore's safety
//! snapshot both do. The caller holds the backup lock.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{
    catalog::{BackupKind, Catalog, CatalogEntry, CatalogError},
    store::{SnapshotObjects, StoreError},
    stream::{stream_into_store, StreamError},
};
use crate::{
    cluster::{
        node::{Health, NodeApi, VaultError},
        policies::CANARY_PATH,
        ports::FleetNode,
    },
    errors::Classify,
    ids::ClusterName,
    keys::RecordedGenerations,
    secret::Secret,
};

/// The object's key: `<prefix>/<cluster>/<UTC time>-<unique>-<raft index>.snap`. Time
/// and index alone are not unique: two backups in one second of a cluster that took no
/// write in between share both. `unique` (8 hex digits, random per snapshot) keeps each
/// snapshot its own key, so no snapshot is ever a hidden older version of another's.
pub fn snapshot_key(
    prefix: &str,
    cluster: &ClusterName,
    taken_at: &DateTime<Utc>,
    unique: u32,
    index: u64,
) -> String {
    format!(
        "{prefix}/{cluster}/{}-{unique:08x}-{index}.snap",
        taken_at.format("%Y%m%dT%H%M%SZ")
    )
}

/// Why a snapshot was not taken and recorded.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// Vault refused the snapshot.
    #[error("taking a snapshot from {node} failed; nothing was stored")]
    Snapshot {
        /// The node.
        node: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// The snapshot did not reach the bucket whole and checked.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The stored snapshot could not be tagged with its checksum.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored snapshot could not be recorded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The ports and settings a snapshot is taken with.
pub struct Taker<'a, N: ?Sized> {
    /// The node port.
    pub vault: &'a N,
    /// The bucket.
    pub store: &'a dyn SnapshotObjects,
    /// The catalog.
    pub catalog: &'a dyn Catalog,
    /// The cluster the snapshot is of.
    pub cluster: &'a ClusterName,
    /// `SNAPSHOT_PREFIX`.
    pub prefix: &'a str,
    /// The multipart upload's part size.
    pub part_size: usize,
    /// The longest the transfer may take.
    pub timeout: Duration,
    /// The generations of shares and database credentials in force, recorded in the
    /// entry.
    pub generations: RecordedGenerations,
}

impl<N: NodeApi + ?Sized> Taker<'_, N> {
    /// Takes one snapshot from `active` (found active, with `health`) with `token`.
    pub async fn take_from(
        &self,
        active: &FleetNode,
        health: &Health,
        token: &Secret,
        kind: BackupKind,
        reason: Option<String>,
    ) -> Result<CatalogEntry, TakeError> {
        let cluster_id = health.cluster_id.clone().unwrap_or_default();
        let taken_at = Utc::now();
        let unique = fastrand::u32(..);
        let canary = self.write_canary(active, token, &taken_at, unique).await;
        info!(node = %active.addr, kind = kind.as_str(), "taking a snapshot from the active node");
        let mut body = self
            .vault
            .snapshot(&active.addr, token, self.timeout)
            .await
            .map_err(|source| TakeError::Snapshot {
                node: active.addr.to_string(),
                source,
            })?;
        let metadata = |index: u64, term: u64| {
            let key = snapshot_key(self.prefix, self.cluster, &taken_at, unique, index);
            let metadata = BTreeMap::from([
                ("cluster".to_owned(), self.cluster.to_string()),
                ("cluster-id".to_owned(), cluster_id.clone()),
                ("server-version".to_owned(), health.version.clone()),
                ("raft-index".to_owned(), index.to_string()),
                ("raft-term".to_owned(), term.to_string()),
                ("kind".to_owned(), kind.as_str().to_owned()),
                ("taken-at".to_owned(), taken_at.to_rfc3339()),
            ]);
            (key, metadata)
        };
        let streamed = stream_into_store(&mut body, self.store, self.part_size, metadata).await?;
        let facts = streamed.facts;
        self.store
            .tag(
                &streamed.object,
                &BTreeMap::from([("sha256".to_owned(), facts.sha256.clone())]),
            )
            .await?;
        let entry = CatalogEntry {
            cluster: self.cluster.to_string(),
            taken_at,
            object: self.store.location_of(&streamed.object),
            dr_copy: None,
            sha256: facts.sha256,
            bytes: facts.bytes,
            index: facts.index,
            term: facts.term,
            state_size: facts.state_size,
            cluster_id,
            server_version: health.version.clone(),
            kind,
            reason,
            share_generation: self.generations.share,
            database_generation: self.generations.database,
            canary,
            drill: None,
        };
        self.catalog.put(&entry).await?;
        info!(object = %entry.object, index = entry.index, term = entry.term, bytes = entry.bytes, sha256 = %entry.sha256, "snapshot catalogued");
        Ok(entry)
    }
}

impl<N: NodeApi + ?Sized> Taker<'_, N> {
    /// Writes the canary the snapshot about to be taken carries; its value, or `None`
    /// when the cluster refused it (bootstrapped without the mount, or an older policy):
    /// the snapshot is taken all the same, and a restore of it is checked by cluster id
    /// and Raft index alone.
    async fn write_canary(
        &self,
        active: &FleetNode,
        token: &Secret,
        taken_at: &DateTime<Utc>,
        unique: u32,
    ) -> Option<String> {
        let value = format!("{}-{unique:08x}", taken_at.format("%Y%m%dT%H%M%SZ"));
        match self.vault.write_canary(&active.addr, token, &value).await {
            Ok(()) => Some(value),
            Err(e) => {
                warn!(node = %active.addr, path = CANARY_PATH, error = %crate::error_chain(&e), "the canary was not written; this snapshot carries none, and a restore of it is checked by cluster id and Raft index alone");
                None
            }
        }
    }
}

impl Classify for TakeError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Snapshot { source, .. } => source.retry_helps(),
            Self::Stream(e) => e.retry_helps(),
            Self::Store(e) => e.retry_helps(),
            Self::Catalog(e) => e.retry_helps(),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Snapshot { source, .. } if !source.retry_helps() => source.name(),
            Self::Snapshot { .. } => "SnapshotFailed",
            Self::Stream(e) => e.name(),
            Self::Store(e) => e.name(),
            Self::Catalog(e) => e.name(),
        }
    }
}
