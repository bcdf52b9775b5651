//! The Vault policy of each function: the least each one needs, nothing more. Bootstrap
//! writes every one of them, with an AppRole of the same name, when it initialises a
//! cluster; the functions not built yet get theirs then too, so adding one later needs
//! no root token.

/// The KV (version 1) mount of the product's own, made by bootstrap: it holds the canary.
pub const CANARY_MOUNT: &str = "vault-lifecycle";

/// The canary: written by every snapshot just before it is taken (its value recorded in
/// the snapshot's catalog entry), read after a restore to prove the data is the
/// snapshot's.
pub const CANARY_PATH: &str = "vault-lifecycle/canary";

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

/// snapshot-backup writes the canary and takes snapshots.
pub const SNAPSHOT_BACKUP: &str = r#"path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
path "vault-lifecycle/canary" {
  capabilities = ["create", "update"]
}
"#;

/// snapshot-restore takes the safety snapshot (its canary first), restores, and watches
/// the cluster recover.
pub const SNAPSHOT_RESTORE: &str = r#"path "sys/storage/raft/snapshot" {
  capabilities = ["read", "update"]
}
path "vault-lifecycle/canary" {
  capabilities = ["create", "update", "read"]
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

/// dr-failover checks the standby cluster, restores the latest snapshot into it and reads
/// its canary; for a failback it snapshots the DR cluster (its canary first).
pub const DR_FAILOVER: &str = r#"path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}
path "vault-lifecycle/canary" {
  capabilities = ["create", "update", "read"]
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
