//! What each backup run publishes: duration, size, result and the newest snapshot's age.

use std::time::Duration;

use chrono::Utc;
use tracing::warn;

use super::{BackupError, BackupOutcome, SnapshotBackup};
use crate::snapshots::catalog::CatalogEntry;
use crate::{
    cluster::{node::NodeApi, ports::ParameterStore},
    error_chain,
    telemetry::{Metric, Unit},
};

impl<N: NodeApi, P: ParameterStore> SnapshotBackup<N, P> {
    /// Once the snapshot is stored and catalogued: success, its size, and the newest
    /// good snapshot's age, published before anything else can run out of time.
    pub(super) async fn publish_stored(&self, snapshot: &CatalogEntry) {
        let cluster = self.settings.cluster.as_str();
        let mut metrics = vec![
            Metric::cluster(cluster, "BackupSucceeded", 1.0, Unit::None),
            Metric::cluster(
                cluster,
                "BackupSizeBytes",
                snapshot.bytes as f64,
                Unit::Bytes,
            ),
        ];
        metrics.extend(self.newest_age().await);
        if let Err(e) = self.metrics.publish(&metrics).await {
            warn!(error = %error_chain(&e), "backup metrics not published");
        }
    }

    /// At the end of a run: its duration, a failed DR copy, and, when no snapshot was
    /// stored, the failure and the newest good snapshot's age.
    pub(super) async fn publish(
        &self,
        result: &Result<BackupOutcome, BackupError>,
        took: Duration,
        stored: bool,
    ) {
        let cluster = self.settings.cluster.as_str();
        let mut metrics = vec![Metric::cluster(
            cluster,
            "BackupDurationSeconds",
            took.as_secs_f64(),
            Unit::Seconds,
        )];
        match result {
            Ok(BackupOutcome::Busy { .. } | BackupOutcome::Fenced(_)) => return,
            Ok(BackupOutcome::BackedUp(_)) => {}
            // The snapshot is good; only its DR copy is missing.
            Err(BackupError::DrCopy { .. }) => {
                metrics.push(Metric::cluster(cluster, "DrCopyFailed", 1.0, Unit::Count));
            }
            Err(_) if stored => {}
            Err(_) => {
                metrics.push(Metric::cluster(cluster, "BackupSucceeded", 0.0, Unit::None));
                metrics.extend(self.newest_age().await);
            }
        }
        if let Err(e) = self.metrics.publish(&metrics).await {
            warn!(error = %error_chain(&e), "backup metrics not published");
        }
    }

    /// `LastGoodBackupAgeSeconds` from the catalog's newest entry, if any.
    async fn newest_age(&self) -> Option<Metric> {
        match self.catalog.newest(&self.settings.cluster).await {
            Ok(Some(newest)) => Some(Metric::cluster(
                self.settings.cluster.as_str(),
                "LastGoodBackupAgeSeconds",
                (Utc::now() - newest.taken_at).num_seconds().max(0) as f64,
                Unit::Seconds,
            )),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %error_chain(&e), "age of the last good backup not published");
                None
            }
        }
    }
}
