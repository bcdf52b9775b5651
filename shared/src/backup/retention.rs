//! Retention over the catalog: the exact versions the policy does not keep are deleted
//! from the primary bucket, then their catalog entries. DR copies are not deleted here:
//! the DR bucket is a failure domain of its own, with Object Lock and a lifecycle rule
//! as its retention, and this function's role may not delete in it.

use tracing::info;

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
    /// Deletes what the policy does not keep: the exact primary versions first, then
    /// their catalog entries, so a run cut off in between deletes them again.
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
        let deleted: Vec<Location> = doomed.iter().map(|e| e.object.clone()).collect();
        let copies = doomed.iter().filter(|e| e.dr_copy.is_some()).count();
        if copies > 0 {
            info!(copies, "the DR copies of the deleted snapshots stay until the DR bucket's own retention removes them");
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
