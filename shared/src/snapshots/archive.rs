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

use std::io::Write;

use sha2::{Digest, Sha256};

/// The most a small file (`meta.json`, `SHA256SUMS`) may hold; a bigger one is refused.
pub const SMALL_FILE_CAP: u64 = 1 << 20;

const BLOCK: usize = 512;

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry being read.
struct Entry {
    name: String,
    remaining: u64,
    padding: u64,
    hasher: Sha256,
    kept: Option<Vec<u8>>,
}

#[derive(Default)]
enum State {
    #[default]
    Header,
    Data(Box<Entry>),
    Padding(u64),
    Ended,
}

/// The tar layer: a `Write` sink for the decompressed bytes.
#[derive(Default)]
struct TarCheck {
    header: Vec<u8>,
    state: State,
    zero_blocks: u8,
    /// Every complete file: name and SHA-256 hex.
    files: Vec<(String, String)>,
    meta: Option<Vec<u8>>,
    sums: Option<Vec<u8>>,
}

fn tar_error(reason: impl Into<String>) -> std::io::Error {
    std::io::Error::other(ArchiveError::Tar {
        reason: reason.into(),
    })
}

impl Write for TarCheck {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            match &mut self.state {
                State::Ended => {
                    // Tar pads its end with zero blocks up to a record; anything else is not
                    // part of a snapshot.
                    if rest.iter().any(|b| *b != 0) {
                        return Err(tar_error("data after the end of the archive"));
                    }
                    rest = &[];
                }
                State::Header => {
                    let take = (BLOCK - self.header.len()).min(rest.len());
                    self.header.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.header.len() == BLOCK {
                        let block = std::mem::take(&mut self.header);
                        self.read_header(&block)?;
                    }
                }
                State::Data(entry) => {
                    let take = (entry.remaining.min(rest.len() as u64)) as usize;
                    entry.hasher.update(&rest[..take]);
                    if let Some(kept) = entry.kept.as_mut() {
                        kept.extend_from_slice(&rest[..take]);
                    }
                    entry.remaining -= take as u64;
                    rest = &rest[take..];
                    if entry.remaining == 0 {
                        let padding = entry.padding;
                        if let State::Data(done) = std::mem::take(&mut self.state) {
                            self.file_done(*done);
                        }
                        self.state = if padding > 0 {
                            State::Padding(padding)
                        } else {
                            State::Header
                        };
                    }
                }
                State::Padding(left) => {
                    let take = (*left).min(rest.len() as u64);
                    *left -= take;
                    rest = &rest[take as usize..];
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TarCheck {
    fn read_header(&mut self, block: &[u8]) -> std::io::Result<()> {
        if block.iter().all(|b| *b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks == 2 {
                self.state = State::Ended;
            }
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err(tar_error("a lone zero block inside the archive"));
        }
        let stored =
            octal(&block[148..156]).ok_or_else(|| tar_error("unreadable header checksum"))?;
        let computed: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if stored != computed {
            return Err(tar_error("a header fails its checksum"));
        }
        let name = text(&block[..100]);
        let prefix = text(&block[345..500]);
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size =
            octal(&block[124..136]).ok_or_else(|| tar_error(format!("{name}: unreadable size")))?;
        match block[156] {
            b'0' | 0 => {}
            other => {
                return Err(tar_error(format!(
                    "{name}: entry type {:?} is not a regular file",
                    other as char
                )))
            }
        }
        let small = name == "meta.json" || name == "SHA256SUMS";
        if small && size > SMALL_FILE_CAP {
            return Err(tar_error(format!(
                "{name} is {size} bytes, over the {SMALL_FILE_CAP}-byte cap"
            )));
        }
        let entry = Entry {
            kept: small.then(|| Vec::with_capacity(size as usize)),
            name,
            remaining: size,
            padding: (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64,
            hasher: Sha256::new(),
        };
        if size == 0 {
            self.file_done(entry);
        } else {
            self.state = State::Data(Box::new(entry));
        }
        Ok(())
    }

    fn file_done(&mut self, entry: Entry) {
        match entry.name.as_str() {
            "meta.json" => self.meta = entry.kept,
            "SHA256SUMS" => self.sums = entry.kept,
            _ => {}
        }
        self.files.push((entry.name, hex(&entry.hasher.finalize())));
    }

    /// The archive is complete and consistent: returns index, term and state size.
    fn verify(self, bytes: u64) -> Result<(u64, u64, u64), ArchiveError> {
        if !matches!(self.state, State::Ended) {
            let got: Vec<&str> = self.files.iter().map(|(n, _)| n.as_str()).collect();
            return Err(ArchiveError::Truncated {
                bytes,
                missing: format!("the archive's end; it holds only [{}]", got.join(", ")),
            });
        }
        let has = |file: &str| self.files.iter().any(|(n, _)| n == file);
        for file in ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"] {
            if !has(file) {
                return Err(ArchiveError::Missing { file });
            }
        }
        let sums = self.sums.unwrap_or_default();
        let sums = std::str::from_utf8(&sums).map_err(|e| ArchiveError::Unreadable {
            file: "SHA256SUMS",
            reason: e.to_string(),
        })?;
        let mut listed = Vec::new();
        for line in sums.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, file) = line
                .split_once(char::is_whitespace)
                .map(|(s, f)| (s.trim(), f.trim().trim_start_matches('*')))
                .ok_or_else(|| ArchiveError::Unreadable {
                    file: "SHA256SUMS",
                    reason: format!("line {line:?} is not `<sum>  <file>`"),
                })?;
            let actual = self.files.iter().find(|(n, _)| n == file).ok_or_else(|| {
                ArchiveError::Unlisted {
                    file: file.to_owned(),
                }
            })?;
            if !actual.1.eq_ignore_ascii_case(sum) {
                return Err(ArchiveError::Mismatch {
                    file: file.to_owned(),
                });
            }
            listed.push(file);
        }
        for file in ["meta.json", "state.bin"] {
            if !listed.contains(&file) {
                return Err(ArchiveError::Unreadable {
                    file: "SHA256SUMS",
                    reason: format!("it does not list {file}"),
                });
            }
        }
        parse_meta(&self.meta.unwrap_or_default())
    }
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

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn octal(field: &[u8]) -> Option<u64> {
    let digits = text(field);
    let digits = digits.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

#[cfg(test)]
mod tests;
