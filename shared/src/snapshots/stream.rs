//! A snapshot from its source straight into the store, checked as it passes.
//!
//! The body is read chunk by chunk and cut into parts of `part_size`. While one full
//! part uploads, the next is read; the part after that waits for the upload, so when the
//! store is slower than the node, the body waits and TCP slows the sender. Memory stays
//! at about two parts, whatever the snapshot's size. The upload starts once `meta.json` (the archive's first entry) has
//! named the snapshot's index and term, which the object's key holds. Any failure (the
//! source, the check, the store, a truncated stream) aborts the upload: nothing is ever
//! stored as good unless the whole archive checked out.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use tracing::{info, warn};

use super::{
    archive::{ArchiveError, SnapshotCheck, SnapshotFacts},
    store::{PartUpload, SnapshotStore, StoreError, StoredObject},
};
use crate::{chunks::ChunkSource, error_chain, errors::Classify, vault::VaultError};

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// Room for the chunk that fills a part past its size (hyper's chunks are at most a few
/// tens of KiB).
const FILL_SLACK: usize = 256 << 10;

/// A snapshot stored and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    /// The object and its version.
    pub object: StoredObject,
    /// What the archive said about itself, and its checksum.
    pub facts: SnapshotFacts,
}

/// Why a snapshot was not stored. The upload, if one had begun, was aborted.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The node's stream failed.
    #[error("reading the snapshot failed; nothing was stored")]
    Source(#[source] VaultError),
    /// The snapshot is not good.
    #[error("the snapshot failed its check; nothing was stored")]
    Archive(#[source] ArchiveError),
    /// The store failed.
    #[error("storing the snapshot failed; nothing was stored")]
    Store(#[source] StoreError),
    /// `meta.json` did not come first: not a Raft snapshot this function knows.
    #[error("the snapshot's first {bytes} bytes hold no meta.json; nothing was stored")]
    NoMetaFirst {
        /// How far it looked.
        bytes: u64,
    },
}

/// Streams `source` into `store` under the key and with the metadata that
/// `name(index, term)` gives once meta.json has named them.
pub async fn stream_into_store(
    source: &mut dyn ChunkSource<Error = VaultError>,
    store: &dyn SnapshotStore,
    part_size: usize,
    name: impl Fn(u64, u64) -> (String, BTreeMap<String, String>) + Send,
) -> Result<Streamed, StreamError> {
    let part_size = part_size.max(MIN_PART_SIZE);
    let mut check = SnapshotCheck::new();
    let mut part = BytesMut::with_capacity(part_size + FILL_SLACK);
    let mut upload: Option<Box<dyn PartUpload>> = None;
    let outcome = async {
        // A full part waits here while the next one is read.
        let mut ready: Option<Bytes> = None;
        // The buffer of the part last uploaded, once the store is done with it: two
        // buffers serve the whole stream, so the allocator never accumulates freed
        // parts (glibc keeps large freed blocks per thread arena).
        let mut spare: Option<BytesMut> = None;
        loop {
            let filling = fill(source, &mut check, &mut part, part_size);
            let ended = match (ready.take(), upload.as_mut()) {
                // The previous part uploads while the next one is read: the transfer
                // takes about the longer of the two, not their sum.
                (Some(full), Some(upload)) => {
                    let (sent, filled) = tokio::join!(upload.part(full.clone()), filling);
                    sent.map_err(StreamError::Store)?;
                    spare = full.try_into_mut().ok();
                    filled?
                }
                _ => filling.await?,
            };
            if upload.is_none() {
                let Some((index, term)) = check.index_and_term() else {
                    if ended {
                        // The decoder holds back up to 32 KiB of output, so a small
                        // snapshot can end before meta.json reached the check: the
                        // finished check names it below, or says why it is not good.
                        break;
                    }
                    // meta.json is a few hundred bytes; a part's worth without it is not
                    // a snapshot.
                    return Err(StreamError::NoMetaFirst {
                        bytes: check.bytes(),
                    });
                };
                let (key, metadata) = name(index, term);
                upload = Some(
                    store
                        .begin(&key, &metadata)
                        .await
                        .map_err(StreamError::Store)?,
                );
            }
            if ended {
                break;
            }
            // The next part starts in a buffer of its own, sized once (left to grow, it
            // would double past the part size), with the bytes read past this part.
            let mut next = spare
                .take()
                .unwrap_or_else(|| BytesMut::with_capacity(part_size + FILL_SLACK));
            next.clear();
            next.extend_from_slice(&part[part_size..]);
            part.truncate(part_size);
            ready = Some(std::mem::replace(&mut part, next).freeze());
        }
        let facts = std::mem::take(&mut check)
            .finish()
            .map_err(StreamError::Archive)?;
        Ok(facts)
    }
    .await;
    let facts = match outcome {
        Ok(facts) => facts,
        Err(e) => {
            abort(upload).await;
            return Err(e);
        }
    };
    let mut upload = match upload {
        Some(upload) => upload,
        None => {
            let (key, metadata) = name(facts.index, facts.term);
            store
                .begin(&key, &metadata)
                .await
                .map_err(StreamError::Store)?
        }
    };
    if !part.is_empty() {
        if let Err(e) = upload.part(part.freeze()).await {
            abort(Some(upload)).await;
            return Err(StreamError::Store(e));
        }
    }
    let object = upload.complete().await.map_err(StreamError::Store)?;
    info!(key = %object.key, version = object.version_id.as_deref().unwrap_or(""), index = facts.index, bytes = facts.bytes, "snapshot stored and checked");
    Ok(Streamed { object, facts })
}

/// Reads `source` into `part`, checking every chunk, until `part` holds at least
/// `part_size` bytes or the source ends; says whether it ended.
async fn fill(
    source: &mut dyn ChunkSource<Error = VaultError>,
    check: &mut SnapshotCheck,
    part: &mut BytesMut,
    part_size: usize,
) -> Result<bool, StreamError> {
    while part.len() < part_size {
        match source.next_chunk().await.map_err(StreamError::Source)? {
            Some(chunk) => {
                check.update(&chunk).map_err(StreamError::Archive)?;
                part.extend_from_slice(&chunk);
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

async fn abort(upload: Option<Box<dyn PartUpload>>) {
    if let Some(upload) = upload {
        if let Err(e) = upload.abort().await {
            // S3 lifecycle rules expire abandoned uploads; nothing was completed.
            warn!(error = %error_chain(&e), "aborting the upload failed; its parts expire by the bucket's lifecycle rule");
        }
    }
}

impl Classify for StreamError {
    fn retry_helps(&self) -> bool {
        match self {
            Self::Source(e) => e.retry_helps(),
            _ => true,
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Source(e) if !e.retry_helps() => e.name(),
            Self::Archive(_) | Self::NoMetaFirst { .. } => "SnapshotInvalid",
            _ => "SnapshotNotStored",
        }
    }
}

#[cfg(test)]
mod tests;
