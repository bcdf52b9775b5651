//! Fakes for every port, and a log capture, for unit tests here and in the functions.
//! Each fake is plain state a test sets and reads back; none expects calls in an order.

mod cluster;
mod lifecycle;
mod logs;
mod snapshots;

pub use cluster::{FakeCluster, FakeFleet, FakeMetrics, FakeNode, FakeParameters};
pub use lifecycle::{FakeActions, FakeLocks, FakeRecords};
pub use logs::{capture_logs, LogCapture};
pub use snapshots::{
    good_snapshot, sha256_hex, snapshot_files, snapshot_of, FakeBucket, FakeCatalog, FakeS3,
    FakeStore, FakeUpload,
};
