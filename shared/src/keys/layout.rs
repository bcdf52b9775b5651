//! Where a cluster's secrets are kept in SSM Parameter Store: every parameter name is
//! formatted here and nowhere else.

use std::fmt;

pub use crate::vault::ShareKind;

/// A generation of shares: 1 is the set `sys/init` made; each verified rotation adds one.
/// Every generation is kept: a snapshot taken under one needs its shares to unseal.
pub type Generation = u32;

fn folder(kind: ShareKind) -> &'static str {
    match kind {
        ShareKind::Unseal => "unseal",
        ShareKind::Recovery => "recovery",
    }
}

/// The parameters of one cluster: everything below `<SSM_PREFIX>/<cluster>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    root: String,
}

impl KeyLayout {
    /// The layout of `cluster` under `prefix` (`/vault-lifecycle`: starts with `/`, does
    /// not end with one; the configuration checks it).
    pub fn new(prefix: &str, cluster: &str) -> Self {
        Self {
            root: format!("{prefix}/{cluster}"),
        }
    }

    /// The layout whose root is `root` (`<SSM_PREFIX>/<cluster>`, as the configuration
    /// built it).
    pub fn from_root(root: &str) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The same prefix, another cluster (the source of a forced restore).
    pub fn of_cluster(&self, cluster: &str) -> Self {
        let prefix = self.root.rsplit_once('/').map_or("", |(p, _)| p);
        Self::new(prefix, cluster)
    }

    /// `<SSM_PREFIX>/<cluster>`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The folder of one kind of share: `<root>/unseal` or `<root>/recovery`.
    pub fn shares(&self, kind: ShareKind) -> String {
        format!("{}/{}", self.root, folder(kind))
    }

    /// Share `n` (from 1): `<root>/unseal/share-n` or `<root>/recovery/share-n`.
    pub fn share(&self, kind: ShareKind, n: usize) -> String {
        format!("{}/share-{n}", self.shares(kind))
    }

    /// The folder of one generation of shares: generation 1 is `<root>/unseal` itself
    /// (where init stores them), generation `g` is `<root>/unseal/gen-<g>`.
    pub fn generation(&self, kind: ShareKind, generation: Generation) -> String {
        if generation <= 1 {
            self.shares(kind)
        } else {
            format!("{}/gen-{generation}", self.shares(kind))
        }
    }

    /// Share `n` (from 1) of one generation.
    pub fn generation_share(&self, kind: ShareKind, generation: Generation, n: usize) -> String {
        format!("{}/share-{n}", self.generation(kind, generation))
    }

    /// Written once generation `g` (2 and later) was verified by the server: its shares
    /// are the ones in force, those of earlier generations open only older snapshots.
    /// Its value is the time it was verified.
    pub fn generation_in_force(&self, kind: ShareKind, generation: Generation) -> String {
        format!("{}/in-force", self.generation(kind, generation))
    }

    /// When credential-rotation last rotated the root key (`sys/rotate/root`).
    pub fn root_key_rotated(&self) -> String {
        format!("{}/root-key/rotated-at", self.root)
    }

    /// The generation of the database engines' root credentials (a number; absent: 1).
    pub fn database_generation(&self) -> String {
        format!("{}/database-root/generation", self.root)
    }

    /// The root token, kept during bootstrap (and after, if the operator asks).
    pub fn root_token(&self) -> String {
        format!("{}/root-token", self.root)
    }

    /// A function's AppRole role ID or secret ID (`which`: `role-id`, `secret-id`), or
    /// the replaced secret ID waiting for its grace period to end (`retiring`: its
    /// accessor and when it was replaced; never the secret ID itself).
    pub fn approle(&self, function: &str, which: &str) -> String {
        format!("{}/approle/{function}/{which}", self.root)
    }
}

impl fmt::Display for KeyLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_sits_below_the_clusters_root() {
        let keys = KeyLayout::new("/vault-lifecycle", "prod");
        assert_eq!(
            keys.share(ShareKind::Unseal, 2),
            "/vault-lifecycle/prod/unseal/share-2"
        );
        assert_eq!(
            keys.share(ShareKind::Recovery, 1),
            "/vault-lifecycle/prod/recovery/share-1"
        );
        assert_eq!(keys.root_token(), "/vault-lifecycle/prod/root-token");
        assert_eq!(
            keys.generation_share(ShareKind::Unseal, 1, 2),
            keys.share(ShareKind::Unseal, 2)
        );
        assert_eq!(
            keys.generation_share(ShareKind::Recovery, 3, 1),
            "/vault-lifecycle/prod/recovery/gen-3/share-1"
        );
        assert_eq!(
            keys.generation_in_force(ShareKind::Unseal, 2),
            "/vault-lifecycle/prod/unseal/gen-2/in-force"
        );
        assert_eq!(
            keys.approle("snapshot-backup", "secret-id"),
            "/vault-lifecycle/prod/approle/snapshot-backup/secret-id"
        );
        assert_eq!(
            keys.of_cluster("staging").share(ShareKind::Unseal, 1),
            "/vault-lifecycle/staging/unseal/share-1"
        );
    }
}
