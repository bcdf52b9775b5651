//! Raft snapshots: the in-stream check every backup and restore runs ([`archive`]) and
//! the store they are streamed into, part by part ([`store`], [`stream`]). snapshot-backup and
//! snapshot-restore are built on them.

pub mod archive;
pub mod backup;
pub mod catalog;
pub mod restore;
pub mod retention;
pub mod store;
pub mod stream;
