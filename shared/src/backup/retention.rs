//! Retention over the catalog: the exact versions the policy does not keep are deleted
//! (primary and DR copies), then their catalog entries.

use tracing::{info, warn};

use super::{BackupError, RetentionReport, SnapshotBackup};
use crate::{
    cluster::{node::NodeApi, ports::ParameterStore},
    snapshots::{
        catalog::CatalogEntry,
        retention::plan,
        store::{Location, StoredObject},
        verify::stored,
    },
};

impl<N: NodeApi, P: ParameterStore> SnapshotBackup<N, P> {
    /// Deletes what the policy does not keep: the exact versions first (primary and DR),
    /// then their catalog entries, so a run cut off in between deletes them again.
    pub(super) async fn apply_retention(&self) -> Result<RetentionReport, BackupError> {
        let entries = self.catalog.entries(&self.settings.cluster).await?;
        let taken: Vec<_> = entries.iter().map(|e| e.taken_at).collect();
        let decision = plan(&taken, &self.settings.retention);
        if decision.delete.is_empty() {
            return Ok(RetentionReport {
                kept: entries.len(),
                deleted: Vec::new(),
            });
        }
        let doomed: Vec<CatalogEntry> = decision
            .delete
            .iter()
            .map(|&i| entries[i].clone())
            .collect();
        let primary: Vec<StoredObject> = doomed.iter().map(|e| stored(&e.object)).collect();
        self.store.delete_versions(&primary).await?;
        let mut deleted: Vec<Location> = doomed.iter().map(|e| e.object.clone()).collect();
        let copies: Vec<&Location> = doomed.iter().filter_map(|e| e.dr_copy.as_ref()).collect();
        if !copies.is_empty() {
            match &self.dr {
                Some(dr) => {
                    let objects: Vec<StoredObject> = copies.iter().map(|l| stored(l)).collect();
                    dr.delete_versions(&objects).await?;
                    deleted.extend(copies.into_iter().cloned());
                }
                None => warn!(count = copies.len(), "retention leaves DR copies of deleted snapshots in place: DR_BUCKET is no longer set"),
            }
        }
        self.catalog.remove(&doomed).await?;
        info!(
            deleted = doomed.len(),
            kept = decision.keep.len(),
            "retention applied"
        );
        Ok(RetentionReport {
            kept: decision.keep.len(),
            deleted,
        })
    }
}
