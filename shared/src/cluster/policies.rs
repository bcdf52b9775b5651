//! The Vault policy of each function: the least each one needs, nothing more. Bootstrap
//! writes every one of them, with an AppRole of the same name, when it initialises a
//! cluster; the functions not built yet get theirs then too, so adding one later needs
//! no root token.

/// health-probe reads autopilot's view of the cluster; it changes nothing.
pub const HEALTH_PROBE: &str = r#"path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}
"#;

/// node-lifecycle reads the peers and their health, steps a leader down and removes the
/// peer of a departing node. Join and unseal need no token.
pub const NODE_LIFECYCLE: &str = r#"path "sys/storage/raft/configuration" {
  capabilities = ["read"]
}
path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}
path "sys/storage/raft/remove-peer" {
  capabilities = ["update"]
}
path "sys/step-down" {
  capabilities = ["update", "sudo"]
}
"#;

/// snapshot-backup takes snapshots.
pub const SNAPSHOT_BACKUP: &str = r#"path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
"#;

/// snapshot-restore takes the safety snapshot, restores, and watches the cluster recover.
pub const SNAPSHOT_RESTORE: &str = r#"path "sys/storage/raft/snapshot" {
  capabilities = ["read", "update"]
}
path "sys/storage/raft/snapshot-force" {
  capabilities = ["update", "sudo"]
}
path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}
"#;

/// credential-rotation rotates the keyring, the functions' secret IDs, secrets engines'
/// root credentials, and (through rekey) the unseal or recovery shares.
pub const CREDENTIAL_ROTATION: &str = r#"path "sys/rotate" {
  capabilities = ["update", "sudo"]
}
path "sys/rotate/root" {
  capabilities = ["update", "sudo"]
}
path "sys/rotate/config" {
  capabilities = ["read", "update"]
}
path "sys/key-status" {
  capabilities = ["read"]
}
path "auth/approle/role/+/secret-id" {
  capabilities = ["update"]
}
path "auth/approle/role/+/secret-id-accessor/destroy" {
  capabilities = ["update"]
}
path "auth/approle/role/+/secret-id/lookup" {
  capabilities = ["update"]
}
path "+/rotate-root/+" {
  capabilities = ["update"]
}
path "+/config/+" {
  capabilities = ["read"]
}
path "+/static-roles/*" {
  capabilities = ["list", "read"]
}
path "+/creds/+" {
  capabilities = ["read"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
path "sys/rotate/root/*" {
  capabilities = ["read", "update", "delete"]
}
path "sys/rotate/recovery/*" {
  capabilities = ["read", "update", "delete"]
}
path "sys/rekey/*" {
  capabilities = ["read", "update", "delete"]
}
path "sys/rekey-recovery-key/*" {
  capabilities = ["read", "update", "delete"]
}
"#;

/// dr-failover checks the standby cluster and restores the latest snapshot into it.
pub const DR_FAILOVER: &str = r#"path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}
path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
path "sys/storage/raft/snapshot-force" {
  capabilities = ["update", "sudo"]
}
"#;

/// Every function of the product with its policy; the AppRole and the policy share the
/// function's name.
pub const FUNCTIONS: [(&str, &str); 6] = [
    ("node-lifecycle", NODE_LIFECYCLE),
    ("health-probe", HEALTH_PROBE),
    ("snapshot-backup", SNAPSHOT_BACKUP),
    ("snapshot-restore", SNAPSHOT_RESTORE),
    ("credential-rotation", CREDENTIAL_ROTATION),
    ("dr-failover", DR_FAILOVER),
];
