//! What a restore would do (the dry run's answer) and what it did, with the one check
//! that only reports: whether the snapshot brings back database root credentials older
//! than those the databases accept now.

use serde::Serialize;
use tracing::warn;

use crate::{
    cluster::ports::ParameterStore,
    keys::{database_generation, Generation, KeyLayout},
    snapshots::{archive::SnapshotFacts, catalog::CatalogEntry, store::Location},
};

/// What would be restored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RestorePlan {
    /// The exact object version.
    pub snapshot: Location,
    /// Its catalog entry (`None` for an uncatalogued object, allowed with `force`).
    pub entry: Option<CatalogEntry>,
    /// The cluster it was taken from.
    pub source_cluster: String,
    /// Whether it is another cluster's (then `force` is needed, and the source's shares).
    pub other_cluster: bool,
    /// The generation of shares it was taken under (its catalog entry's): after the
    /// restore, the cluster unseals with that generation. `None` for an entry from before
    /// generations were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_generation: Option<crate::keys::Generation>,
    /// Whether it is sent with `snapshot-force`: another cluster's, or this cluster's
    /// taken under another generation of shares (the server verifies a snapshot with the
    /// shares in force, and refuses one sealed under others). The nodes then seal
    /// themselves and are unsealed with the snapshot's generation.
    pub forced: bool,
    /// Set when the snapshot was taken before the database engines' root credentials
    /// were last rotated: after the restore, the engines hold root passwords the
    /// databases refuse. The restore goes ahead (the data is what was asked for); the
    /// operator resets each connection's password (see the rotation runbook).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_database_credentials: Option<StaleDatabaseCredentials>,
    /// What the check of the whole object found.
    pub checked: Checked,
}

/// The check of the whole object, before anything is sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Checked {
    /// Its SHA-256, equal to the catalog's.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The Raft index and term in it.
    pub index: u64,
    /// See `index`.
    pub term: u64,
}

impl From<SnapshotFacts> for Checked {
    fn from(f: SnapshotFacts) -> Self {
        Self {
            sha256: f.sha256,
            bytes: f.bytes,
            index: f.index,
            term: f.term,
        }
    }
}

/// What was restored, and the cluster after.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RestoreReport {
    /// What was restored.
    pub plan: RestorePlan,
    /// The safety snapshot taken just before (restore it to undo this restore).
    pub safety_snapshot: Location,
    /// The node that took the snapshot and is active after.
    pub active_node: String,
    /// Nodes unsealed after the restore (a snapshot of another cluster brings its keys).
    pub unsealed: Vec<String>,
    /// The Raft index the active node has applied after the restore.
    pub applied_index: u64,
    /// Autopilot judged every server healthy again before the function returned (the
    /// followers install the restored state and are unhealthy for a moment).
    pub autopilot_healthy: bool,
    /// The failure tolerance autopilot reported last.
    pub failure_tolerance: Option<u32>,
    /// Whether the cluster holds the snapshot's canary after the restore.
    pub canary: CanaryCheck,
}

/// The canary read back after a restore, against the one the snapshot's catalog entry
/// recorded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CanaryCheck {
    /// The cluster holds it: its data is that snapshot's.
    Matched {
        /// The canary.
        value: String,
    },
    /// The cluster holds another one (or none): its data is not what the catalog says
    /// this snapshot holds.
    Different {
        /// The snapshot's.
        expected: String,
        /// The cluster's.
        found: Option<String>,
    },
    /// The snapshot's entry records none (taken before canaries, or its write was
    /// refused), or the snapshot is not catalogued.
    NotRecorded,
    /// It could not be read; why (another cluster's snapshot: this function's login is
    /// refused until that cluster's credentials are adopted).
    NotChecked {
        /// Why.
        why: String,
    },
}

/// A snapshot whose database root credentials are older than those in force.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaleDatabaseCredentials {
    /// The generation the snapshot was taken under.
    pub snapshot_generation: Generation,
    /// The generation the databases accept now.
    pub generation_now: Generation,
    /// What the operator does after the restore.
    pub what_to_do: &'static str,
}

const RESET_DATABASE_PASSWORDS: &str = "after the restore, the database engines' connections hold root passwords from before the last database-root rotation: reset each connection user's password in its database, write it to the connection (database/config/<name> password=...), then run the database-root rotation";

/// Compares the snapshot's database credential generation with the source cluster's now
/// (`keys` is the source cluster's layout). `None` when they match or either is unknown
/// (an entry from before generations were recorded, SSM unreadable: logged).
pub(super) async fn stale_database_credentials(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
    entry: Option<&CatalogEntry>,
) -> Option<StaleDatabaseCredentials> {
    let snapshot_generation = entry?.database_generation?;
    let generation_now = match database_generation(parameters, keys).await {
        Ok(generation) => generation,
        Err(e) => {
            warn!(error = %crate::error_chain(&e), "the database credential generation in force could not be read; whether the snapshot's root passwords are stale is not known");
            return None;
        }
    };
    (snapshot_generation < generation_now).then(|| {
        warn!(snapshot_generation, generation_now, "the snapshot predates the last rotation of the database root credentials: {RESET_DATABASE_PASSWORDS}");
        StaleDatabaseCredentials {
            snapshot_generation,
            generation_now,
            what_to_do: RESET_DATABASE_PASSWORDS,
        }
    })
}
