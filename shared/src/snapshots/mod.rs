//! Raft snapshots: the in-stream check every backup and restore runs ([`archive`]) and
//! the store they are streamed into, part by part ([`store`], [`stream`]). snapshot-backup and
//! snapshot-restore are built on them: both take snapshots ([`take`]) and read them back
//! through the check ([`verify`]).

pub mod archive;
pub mod catalog;
pub mod retention;
pub mod store;
pub mod stream;
pub mod take;
pub mod verify;
