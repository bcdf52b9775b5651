//! Fakes for every port, and a log capture, for unit tests here and in the functions.
//! Each fake is plain state a test sets and reads back; none expects calls in an order.

mod cluster;
mod dr;
mod dr_contract;
mod failing_node;
mod failover;
mod fake_node;
mod lifecycle;
mod node_contract;
mod snapshots;

pub use cluster::{FakeBackups, FakeFleet, FakeMetrics, FakeParameters};
pub use dr::{FakeDns, FakeGroup, FakeNotifier};
pub use dr_contract::{dns_contract, group_contract, notifier_contract};
pub use failing_node::{FailingNode, Failure};
pub use failover::{
    failover_through, FakeClusterRestore, FakeFailoverRecords, FakePrimary, FakeStandbyBackup,
};
pub use fake_node::{
    default_keyring_policy, ClusterState, FakeCluster, FakeDatabase, FakeNode, Keyring,
};
pub use lifecycle::{init_record_contract, FakeActions, FakeLocks, FakeRecords};
pub use log_capture::{capture_logs, first_found, LogCapture};
pub use node_contract::{node_contract, ContractBreach, ContractReport};
pub use snapshots::{
    good_snapshot, sha256_hex, snapshot_files, snapshot_of, FakeBucket, FakeCatalog, FakeS3,
    FakeStore, FakeUpload,
};
