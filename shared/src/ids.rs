//! Identifiers as newtypes, validated where they enter the system.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A cluster's name: lower-case letters, digits and `-`, 1 to 63 characters, so it fits
/// SSM paths, S3 prefixes, metric dimensions and resource names unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClusterName(String);

impl FromStr for ClusterName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fits = (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if fits {
            Ok(Self(s.to_owned()))
        } else {
            Err("1 to 63 lower-case letters, digits or '-', not starting with '-'".into())
        }
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ClusterName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An EC2 instance id such as `i-0123456789abcdef0`. By convention a node's Raft
/// `node_id` is its instance id, which is how Raft peers are matched to instances.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for InstanceId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node's API base address, `scheme://host:port`, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeAddr(String);

impl NodeAddr {
    /// The address as text, ready to be joined with `/v1/...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host:port` from parts that the configuration and EC2 vouch for.
    pub(crate) fn from_parts(scheme: &str, host: &str, port: u16) -> Self {
        Self(format!("{scheme}://{host}:{port}"))
    }
}

impl FromStr for NodeAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(|| format!("node address {s:?} must start with https:// or http://"))?;
        if rest.is_empty() || rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "node address {s:?} must be scheme://host[:port] and nothing more"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_fit_paths_and_dimensions() {
        for good in ["prod", "eu-1", "a"] {
            assert!(good.parse::<ClusterName>().is_ok(), "{good}");
        }
        for bad in ["", "Prod", "a/b", "-x", "a b", &"x".repeat(64)] {
            assert!(bad.parse::<ClusterName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn node_addresses_are_base_urls() {
        let addr: NodeAddr = "https://10.0.1.5:8200/".parse().expect("valid");
        assert_eq!(addr.as_str(), "https://10.0.1.5:8200");
        for bad in [
            "10.0.1.5:8200",
            "https://",
            "https://h:1/v1",
            "ftp://h",
            "https://u@h",
        ] {
            assert!(bad.parse::<NodeAddr>().is_err(), "{bad}");
        }
    }
}
