use std::{collections::BTreeMap, io::Write, sync::Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::snapshots::store::{PartUpload, SnapshotStore, StoreError, StoredObject};

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
