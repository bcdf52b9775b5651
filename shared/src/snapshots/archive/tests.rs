use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;

fn sum(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// One ustar entry, as Go's archive/tar writes it.
fn entry(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut header = [0u8; BLOCK];
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
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
}

fn snapshot(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, data) in files {
        entry(&mut tar, name, data);
    }
    tar.resize(tar.len() + 2 * BLOCK, 0);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar).unwrap_or_else(|e| panic!("{e}"));
    gzip.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn files(state: &[u8], sums_for_state: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let meta = br#"{"Version":1,"ID":"2-42-1","Index":42,"Term":2,"Size":1000,"Configuration":{}}"#
        .to_vec();
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        sum(&meta),
        sum(sums_for_state)
    );
    vec![
        ("meta.json", meta),
        ("state.bin", state.to_vec()),
        ("SHA256SUMS", sums.into_bytes()),
        ("SHA256SUMS.sealed", b"signature".to_vec()),
    ]
}

fn good() -> Vec<u8> {
    let state: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    snapshot(&files(&state, &state))
}

fn check(stream: &[u8], chunk: usize) -> Result<SnapshotFacts, ArchiveError> {
    let mut check = SnapshotCheck::new();
    for part in stream.chunks(chunk) {
        check.update(part)?;
    }
    check.finish()
}

#[test]
fn a_good_snapshot_gives_its_facts_whatever_the_chunking() {
    let stream = good();
    for chunk in [1, 7, 512, 4096, stream.len()] {
        let facts = check(&stream, chunk).unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        assert_eq!(
            facts,
            SnapshotFacts {
                index: 42,
                term: 2,
                state_size: 1000,
                sha256: sum(&stream),
                bytes: stream.len() as u64,
            }
        );
    }
}

#[test]
fn a_snapshot_cut_anywhere_is_refused() {
    let stream = good();
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
    let state = b"the state".to_vec();
    let stream = snapshot(&files(&state, b"another state"));
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
    let state = b"the state".to_vec();
    let mut unsealed = files(&state, &state);
    unsealed.pop();
    let err = check(&snapshot(&unsealed), 100).expect_err("unsealed");
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
