//! Where a cluster's secrets are kept in SSM Parameter Store: every parameter name is
//! formatted here and nowhere else.

use std::fmt;

/// Unseal shares (Shamir) or recovery shares (auto-unseal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    /// Shares that unseal a Shamir-sealed node.
    Unseal,
    /// Recovery shares of an auto-unsealed cluster (they authorise, they do not unseal).
    Recovery,
}

impl ShareKind {
    fn folder(self) -> &'static str {
        match self {
            Self::Unseal => "unseal",
            Self::Recovery => "recovery",
        }
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
        format!("{}/{}", self.root, kind.folder())
    }

    /// Share `n` (from 1): `<root>/unseal/share-n` or `<root>/recovery/share-n`.
    pub fn share(&self, kind: ShareKind, n: usize) -> String {
        format!("{}/share-{n}", self.shares(kind))
    }

    /// The root token, kept during bootstrap (and after, if the operator asks).
    pub fn root_token(&self) -> String {
        format!("{}/root-token", self.root)
    }

    /// A function's AppRole role ID or secret ID (`which`: `role-id`, `secret-id`).
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
            keys.approle("snapshot-backup", "secret-id"),
            "/vault-lifecycle/prod/approle/snapshot-backup/secret-id"
        );
        assert_eq!(
            keys.of_cluster("staging").share(ShareKind::Unseal, 1),
            "/vault-lifecycle/staging/unseal/share-1"
        );
    }
}
