//! The DR region stands alone: a snapshot's DR copy, its catalog entry in the DR
//! region's table and the cluster's shares in the DR region's SSM are enough to restore
//! it into a standby cluster, with the primary region's bucket, catalog and shares gone.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use shared::{
    aws::{AsgFleet, SsmParameters},
    backup::BackupOutcome,
    cluster::ports::ParameterStore,
    config::{ClusterSettings, Env},
    restore::{RestoreConfig, RestoreOutcome},
    testing::capture_logs,
};
use testbed::snapshots::{SnapshotBed, DR_REGION};
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

#[tokio::test]
async fn a_dr_copy_is_restored_into_a_standby_with_the_primary_region_gone() -> Result<()> {
    let logs = capture_logs();
    let (source, standby) = tokio::try_join!(SnapshotBed::start(1), SnapshotBed::start(1))?;

    // node-lifecycle, given the DR region, copies the source's shares there (its
    // reconcile fills in what a cluster bootstrapped earlier lacks).
    let dr_key = source.dr.kms_key.clone();
    let lifecycle = source
        .bed
        .function(&[("DR_REGION", DR_REGION), ("DR_KMS_KEY_ID", dr_key.as_str())])?;
    let reconciled = lifecycle.reconcile(deadline()).await?;
    assert_eq!(reconciled.dr_shares_copied.len(), 5, "{reconciled:?}");

    source
        .write("kv/app", json!({"value": "from-source"}))
        .await?;
    let outcome = source
        .backup(&[])?
        .handle(&json!({"reason": "before the outage"}), "req-1", deadline())
        .await;
    let Ok(BackupOutcome::BackedUp(report)) = &outcome else {
        bail!("expected a backup, got {outcome:?}");
    };
    let entry = report.snapshot.clone();
    let copy = entry.dr_copy.clone().context("a DR copy")?;
    standby
        .write("kv/app", json!({"value": "standby's own"}))
        .await?;

    // The primary region is gone: the snapshot's version and the source's shares there
    // are deleted.
    SnapshotBed::s3(&source.bed.region)
        .delete_object()
        .bucket(&entry.object.bucket)
        .key(&entry.object.key)
        .set_version_id(entry.object.version_id.clone())
        .send()
        .await?;
    let primary_ssm = SsmParameters::from_sdk(&source.bed.region.sdk);
    for n in 1..=5 {
        primary_ssm
            .delete(&format!("{}/unseal/share-{n}", source.bed.ssm_path()))
            .await?;
    }

    // snapshot-restore as deployed in the DR region: its bucket, table and SSM are the
    // DR region's. The standby's own credentials are there too; its nodes are found
    // through its group (which the test bed keeps in its first region).
    let dr_ssm = SsmParameters::from_sdk(&source.dr.sdk);
    let standby_ssm = SsmParameters::from_sdk(&standby.bed.region.sdk);
    for which in ["role-id", "secret-id"] {
        let name = format!(
            "{}/approle/snapshot-restore/{which}",
            standby.bed.ssm_path()
        );
        let value = standby_ssm.secret(&name).await?;
        dr_ssm.put_new_secret(&name, &value, &dr_key).await?;
    }
    let mut env = standby.env();
    for (name, value) in [
        ("SNAPSHOT_BUCKET", source.dr.bucket.as_str()),
        ("SNAPSHOT_KMS_KEY_ID", dr_key.as_str()),
        ("STATE_TABLE", source.dr.table.as_str()),
        ("DR_REGION", ""),
        ("DR_BUCKET", ""),
        ("DR_KMS_KEY_ID", ""),
        ("DR_STATE_TABLE", ""),
    ] {
        env.retain(|(k, _)| k != name);
        if !value.is_empty() {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = RestoreConfig::from(&env)?;
    let mut restorer = shared::restore::from_sdk(&source.dr.sdk, config)?;
    restorer.fleet = Box::new(AsgFleet::from_sdk(
        &standby.bed.region.sdk,
        ClusterSettings::from_env(&env)?,
    ));

    let request = json!({
        "snapshot": {"key": copy.key, "version_id": copy.version_id},
        "force": true,
        "reason": "the primary region is down",
    });
    let outcome = restorer.handle(&request, "req-2", deadline()).await;
    let Ok(RestoreOutcome::Restored(restored)) = &outcome else {
        bail!("expected a restore, got {outcome:?}");
    };
    assert_eq!(
        restored.plan.snapshot, copy,
        "the DR copy, checked against the DR catalog"
    );
    assert_eq!(restored.plan.checked.sha256, entry.sha256);
    assert_eq!(
        restored.plan.entry.as_ref().map(|e| e.object.clone()),
        Some(copy.clone()),
        "found in the DR region's catalog, not restored on the archive check alone"
    );
    assert!(restored.plan.other_cluster);
    assert_eq!(
        restored.unsealed.len(),
        1,
        "unsealed with the shares of the DR region"
    );
    // The standby holds the source's data, under the source's keys.
    let as_source = SnapshotBed {
        root: source.root.clone(),
        ..standby
    };
    assert_eq!(as_source.kv("app").await?.as_deref(), Some("from-source"));

    let logged = logs.contents();
    for n in 1..=5 {
        let share = dr_ssm
            .secret(&format!("{}/unseal/share-{n}", source.bed.ssm_path()))
            .await?;
        for text in [logged.as_str(), &format!("{outcome:?}")] {
            assert!(!text.contains(share.expose()), "a share leaked");
        }
    }
    Ok(())
}
