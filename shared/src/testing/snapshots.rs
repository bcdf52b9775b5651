use std::{collections::BTreeMap, io::Write, sync::Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::{
    ids::ClusterName,
    snapshots::{
        catalog::{Catalog, CatalogEntry, CatalogError, RestoreRecord},
        store::{
            ChunkSource, Location, ObjectBody, ObjectInfo, PartUpload, SnapshotObjects,
            SnapshotStore, StoreError, StoredObject,
        },
    },
};

/// SHA-256, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let mut field =
        |at: usize, text: String| header[at..at + text.len()].copy_from_slice(text.as_bytes());
    field(100, "0000600\0".into());
    field(108, "0000000\0".into());
    field(116, "0000000\0".into());
    field(124, format!("{:011o}\0", data.len()));
    field(136, "00000000000\0".into());
    field(148, "        ".into());
    field(156, "0".into());
    field(257, "ustar\0".into());
    field(263, "00".into());
    let checksum: u64 = header.iter().map(|b| u64::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A gzip'd tar holding `files` in order, ended as Go's archive/tar ends one.
pub fn snapshot_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, data) in files {
        tar_entry(&mut tar, name, data);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gzip.write_all(&tar);
    gzip.finish().unwrap_or_default()
}

/// The files of a Raft snapshot at `index` whose SHA256SUMS lists `sums_for_state` as
/// state.bin's content (pass `state` itself for a good snapshot).
pub fn snapshot_files(
    index: u64,
    state: &[u8],
    sums_for_state: &[u8],
) -> Vec<(&'static str, Vec<u8>)> {
    let meta = format!(
        r#"{{"Version":1,"ID":"2-{index}-1","Index":{index},"Term":2,"Size":{},"Configuration":{{}}}}"#,
        state.len()
    )
    .into_bytes();
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        sha256_hex(&meta),
        sha256_hex(sums_for_state)
    );
    vec![
        ("meta.json", meta),
        ("state.bin", state.to_vec()),
        ("SHA256SUMS", sums.into_bytes()),
        ("SHA256SUMS.sealed", b"signature".to_vec()),
    ]
}

/// A good Raft snapshot at `index` whose state is `state_len` bytes that do not compress.
pub fn good_snapshot(index: u64, state_len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(index);
    let state: Vec<u8> = (0..state_len).map(|_| rng.u8(..)).collect();
    snapshot_of(&snapshot_files(index, &state, &state))
}

/// One upload as the fake store saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUpload {
    /// The key.
    pub key: String,
    /// Metadata given at the start.
    pub metadata: BTreeMap<String, String>,
    /// Each part's length, in order.
    pub parts: Vec<usize>,
    /// All bytes, in order.
    pub bytes: Vec<u8>,
    /// `open`, `completed` or `aborted`.
    pub state: &'static str,
}

/// A snapshot store in memory: every upload, whatever became of it.
#[derive(Default)]
pub struct FakeStore {
    /// The uploads, in the order they began.
    pub uploads: std::sync::Arc<Mutex<Vec<FakeUpload>>>,
    /// Fail the part with this number (from 1).
    pub fail_part: Option<usize>,
}

struct FakePartUpload {
    index: usize,
    uploads: std::sync::Arc<Mutex<Vec<FakeUpload>>>,
    fail_part: Option<usize>,
}

impl FakePartUpload {
    fn with<T>(&self, f: impl FnOnce(&mut FakeUpload) -> T) -> T {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut uploads[self.index])
    }
}

#[async_trait]
impl SnapshotStore for FakeStore {
    async fn begin(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Box<dyn PartUpload>, StoreError> {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        uploads.push(FakeUpload {
            key: key.to_owned(),
            metadata: metadata.clone(),
            parts: Vec::new(),
            bytes: Vec::new(),
            state: "open",
        });
        Ok(Box::new(FakePartUpload {
            index: uploads.len() - 1,
            uploads: self.uploads.clone(),
            fail_part: self.fail_part,
        }))
    }
}

#[async_trait]
impl PartUpload for FakePartUpload {
    async fn part(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        let fail = self.fail_part;
        self.with(|u| {
            if fail == Some(u.parts.len() + 1) {
                return Err(StoreError {
                    action: "upload a part of",
                    bucket: "fake".into(),
                    key: u.key.clone(),
                    reason: "injected failure".into(),
                });
            }
            u.parts.push(bytes.len());
            u.bytes.extend_from_slice(&bytes);
            Ok(())
        })
    }

    async fn complete(self: Box<Self>) -> Result<StoredObject, StoreError> {
        Ok(self.with(|u| {
            u.state = "completed";
            StoredObject {
                key: u.key.clone(),
                version_id: Some("v1".into()),
            }
        }))
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        self.with(|u| u.state = "aborted");
        Ok(())
    }
}

/// An object version's name in [`FakeS3`]: bucket, key, version.
pub type VersionId = (String, String, String);

/// Buckets in memory, shared by every [`FakeBucket`] made from it, so a server-side copy
/// from one bucket into another can be faked: `(bucket, key, version)` to bytes, and
/// each version's tags.
#[derive(Default, Clone)]
pub struct FakeS3 {
    /// Every object version.
    pub objects: std::sync::Arc<Mutex<BTreeMap<VersionId, Vec<u8>>>>,
    /// Every version's tags.
    pub tags: std::sync::Arc<Mutex<BTreeMap<VersionId, BTreeMap<String, String>>>>,
    /// Every version's user metadata, fixed when its upload began.
    pub metadata: std::sync::Arc<Mutex<BTreeMap<VersionId, BTreeMap<String, String>>>>,
    /// The keys of uploads aborted, in order (an aborted upload stores nothing).
    pub aborted: std::sync::Arc<Mutex<Vec<String>>>,
    next_version: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeS3 {
    /// A bucket named `bucket` in `region`.
    pub fn bucket(&self, region: &str, bucket: &str) -> FakeBucket {
        FakeBucket {
            s3: self.clone(),
            region: region.to_owned(),
            bucket: bucket.to_owned(),
            corrupt_copies: false,
        }
    }

    /// Stores `bytes` as a new version of `bucket`/`key`; returns the version.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> String {
        let n = self
            .next_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let version = format!("v{}", n + 1);
        lock(&self.objects).insert((bucket.into(), key.into(), version.clone()), bytes);
        version
    }

    /// The bytes of one version.
    pub fn get(&self, bucket: &str, key: &str, version: &str) -> Option<Vec<u8>> {
        lock(&self.objects)
            .get(&(bucket.into(), key.into(), version.into()))
            .cloned()
    }

    /// The versions in `bucket`, as `(key, version)`.
    pub fn versions(&self, bucket: &str) -> Vec<(String, String)> {
        lock(&self.objects)
            .keys()
            .filter(|(b, _, _)| b == bucket)
            .map(|(_, k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One bucket of a [`FakeS3`]: uploads, reads, tags, copies and deletes exact versions.
pub struct FakeBucket {
    /// The buckets it belongs to.
    pub s3: FakeS3,
    /// Its region.
    pub region: String,
    /// Its name.
    pub bucket: String,
    /// Copies into this bucket lose their second half (a copy that must fail its check).
    pub corrupt_copies: bool,
}

impl FakeBucket {
    fn error(&self, action: &'static str, key: &str, reason: &str) -> StoreError {
        StoreError {
            action,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    fn id(&self, object: &StoredObject) -> VersionId {
        (
            self.bucket.clone(),
            object.key.clone(),
            object.version_id.clone().unwrap_or_default(),
        )
    }
}

struct FakeBucketUpload {
    s3: FakeS3,
    bucket: String,
    key: String,
    metadata: BTreeMap<String, String>,
    bytes: Vec<u8>,
}

#[async_trait]
impl PartUpload for FakeBucketUpload {
    async fn part(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        self.bytes.extend_from_slice(&bytes);
        Ok(())
    }

    async fn complete(self: Box<Self>) -> Result<StoredObject, StoreError> {
        let version = self.s3.put(&self.bucket, &self.key, self.bytes);
        lock(&self.s3.metadata).insert(
            (self.bucket, self.key.clone(), version.clone()),
            self.metadata,
        );
        Ok(StoredObject {
            key: self.key,
            version_id: Some(version),
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        lock(&self.s3.aborted).push(self.key);
        Ok(())
    }
}

#[async_trait]
impl SnapshotStore for FakeBucket {
    async fn begin(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Box<dyn PartUpload>, StoreError> {
        Ok(Box::new(FakeBucketUpload {
            s3: self.s3.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            metadata: metadata.clone(),
            bytes: Vec::new(),
        }))
    }
}

struct FakeBody(Option<Bytes>);

#[async_trait]
impl ChunkSource for FakeBody {
    type Error = StoreError;
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.take())
    }
}

#[async_trait]
impl SnapshotObjects for FakeBucket {
    fn location_of(&self, object: &StoredObject) -> Location {
        Location {
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            key: object.key.clone(),
            version_id: object.version_id.clone(),
        }
    }

    async fn head(&self, object: &StoredObject) -> Result<Option<ObjectInfo>, StoreError> {
        let id = self.id(object);
        let size = lock(&self.s3.objects).get(&id).map(|b| b.len() as u64);
        Ok(size.map(|size| ObjectInfo {
            size,
            metadata: lock(&self.s3.metadata)
                .get(&id)
                .cloned()
                .unwrap_or_default(),
        }))
    }

    async fn open(&self, object: &StoredObject) -> Result<Box<ObjectBody>, StoreError> {
        let bytes = lock(&self.s3.objects)
            .get(&self.id(object))
            .cloned()
            .ok_or_else(|| self.error("read", &object.key, "NoSuchVersion"))?;
        Ok(Box::new(FakeBody(Some(Bytes::from(bytes)))))
    }

    async fn tag(
        &self,
        object: &StoredObject,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        lock(&self.s3.tags).insert(self.id(object), tags.clone());
        Ok(())
    }

    async fn copy_in(
        &self,
        source: &Location,
        _size: u64,
        _multipart_above: u64,
    ) -> Result<StoredObject, StoreError> {
        let mut bytes = self
            .s3
            .get(
                &source.bucket,
                &source.key,
                source.version_id.as_deref().unwrap_or_default(),
            )
            .ok_or_else(|| self.error("copy into", &source.key, "NoSuchVersion"))?;
        if self.corrupt_copies {
            bytes.truncate(bytes.len() / 2);
        }
        let version = self.s3.put(&self.bucket, &source.key, bytes);
        // A copy keeps the source's metadata, as CopyObject does by default.
        let mut metadata = lock(&self.s3.metadata);
        let from = (
            source.bucket.clone(),
            source.key.clone(),
            source.version_id.clone().unwrap_or_default(),
        );
        if let Some(m) = metadata.get(&from).cloned() {
            metadata.insert(
                (self.bucket.clone(), source.key.clone(), version.clone()),
                m,
            );
        }
        Ok(StoredObject {
            key: source.key.clone(),
            version_id: Some(version),
        })
    }

    async fn delete_versions(&self, objects: &[StoredObject]) -> Result<(), StoreError> {
        let mut stored = lock(&self.s3.objects);
        for object in objects {
            stored.remove(&self.id(object));
        }
        Ok(())
    }
}

/// A snapshot catalog in memory (clones share it).
#[derive(Default, Clone)]
pub struct FakeCatalog {
    /// Every entry, in the order put (replaced in place when put again).
    pub entries: std::sync::Arc<Mutex<Vec<CatalogEntry>>>,
    /// Deliveries: `(cluster, id)` to the object stored.
    pub deliveries: std::sync::Arc<Mutex<BTreeMap<(String, String), Location>>>,
    /// Restores recorded, with their cluster.
    pub restores: std::sync::Arc<Mutex<Vec<(String, RestoreRecord)>>>,
}

#[async_trait]
impl Catalog for FakeCatalog {
    async fn put(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        let mut entries = lock(&self.entries);
        match entries.iter_mut().find(|e| e.object == entry.object) {
            Some(e) => *e = entry.clone(),
            None => entries.push(entry.clone()),
        }
        Ok(())
    }

    async fn entries(&self, cluster: &ClusterName) -> Result<Vec<CatalogEntry>, CatalogError> {
        let mut found: Vec<CatalogEntry> = lock(&self.entries)
            .iter()
            .filter(|e| e.cluster == cluster.as_str())
            .cloned()
            .collect();
        found.sort_by_key(|e| e.taken_at);
        Ok(found)
    }

    async fn newest(&self, cluster: &ClusterName) -> Result<Option<CatalogEntry>, CatalogError> {
        Ok(self.entries(cluster).await?.pop())
    }

    async fn remove(&self, entries: &[CatalogEntry]) -> Result<(), CatalogError> {
        lock(&self.entries).retain(|e| !entries.iter().any(|r| r.object == e.object));
        Ok(())
    }

    async fn delivery(
        &self,
        cluster: &ClusterName,
        id: &str,
    ) -> Result<Option<Location>, CatalogError> {
        Ok(lock(&self.deliveries)
            .get(&(cluster.to_string(), id.to_owned()))
            .cloned())
    }

    async fn put_delivery(
        &self,
        cluster: &ClusterName,
        id: &str,
        object: &Location,
    ) -> Result<(), CatalogError> {
        lock(&self.deliveries).insert((cluster.to_string(), id.to_owned()), object.clone());
        Ok(())
    }

    async fn put_restore(
        &self,
        cluster: &ClusterName,
        record: &RestoreRecord,
    ) -> Result<(), CatalogError> {
        lock(&self.restores).push((cluster.to_string(), record.clone()));
        Ok(())
    }
}
