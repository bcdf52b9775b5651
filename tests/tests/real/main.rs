//! Every real-server test, in one binary: after a change, one test binary to link instead
//! of one per file. Each module is one area; run one with a name filter, for example
//! `cargo nextest run -p testbed node_lifecycle::`.

mod adapters;
mod backup_restore;
mod dr_adapters;
mod dr_failover;
mod dr_region;
mod health_probe;
mod init_safety;
mod node_addressing;
mod node_lifecycle;
mod rotation;
mod snapshots;
mod test_bed;
