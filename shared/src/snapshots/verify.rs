//! A stored snapshot read back whole through the archive check and compared with what
//! the catalog recorded, before anything trusts it (a DR copy, a restore).

use super::{
    archive::{ArchiveError, SnapshotCheck, SnapshotFacts},
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
/// its SHA-256 with `expected` (when the catalog has it). Memory stays at one chunk.
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
    let archive = |source| VerifyError::Archive {
        object: location.clone(),
        source,
    };
    while let Some(chunk) = body.next_chunk().await.map_err(read)? {
        check.update(&chunk).map_err(archive)?;
    }
    let facts = check.finish().map_err(archive)?;
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
