//! Raft snapshots: the in-stream check every backup and restore runs ([`archive`]).
//! snapshot-backup and snapshot-restore are built on it.

pub mod archive;
