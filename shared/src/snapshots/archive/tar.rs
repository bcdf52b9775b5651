//! The tar layer of the snapshot check: a `Write` sink for the decompressed bytes that
//! reads each 512-byte header, hashes every entry as it passes, keeps the two small files
//! whole, and at the end compares every file with `SHA256SUMS`.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::{hex, parse_meta, ArchiveError, SMALL_FILE_CAP};

const BLOCK: usize = 512;

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
pub(super) struct TarCheck {
    header: Vec<u8>,
    state: State,
    zero_blocks: u8,
    /// Every complete file: name and SHA-256 hex.
    files: Vec<(String, String)>,
    pub(super) meta: Option<Vec<u8>>,
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
    pub(super) fn verify(self, bytes: u64) -> Result<(u64, u64, u64), ArchiveError> {
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
