//! The Vault policy of each function: the least each one needs, nothing more.

/// health-probe reads autopilot's view of the cluster; it changes nothing.
pub const HEALTH_PROBE: &str = r#"path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}
"#;
