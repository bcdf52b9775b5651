//! Copies to the DR region's bucket, each read back and checked before it is recorded.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::{BackupError, SnapshotBackup};
use crate::{
    cluster::{node::NodeApi, ports::ParameterStore},
    error_chain,
    snapshots::{
        catalog::CatalogEntry,
        store::{Location, SnapshotObjects},
        verify::read_and_check,
    },
};

/// What one run's DR copying did.
#[derive(Default)]
pub(super) struct DrCopies {
    /// The entries that got their copy.
    pub copies: Vec<CatalogEntry>,
    /// Each failed copy, as `<object>: <why>`.
    pub failures: Vec<String>,
    /// Snapshots still without a copy, left for the next runs by the cap.
    pub waiting: usize,
}

impl<N: NodeApi, P: ParameterStore> SnapshotBackup<N, P> {
    /// Copies the catalogued snapshots that have no DR copy yet, newest first and at
    /// most `dr_copies_per_run` of them, checks each copy by reading it back, tags it and
    /// records it; returns the entries updated, the failures, and how many wait for a
    /// later run. Failures are collected: the snapshots stay good in the primary bucket
    /// and the next run tries again.
    pub(super) async fn copy_missing_to_dr(&self) -> Result<DrCopies, BackupError> {
        let Some(dr) = &self.dr else {
            return Ok(DrCopies::default());
        };
        let mut missing: Vec<CatalogEntry> = self
            .catalog
            .entries(&self.settings.cluster)
            .await?
            .into_iter()
            .filter(|e| e.dr_copy.is_none())
            .collect();
        missing.reverse();
        let waiting = missing
            .len()
            .saturating_sub(self.settings.dr_copies_per_run);
        if waiting > 0 {
            info!(waiting, per_run = self.settings.dr_copies_per_run, "more snapshots lack a DR copy than one run copies; the next runs copy the rest, newest first");
        }
        missing.truncate(self.settings.dr_copies_per_run);
        let mut copies = Vec::new();
        let mut failures = Vec::new();
        for mut entry in missing {
            let copied = match self.copy_one(dr.as_ref(), &entry).await {
                // Recorded in the DR region before the primary's entry says it is copied:
                // a failure in between copies it again next run.
                Ok(copy) => self.record_in_dr(&entry, &copy).await.map(|()| copy),
                Err(e) => Err(e),
            };
            match copied {
                Ok(copy) => {
                    info!(object = %entry.object, copy = %copy, "DR copy made and checked");
                    entry.dr_copy = Some(copy);
                    self.catalog.put(&entry).await?;
                    copies.push(entry);
                }
                Err(e) => {
                    let text = error_chain(&e);
                    warn!(object = %entry.object, error = %text, "DR copy failed; the next run tries again");
                    failures.push(format!("{}: {text}", entry.object));
                }
            }
        }
        Ok(DrCopies {
            copies,
            failures,
            waiting,
        })
    }

    /// The copy's own catalog entry in the DR region's table (when there is one): the
    /// entry of `entry`'s snapshot, located at `copy`.
    async fn record_in_dr(&self, entry: &CatalogEntry, copy: &Location) -> Result<(), BackupError> {
        let Some(dr_catalog) = &self.dr_catalog else {
            return Ok(());
        };
        let in_dr = CatalogEntry {
            object: copy.clone(),
            dr_copy: None,
            ..entry.clone()
        };
        Ok(dr_catalog.put(&in_dr).await?)
    }

    async fn copy_one(
        &self,
        dr: &dyn SnapshotObjects,
        entry: &CatalogEntry,
    ) -> Result<Location, BackupError> {
        let copy = dr
            .copy_in(
                &entry.object,
                entry.bytes,
                self.settings.copy_multipart_above,
            )
            .await?;
        if let Err(e) = read_and_check(dr, &copy, Some((&entry.sha256, entry.bytes))).await {
            // A bad copy is no copy: it is neither tagged with its checksum nor catalogued,
            // so nothing takes it for a good one. This role may not delete in the DR
            // bucket (its Object Lock and lifecycle rule do): the copy stays until then.
            warn!(copy = %dr.location_of(&copy), error = %error_chain(&e), "the DR copy failed its check; it is left untagged and uncatalogued");
            return Err(e.into());
        }
        dr.tag(
            &copy,
            &BTreeMap::from([("sha256".to_owned(), entry.sha256.clone())]),
        )
        .await?;
        Ok(dr.location_of(&copy))
    }
}
