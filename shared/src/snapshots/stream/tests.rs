use std::collections::VecDeque;

use super::*;
use crate::testing::{good_snapshot, FakeStore};

/// A source that hands out `data` in chunks of `chunk`, then, if `fail_at` is set, an
/// error once that many bytes have been given.
struct Chunks {
    data: VecDeque<Bytes>,
}

impl Chunks {
    fn of(data: &[u8], chunk: usize) -> Self {
        Self {
            data: data.chunks(chunk).map(Bytes::copy_from_slice).collect(),
        }
    }
}

#[async_trait::async_trait]
impl ChunkSource for Chunks {
    type Error = VaultError;
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, VaultError> {
        Ok(self.data.pop_front())
    }
}

fn key(index: u64, term: u64) -> String {
    format!("prod/2026-11-23T10:00:00Z-{index}-{term}.snap")
}

#[tokio::test]
async fn a_good_snapshot_is_stored_in_parts_under_its_index() {
    let snapshot = good_snapshot(42, 12 << 20);
    let store = FakeStore::default();
    let metadata = BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]);
    let streamed = stream_into_store(
        &mut Chunks::of(&snapshot, 64 << 10),
        &store,
        MIN_PART_SIZE,
        |i, t| (key(i, t), metadata.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(streamed.object.key, key(42, 2));
    assert_eq!(streamed.facts.bytes, snapshot.len() as u64);
    let uploads = store.uploads.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(uploads.len(), 1);
    let upload = &uploads[0];
    assert_eq!(upload.state, "completed");
    assert_eq!(upload.bytes, snapshot, "stored as received");
    assert_eq!(upload.metadata, metadata);
    let (last, full) = upload.parts.split_last().unwrap_or_else(|| panic!("parts"));
    assert!(
        full.iter().all(|p| *p == MIN_PART_SIZE),
        "{:?}",
        upload.parts
    );
    assert!(*last <= MIN_PART_SIZE && *last > 0, "{:?}", upload.parts);
}

#[tokio::test]
async fn a_snapshot_smaller_than_the_decoders_buffer_is_stored_under_its_index() {
    // The gzip decoder passes its output on in blocks of 32 KiB: a snapshot this small
    // ends before meta.json has reached the check.
    let snapshot = good_snapshot(7, 1024);
    let store = FakeStore::default();
    let streamed = stream_into_store(
        &mut Chunks::of(&snapshot, 64 << 10),
        &store,
        MIN_PART_SIZE,
        |i, t| (key(i, t), BTreeMap::new()),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(streamed.object.key, key(7, 2));
    assert_eq!(streamed.facts.index, 7);
    let uploads = store.uploads.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].state, "completed");
    assert_eq!(uploads[0].bytes, snapshot, "stored as received");
}

#[tokio::test]
async fn a_truncated_snapshot_is_aborted_and_nothing_is_stored() {
    let snapshot = good_snapshot(42, 12 << 20);
    for cut in [snapshot.len() / 3, snapshot.len() - 10] {
        let store = FakeStore::default();
        let err = stream_into_store(
            &mut Chunks::of(&snapshot[..cut], 64 << 10),
            &store,
            MIN_PART_SIZE,
            |i, t| (key(i, t), BTreeMap::new()),
        )
        .await
        .expect_err("truncated");
        assert!(
            matches!(err, StreamError::Archive(ArchiveError::Truncated { .. })),
            "cut at {cut}: {}",
            error_chain(&err)
        );
        let uploads = store.uploads.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].state, "aborted", "cut at {cut}");
    }
}

#[tokio::test]
async fn a_failed_part_aborts_the_upload() {
    let snapshot = good_snapshot(42, 12 << 20);
    let store = FakeStore {
        fail_part: Some(2),
        ..FakeStore::default()
    };
    let err = stream_into_store(
        &mut Chunks::of(&snapshot, 64 << 10),
        &store,
        MIN_PART_SIZE,
        |i, t| (key(i, t), BTreeMap::new()),
    )
    .await
    .expect_err("store failure");
    assert!(
        matches!(err, StreamError::Store(_)),
        "{}",
        error_chain(&err)
    );
    let uploads = store.uploads.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(uploads[0].state, "aborted");
}

#[tokio::test]
async fn a_stream_without_meta_json_first_is_refused_before_any_upload() {
    let store = FakeStore::default();
    let noise: Vec<u8> = crate::testing::snapshot_of(&[("state.bin", vec![7u8; 6 << 20])]);
    let err = stream_into_store(
        &mut Chunks::of(&noise, 64 << 10),
        &store,
        MIN_PART_SIZE,
        |i, t| (key(i, t), BTreeMap::new()),
    )
    .await
    .expect_err("no meta.json");
    assert!(
        matches!(
            err,
            StreamError::NoMetaFirst { .. } | StreamError::Archive(_)
        ),
        "{}",
        error_chain(&err)
    );
    assert!(store
        .uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty());
}
