//! Where snapshots are kept: the port, in domain words. The adapter is
//! `crate::aws::S3SnapshotStore`; an upload is fed part by part and then completed or
//! aborted, so a snapshot is never held whole anywhere.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;

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
    pub reason: String,
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
