//! What each backup run publishes: duration, size, result and the newest snapshot's age.

use std::time::Duration;

use chrono::Utc;
use tracing::warn;

use super::{BackupError, BackupOutcome, SnapshotBackup};
use crate::{
    cluster::{node::NodeApi, ports::ParameterStore},
    error_chain,
    telemetry::{Metric, Unit},
};

impl<N: NodeApi, P: ParameterStore> SnapshotBackup<N, P> {
    /// Duration, size, result and the age of the newest good snapshot.
    pub(super) async fn publish(
        &self,
        result: &Result<BackupOutcome, BackupError>,
        took: Duration,
    ) {
        let cluster = self.settings.cluster.as_str();
        let mut metrics = vec![Metric::cluster(
            cluster,
            "BackupDurationSeconds",
            took.as_secs_f64(),
            Unit::Seconds,
        )];
        match result {
            Ok(BackupOutcome::Busy { .. }) => return,
            Ok(BackupOutcome::BackedUp(report)) => {
                metrics.push(Metric::cluster(cluster, "BackupSucceeded", 1.0, Unit::None));
                metrics.push(Metric::cluster(
                    cluster,
                    "BackupSizeBytes",
                    report.snapshot.bytes as f64,
                    Unit::Bytes,
                ));
            }
            // The snapshot is good; only its DR copy is missing.
            Err(BackupError::DrCopy { .. }) => {
                metrics.push(Metric::cluster(cluster, "BackupSucceeded", 1.0, Unit::None));
                metrics.push(Metric::cluster(cluster, "DrCopyFailed", 1.0, Unit::Count));
            }
            Err(_) => metrics.push(Metric::cluster(cluster, "BackupSucceeded", 0.0, Unit::None)),
        }
        match self.catalog.newest(&self.settings.cluster).await {
            Ok(Some(newest)) => metrics.push(Metric::cluster(
                cluster,
                "LastGoodBackupAgeSeconds",
                (Utc::now() - newest.taken_at).num_seconds().max(0) as f64,
                Unit::Seconds,
            )),
            Ok(None) => {}
            Err(e) => warn!(error = %error_chain(&e), "age of the last good backup not published"),
        }
        if let Err(e) = self.metrics.publish(&metrics).await {
            warn!(error = %error_chain(&e), "backup metrics not published");
        }
    }
}
