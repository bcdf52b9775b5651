//! A body read chunk by chunk, never collected: a snapshot as a node sends it, or an
//! object as the bucket returns it. One trait for both, so a snapshot can go from either
//! source through the same check.

use async_trait::async_trait;
use bytes::Bytes;

/// Where a body's bytes come from, in order. Memory holds one chunk at a time.
#[async_trait]
pub trait ChunkSource: Send {
    /// What a failed read says (the node's or the store's error).
    type Error;
    /// The next chunk; `None` at the end. A body cut mid-way is an error, or a short
    /// archive that the snapshot check refuses.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Self::Error>;
}

/// The failure carried inside a body being sent (a snapshot streamed into a node):
/// any error of the source or of the check on the way.
pub type SendFailure = Box<dyn std::error::Error + Send + Sync>;

/// A body to send, as a stream of chunks that ends in an error if the source or the check
/// on the way fails (the request is then cut off, and the node installs nothing).
pub type OutgoingBody =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, SendFailure>> + Send + 'static>>;

#[async_trait]
impl<S: ChunkSource + ?Sized> ChunkSource for Box<S> {
    type Error = S::Error;
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Self::Error> {
        (**self).next_chunk().await
    }
}
