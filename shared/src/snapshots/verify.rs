//! A stored snapshot read back whole through the archive check and compared with what
//! the catalog recorded, before anything trusts it (a DR copy, a restore).

use sha2::{Digest, Sha256};

use super::{
    archive::{hex, ArchiveError, SnapshotCheck, SnapshotFacts},
    store::{Location, SnapshotObjects, StoreError, StoredObject},
};

/// An object read back is not the snapshot the catalog recorded.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The object could not be read.
    #[error("cannot read {object} back to check it")]
    Read {
        /// The object.
        object: Location,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The archive is not whole or not consistent.
    #[error("{object} is not a good snapshot")]
    Archive {
        /// The object.
        object: Location,
        /// What is wrong.
        #[source]
        source: ArchiveError,
    },
    /// The object has the length the catalog recorded but its bytes are not the ones
    /// recorded: damaged in place (a flipped byte reads as a broken or short archive,
    /// which is why the length decides), not cut short.
    #[error("{object} is corrupt: it has the recorded {bytes} bytes, but SHA-256 {got} where the catalog recorded {expected}")]
    Corrupt {
        /// The object.
        object: Location,
        /// Its size, the recorded one.
        bytes: u64,
        /// The catalog's SHA-256.
        expected: String,
        /// The object's.
        got: String,
    },
    /// The archive is whole, and it is not the one recorded.
    #[error("{object} has SHA-256 {got} and {got_bytes} bytes, but the catalog recorded {expected} and {expected_bytes} bytes")]
    Checksum {
        /// The object.
        object: Location,
        /// The catalog's.
        expected: String,
        /// The object's.
        got: String,
        /// The catalog's size.
        expected_bytes: u64,
        /// The object's size.
        got_bytes: u64,
    },
}

/// Reads `object` from `store` chunk by chunk through the archive check and compares
/// its SHA-256 and size with `expected` (when the catalog has them). The whole object is
/// read even after the check fails, to say whether it is short (truncated) or damaged
/// in place (corrupt). Memory stays at one chunk.
pub async fn read_and_check(
    store: &dyn SnapshotObjects,
    object: &StoredObject,
    expected: Option<(&str, u64)>,
) -> Result<SnapshotFacts, VerifyError> {
    let location = store.location_of(object);
    let read = |source| VerifyError::Read {
        object: location.clone(),
        source,
    };
    let mut body = store.open(object).await.map_err(read)?;
    let mut check = SnapshotCheck::new();
    // Every byte is hashed on its own too, so that an archive error can be told apart:
    // a short object is truncated, a full-length one whose sum differs is corrupt.
    let mut whole = Sha256::new();
    let mut bytes = 0u64;
    let mut broken = None;
    while let Some(chunk) = body.next_chunk().await.map_err(read)? {
        whole.update(&chunk);
        bytes += chunk.len() as u64;
        if broken.is_none() {
            broken = check.update(&chunk).err();
        }
    }
    let checked = match broken {
        Some(e) => Err(e),
        None => check.finish(),
    };
    let facts = match (checked, expected) {
        (Ok(facts), _) => facts,
        (Err(source), Some((sha256, recorded))) if bytes == recorded => {
            let got = hex(&whole.finalize());
            if got == sha256 {
                // The very bytes recorded: the check itself refuses them.
                return Err(VerifyError::Archive {
                    object: location,
                    source,
                });
            }
            // The archive error of a damaged byte is misleading (a broken stream reads
            // as a short one): the length and the sum say what happened.
            return Err(VerifyError::Corrupt {
                object: location,
                bytes,
                expected: sha256.to_owned(),
                got,
            });
        }
        (Err(source), _) => {
            return Err(VerifyError::Archive {
                object: location,
                source,
            })
        }
    };
    if let Some((sha256, bytes)) = expected {
        if facts.sha256 != sha256 || facts.bytes != bytes {
            return Err(VerifyError::Checksum {
                object: location,
                expected: sha256.to_owned(),
                got: facts.sha256,
                expected_bytes: bytes,
                got_bytes: facts.bytes,
            });
        }
    }
    Ok(facts)
}

/// The version a location names, in the store's terms.
pub fn stored(location: &Location) -> StoredObject {
    StoredObject {
        key: location.key.clone(),
        version_id: location.version_id.clone(),
    }
}

impl crate::errors::Classify for VerifyError {
    fn retry_helps(&self) -> bool {
        matches!(self, Self::Read { .. })
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Read { .. } => "BucketUnavailable",
            _ => "ChecksumMismatch",
        }
    }
}
