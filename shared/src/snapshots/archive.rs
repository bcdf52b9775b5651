//! The in-stream check of a Raft snapshot, fed chunk by chunk as it arrives, with memory
//! bounded whatever the snapshot's size.
//!
//! `GET sys/storage/raft/snapshot` answers a gzip'd tar whose entries are `meta.json`
//! (index, term, size), `state.bin`, `SHA256SUMS` and `SHA256SUMS.sealed`, in that order.
//! The sums arrive after the data, so every entry is hashed as it passes and compared
//! when the archive ends. A snapshot is good only if the gzip stream and the tar archive
//! both end properly, every file matches `SHA256SUMS`, `meta.json` and `state.bin` are
//! listed there, and `SHA256SUMS.sealed` (the sums signed with the cluster's keys) is
//! present. A truncated stream lacks the trailing entries and fails.
//!
//! Memory: one 512-byte header buffer, the hashers, and the two small files kept whole
//! (`meta.json`, `SHA256SUMS`, each capped at [`SMALL_FILE_CAP`]); `state.bin` is only
//! hashed.

mod tar;

use std::io::Write;

use sha2::{Digest, Sha256};

use self::tar::TarCheck;

/// The most a small file (`meta.json`, `SHA256SUMS`) may hold; a bigger one is refused.
pub const SMALL_FILE_CAP: u64 = 1 << 20;

/// What a good snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    /// Raft index of the snapshot (`meta.json` `Index`).
    pub index: u64,
    /// Raft term (`meta.json` `Term`).
    pub term: u64,
    /// Size of the state inside, as `meta.json` states it.
    pub state_size: u64,
    /// SHA-256 of the snapshot as received (the compressed stream), hex.
    pub sha256: String,
    /// Bytes received.
    pub bytes: u64,
}

/// Why a snapshot is not good. Nothing is stored as good after one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The gzip layer is corrupt (bad header, bad data, bad checksum).
    #[error("the snapshot's gzip stream is corrupt after {bytes} bytes: {reason}")]
    Gzip {
        /// Bytes received when it was found.
        bytes: u64,
        /// What the decoder said.
        reason: String,
    },
    /// The tar layer is corrupt.
    #[error("the snapshot's tar archive is malformed: {reason}")]
    Tar {
        /// What was wrong.
        reason: String,
    },
    /// The stream stopped before the archive ended.
    #[error("the snapshot stream ended after {bytes} bytes, before its archive did (truncated): {missing}")]
    Truncated {
        /// Bytes received.
        bytes: u64,
        /// What was still missing.
        missing: String,
    },
    /// A file the snapshot must hold is absent.
    #[error("the snapshot has no {file}")]
    Missing {
        /// The file.
        file: &'static str,
    },
    /// A file does not match its sum.
    #[error("{file} in the snapshot does not match its SHA256SUMS entry")]
    Mismatch {
        /// The file.
        file: String,
    },
    /// `SHA256SUMS` lists a file the archive does not hold.
    #[error("SHA256SUMS lists {file}, which the snapshot does not contain")]
    Unlisted {
        /// The file.
        file: String,
    },
    /// `meta.json` or `SHA256SUMS` cannot be read.
    #[error("the snapshot's {file} is unreadable: {reason}")]
    Unreadable {
        /// The file.
        file: &'static str,
        /// Why.
        reason: String,
    },
}

/// Checks a snapshot as it streams: feed every chunk to [`SnapshotCheck::update`], then
/// call [`SnapshotCheck::finish`].
pub struct SnapshotCheck {
    object: Sha256,
    bytes: u64,
    gzip: flate2::write::GzDecoder<TarCheck>,
}

impl Default for SnapshotCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotCheck {
    /// A check at the start of a stream.
    pub fn new() -> Self {
        Self {
            object: Sha256::new(),
            bytes: 0,
            gzip: flate2::write::GzDecoder::new(TarCheck::default()),
        }
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Index and term from `meta.json`, as soon as it has passed (it is the archive's
    /// first entry, within the first kilobytes): enough to name the object before the
    /// rest arrives. Not a verdict: only [`SnapshotCheck::finish`] says the snapshot is
    /// good.
    pub fn index_and_term(&self) -> Option<(u64, u64)> {
        let meta = self.gzip.get_ref().meta.as_deref()?;
        parse_meta(meta).ok().map(|(index, term, _)| (index, term))
    }

    /// Feeds the next chunk of the stream, as received.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        self.object.update(chunk);
        self.bytes += chunk.len() as u64;
        let bytes = self.bytes;
        self.gzip.write_all(chunk).map_err(|e| {
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ArchiveError>())
            {
                Some(archive) => archive.clone(),
                None => ArchiveError::Gzip {
                    bytes,
                    reason: e.to_string(),
                },
            }
        })
    }

    /// Ends the stream: the archive must be complete and every sum must match.
    pub fn finish(mut self) -> Result<SnapshotFacts, ArchiveError> {
        let bytes = self.bytes;
        if let Err(e) = self.gzip.try_finish() {
            return Err(ArchiveError::Truncated {
                bytes,
                missing: format!("the gzip stream is incomplete ({e})"),
            });
        }
        let tar = self.gzip.finish().map_err(|e| ArchiveError::Truncated {
            bytes,
            missing: format!("the gzip stream is incomplete ({e})"),
        })?;
        let (index, term, state_size) = tar.verify(bytes)?;
        Ok(SnapshotFacts {
            index,
            term,
            state_size,
            sha256: hex(&self.object.finalize()),
            bytes,
        })
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Index, term and state size from `meta.json`.
fn parse_meta(meta: &[u8]) -> Result<(u64, u64, u64), ArchiveError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta {
        index: u64,
        term: u64,
        #[serde(default)]
        size: u64,
    }
    let meta: Meta = serde_json::from_slice(meta).map_err(|e| ArchiveError::Unreadable {
        file: "meta.json",
        reason: e.to_string(),
    })?;
    Ok((meta.index, meta.term, meta.size))
}

#[cfg(test)]
mod tests;
