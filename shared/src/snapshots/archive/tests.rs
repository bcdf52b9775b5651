use super::*;
use crate::testing::{good_snapshot, sha256_hex, snapshot_files, snapshot_of};

fn check(stream: &[u8], chunk: usize) -> Result<SnapshotFacts, ArchiveError> {
    let mut check = SnapshotCheck::new();
    for part in stream.chunks(chunk) {
        check.update(part)?;
    }
    check.finish()
}

#[test]
fn a_good_snapshot_gives_its_facts_whatever_the_chunking() {
    let stream = good_snapshot(42, 1000);
    for chunk in [1, 7, 512, 4096, stream.len()] {
        let facts = check(&stream, chunk).unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        assert_eq!(
            facts,
            SnapshotFacts {
                index: 42,
                term: 2,
                state_size: 1000,
                sha256: sha256_hex(&stream),
                bytes: stream.len() as u64,
            }
        );
    }
}

#[test]
fn index_and_term_are_known_once_meta_json_has_passed() {
    let stream = good_snapshot(42, 100_000);
    let mut check = SnapshotCheck::new();
    assert_eq!(check.index_and_term(), None);
    for part in stream.chunks(1024) {
        check.update(part).unwrap_or_else(|e| panic!("{e}"));
        if check.index_and_term().is_some() {
            break;
        }
    }
    assert_eq!(check.index_and_term(), Some((42, 2)));
    assert!(
        check.bytes() < 4096,
        "known from the first kilobytes: {}",
        check.bytes()
    );
}

#[test]
fn a_snapshot_cut_anywhere_is_refused() {
    let stream = good_snapshot(42, 1000);
    for cut in (0..stream.len()).step_by(13).chain([stream.len() - 1]) {
        let err = check(&stream[..cut], 64).expect_err(&format!("cut at {cut}"));
        assert!(
            matches!(
                err,
                ArchiveError::Truncated { .. } | ArchiveError::Gzip { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_file_that_does_not_match_its_sum_is_named() {
    let stream = snapshot_of(&snapshot_files(7, b"the state", b"another state"));
    let err = check(&stream, 100).expect_err("mismatch");
    assert_eq!(
        err,
        ArchiveError::Mismatch {
            file: "state.bin".into()
        }
    );
}

#[test]
fn the_sealed_sums_are_required() {
    let mut unsealed = snapshot_files(7, b"the state", b"the state");
    unsealed.pop();
    let err = check(&snapshot_of(&unsealed), 100).expect_err("unsealed");
    assert_eq!(
        err,
        ArchiveError::Missing {
            file: "SHA256SUMS.sealed"
        }
    );
}

#[test]
fn data_that_is_not_gzip_is_refused() {
    let err = check(b"not a snapshot at all, just text", 8).expect_err("not gzip");
    assert!(
        matches!(
            err,
            ArchiveError::Gzip { .. } | ArchiveError::Truncated { .. }
        ),
        "{err}"
    );
}
