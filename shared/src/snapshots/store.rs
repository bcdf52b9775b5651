//! Where snapshots are kept: the port, in domain words. The adapter is
//! `crate::aws::S3SnapshotStore`; an upload is fed part by part and then completed or
//! aborted, so a snapshot is never held whole anywhere.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;

pub use crate::chunks::ChunkSource;

/// An object as stored: its key and the exact version (the bucket is versioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The key.
    pub key: String,
    /// The version S3 gave it; `None` only in an unversioned bucket.
    pub version_id: Option<String>,
}

/// Why the store did not do what was asked. Nothing in it is a secret.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} s3://{bucket}/{key}: {reason}")]
pub struct StoreError {
    /// `start the upload of`, `upload a part of`, `complete`, `abort the upload of`.
    pub action: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The SDK's error, with its context.
    #[source]
    pub reason: crate::errors::ServiceFailure,
}

/// A multipart upload under way.
#[async_trait]
pub trait PartUpload: Send {
    /// Uploads the next part. Every part but the last must hold at least 5 MiB (S3's
    /// floor); parts are numbered in the order they are given.
    async fn part(&mut self, bytes: Bytes) -> Result<(), StoreError>;
    /// Completes the upload: only now does the object exist.
    async fn complete(self: Box<Self>) -> Result<StoredObject, StoreError>;
    /// Abandons the upload and frees its parts: no object is made.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Where snapshots are kept.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Starts the upload of `key` with `metadata` (encrypted as the store is configured).
    async fn begin(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Box<dyn PartUpload>, StoreError>;
}

/// Where an object is, with its exact version: what the catalog records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// The bucket's region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The version (`None` only in an unversioned bucket).
    pub version_id: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)?;
        if let Some(version) = &self.version_id {
            write!(f, "?versionId={version}")?;
        }
        Ok(())
    }
}

/// What S3 says about one object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size in bytes.
    pub size: u64,
    /// Its user metadata.
    pub metadata: BTreeMap<String, String>,
}

/// An object's body as it arrives, chunk by chunk: never collected.
pub type ObjectBody = dyn ChunkSource<Error = StoreError>;

/// Everything but the upload: read, tag, copy and delete exact versions.
#[async_trait]
pub trait SnapshotObjects: SnapshotStore {
    /// This store's region and bucket, for the catalog.
    fn location_of(&self, object: &StoredObject) -> Location;
    /// The version's size and metadata; `None` when the key or version does not exist.
    async fn head(&self, object: &StoredObject) -> Result<Option<ObjectInfo>, StoreError>;
    /// The version's body, streamed.
    async fn open(&self, object: &StoredObject) -> Result<Box<ObjectBody>, StoreError>;
    /// Sets the version's tags (S3 metadata is fixed when the upload starts; the checksum
    /// is known only at its end).
    async fn tag(
        &self,
        object: &StoredObject,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError>;
    /// Copies `source` (`size` bytes, in any bucket this store's credentials read) into
    /// this store under the same key, server-side: one copy up to `multipart_above`
    /// bytes, a multipart copy past it (S3 copies at most 5 GiB in one request).
    async fn copy_in(
        &self,
        source: &Location,
        size: u64,
        multipart_above: u64,
    ) -> Result<StoredObject, StoreError>;
    /// Deletes exactly these versions (a delete marker is never what is wanted here),
    /// in batches of 1,000; a version already gone counts as deleted.
    async fn delete_versions(&self, objects: &[StoredObject]) -> Result<(), StoreError>;
}

impl crate::errors::Classify for StoreError {
    fn retry_helps(&self) -> bool {
        self.reason.retry_helps()
    }
    fn name(&self) -> &'static str {
        self.reason.name("BucketUnavailable")
    }
}
