//! snapshot-backup and snapshot-restore against real OpenBao clusters built by
//! node-lifecycle, with moto as S3, DynamoDB and SSM in two regions: data backed up,
//! changed and brought back; every refusal leaves the cluster, the bucket and the
//! catalog as they were; retention over 1,500 entries; two clusters and `force`. Every
//! test checks that nothing logged or returned holds a share, token or secret ID.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::{
    aws::{AsgFleet, DynamoCatalog, SsmParameters},
    backup::{BackupOutcome, BackupReport, SnapshotBackup},
    cluster::{auth::VaultLogin, ports::ParameterStore},
    config::{AuthSettings, ClusterSettings, Env},
    ids::ClusterName,
    lambda::FunctionError,
    probe::HealthProbe,
    restore::{RestoreOutcome, RestoreReport, SnapshotRestore},
    snapshots::catalog::{BackupKind, Catalog, CatalogEntry},
    testing::{capture_logs, FakeMetrics, LogCapture},
    vault::VaultClient,
};
use testbed::snapshots::SnapshotBed;
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

async fn backup(
    function: &SnapshotBackup<VaultClient, SsmParameters>,
    event: &Value,
    request_id: &str,
) -> Result<BackupOutcome, FunctionError> {
    function.handle(event, request_id, deadline()).await
}

fn backed_up(outcome: &Result<BackupOutcome, FunctionError>) -> Result<&BackupReport> {
    match outcome {
        Ok(BackupOutcome::BackedUp(report)) => Ok(report),
        other => bail!("expected a backup, got {other:?}"),
    }
}

async fn restore(
    function: &SnapshotRestore<VaultClient, SsmParameters>,
    request: Value,
) -> Result<RestoreOutcome, FunctionError> {
    function
        .handle(&request, &testbed::unique_name("request"), deadline())
        .await
}

fn restored(outcome: &Result<RestoreOutcome, FunctionError>) -> Result<&RestoreReport> {
    match outcome {
        Ok(RestoreOutcome::Restored(report)) => Ok(report),
        other => bail!("expected a restore, got {other:?}"),
    }
}

fn schedule_event() -> Value {
    json!({
        "version": "0",
        "id": testbed::unique_name("tick"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-23T03:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/prod-snapshot-backup"],
        "detail": {}
    })
}

fn env_of(bed: &SnapshotBed) -> Env {
    let env = bed.env();
    Env::from_pairs(
        env.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
}

fn catalog(bed: &SnapshotBed) -> DynamoCatalog {
    DynamoCatalog::new(
        aws_sdk_dynamodb::Client::new(&bed.bed.region.sdk),
        bed.bed.region.table.clone(),
    )
}

fn cluster(bed: &SnapshotBed) -> Result<ClusterName> {
    bed.bed.cluster.parse().map_err(anyhow::Error::msg)
}

async fn entries(bed: &SnapshotBed) -> Result<Vec<CatalogEntry>> {
    Ok(catalog(bed).entries(&cluster(bed)?).await?)
}

/// The object version at `location` in `region` holds exactly the snapshot `entry`
/// records: its SHA-256 and size, read by the test itself.
async fn assert_holds(
    region: &testbed::moto::RegionFixture,
    location: &shared::snapshots::store::Location,
    entry: &CatalogEntry,
) -> Result<()> {
    assert_eq!(location.bucket, region.bucket);
    let body = SnapshotBed::s3(region)
        .get_object()
        .bucket(&region.bucket)
        .key(&location.key)
        .set_version_id(location.version_id.clone())
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    let digest = Sha256::digest(&body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        (hex, body.len() as u64),
        (entry.sha256.clone(), entry.bytes),
        "{location}"
    );
    Ok(())
}

/// No stored secret (shares, credentials, the kept root token) in the logs or `texts`.
async fn assert_nothing_leaked(
    bed: &SnapshotBed,
    logs: &LogCapture,
    texts: &[String],
) -> Result<()> {
    let secrets: Vec<String> = bed.bed.stored_secret_values().await?;
    assert!(secrets.len() > 10, "shares and credentials to look for");
    let logged = logs.contents();
    assert!(logged.contains("snapshot"), "logs are captured");
    let mut all: Vec<&str> = texts.iter().map(String::as_str).collect();
    all.push(&logged);
    testbed::assert_no_secret(&secrets, &all);
    Ok(())
}

#[tokio::test]
async fn backed_up_data_comes_back_latest_as_of_and_by_exact_version() -> Result<()> {
    let logs = capture_logs();
    let bed = SnapshotBed::start(3).await?;
    let function = bed.backup(&[])?;
    let mut texts = Vec::new();

    bed.write("kv/app", json!({"value": "v1"})).await?;
    let first = backup(&function, &json!({"reason": "before change"}), "req-1").await;
    texts.push(format!("{first:?}"));
    let first = backed_up(&first)?.clone();
    let entry1 = first.snapshot.clone();
    assert_eq!(entry1.kind, BackupKind::Manual);
    assert_eq!(entry1.reason.as_deref(), Some("before change"));
    assert!(entry1.index > 0 && entry1.bytes > 0, "{entry1:?}");
    let prefix = format!("vault-lifecycle/{}/", bed.bed.cluster);
    assert!(
        entry1.object.key.starts_with(&prefix)
            && entry1
                .object
                .key
                .ends_with(&format!("-{}.snap", entry1.index)),
        "{}",
        entry1.object.key
    );
    // The object is what the catalog says, with its facts in metadata and its checksum
    // in a tag.
    assert_holds(&bed.bed.region, &entry1.object, &entry1).await?;
    let s3 = SnapshotBed::s3(&bed.bed.region);
    let head = s3
        .head_object()
        .bucket(&bed.bed.region.bucket)
        .key(&entry1.object.key)
        .set_version_id(entry1.object.version_id.clone())
        .send()
        .await?;
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("raft-index"), Some(&entry1.index.to_string()));
    assert_eq!(metadata.get("cluster"), Some(&bed.bed.cluster));
    assert_eq!(metadata.get("cluster-id"), Some(&entry1.cluster_id));
    assert!(!entry1.cluster_id.is_empty() && entry1.server_version.starts_with('2'));
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    let tags = s3
        .get_object_tagging()
        .bucket(&bed.bed.region.bucket)
        .key(&entry1.object.key)
        .set_version_id(entry1.object.version_id.clone())
        .send()
        .await?;
    assert!(tags
        .tag_set()
        .iter()
        .any(|t| t.key() == "sha256" && t.value() == entry1.sha256));
    // The DR copy is in the second region, with the same checksum.
    let dr = entry1.dr_copy.clone().context("a DR copy is recorded")?;
    assert_eq!(dr.region, testbed::snapshots::DR_REGION);
    assert_eq!(dr.bucket, bed.dr.bucket);
    assert_holds(&bed.dr, &dr, &entry1).await?;
    assert_eq!(first.dr_copies, vec![dr.clone()]);
    // The copy has a catalog entry of its own in the DR region's table: snapshot-restore
    // there finds and checks it with the primary region gone.
    let dr_catalog = DynamoCatalog::new(
        aws_sdk_dynamodb::Client::new(&bed.dr.sdk),
        bed.dr.table.clone(),
    );
    let in_dr = dr_catalog.entries(&cluster(&bed)?).await?;
    assert_eq!(in_dr.len(), 1, "{in_dr:?}");
    assert_eq!(in_dr[0].object, dr);
    assert_eq!(
        (in_dr[0].sha256.as_str(), in_dr[0].bytes, in_dr[0].index),
        (entry1.sha256.as_str(), entry1.bytes, entry1.index)
    );
    assert_eq!(in_dr[0].dr_copy, None);

    bed.write("kv/app", json!({"value": "v2"})).await?;
    let tick = schedule_event();
    // This one is copied to the DR region part by part, as a snapshot past 5 GiB is.
    let mut by_parts = bed.backup(&[])?;
    by_parts.settings.copy_multipart_above = 0;
    let second = backup(&by_parts, &tick, "req-2").await;
    texts.push(format!("{second:?}"));
    let entry2 = backed_up(&second)?.snapshot.clone();
    assert_eq!(entry2.kind, BackupKind::Scheduled);
    assert!(entry2.index > entry1.index);
    let dr2 = entry2.dr_copy.clone().context("a DR copy is recorded")?;
    assert_holds(&bed.dr, &dr2, &entry2).await?;
    // The same tick delivered again (another invocation id) stores nothing new.
    let again = backup(&bed.backup(&[])?, &tick, "req-3").await;
    texts.push(format!("{again:?}"));
    let again = backed_up(&again)?;
    assert!(again.redelivered);
    assert_eq!(again.snapshot, entry2);
    assert_eq!(entries(&bed).await?.len(), 2);
    assert_eq!(SnapshotBed::versions(&bed.bed.region).await?.len(), 2);

    bed.write("kv/app", json!({"value": "v3"})).await?;
    bed.write("kv/later", json!({"value": "x"})).await?;
    let restorer = bed.restore(&[])?;
    // A backup function that logs in now, after the newest snapshot was taken: the
    // restore below brings back data without its token.
    let late = bed.backup(&[])?;
    let active = bed.bed.bao.active_index().await?;
    let active: shared::ids::NodeAddr = bed.bed.bao.nodes[active]
        .api_addr
        .parse()
        .map_err(anyhow::Error::msg)?;
    late.login.token(&late.vault, &active).await?;

    // latest: v2 again, and what was written after is gone.
    let latest = restore(&restorer, json!({"snapshot": "latest", "reason": "test"})).await;
    texts.push(format!("{latest:?}"));
    let report = restored(&latest)?;
    assert_eq!(report.plan.snapshot, entry2.object);
    assert!(!report.plan.other_cluster);
    assert_eq!(report.plan.checked.sha256, entry2.sha256);
    assert!(
        report.autopilot_healthy,
        "the followers caught up: {report:?}"
    );
    assert_eq!(report.failure_tolerance, Some(1), "{report:?}");
    // The canary written just before the snapshot was taken is back.
    let canary = entry2.canary.clone().context("the backup wrote a canary")?;
    assert_eq!(
        report.canary,
        shared::restore::CanaryCheck::Matched { value: canary },
        "{report:?}"
    );
    assert_eq!(bed.kv("app").await?.as_deref(), Some("v2"));
    assert_eq!(bed.kv("later").await?, None);
    // The safety snapshot holds v3: it is catalogued as pre-restore.
    let all = entries(&bed).await?;
    let safety = all
        .iter()
        .find(|e| e.object == report.safety_snapshot)
        .context("the safety snapshot is catalogued")?;
    assert_eq!(safety.kind, BackupKind::PreRestore);
    // Its cached token no longer exists: Vault refuses it, the function logs in again
    // once and takes the backup.
    let stale = "vault refused the cached token; logging in again";
    let refused_before = logs.contents().matches(stale).count();
    let after_restore = backup(&late, &json!({"reason": "after the restore"}), "req-4").await;
    texts.push(format!("{after_restore:?}"));
    backed_up(&after_restore)?;
    assert_eq!(
        logs.contents().matches(stale).count(),
        refused_before + 1,
        "the revoked token was refused and replaced once"
    );

    // as_of the first snapshot's time: v1.
    let as_of = restore(
        &restorer,
        json!({"snapshot": {"as_of": entry1.taken_at.to_rfc3339()}}),
    )
    .await;
    texts.push(format!("{as_of:?}"));
    assert_eq!(restored(&as_of)?.plan.snapshot, entry1.object);
    assert_eq!(bed.kv("app").await?.as_deref(), Some("v1"));

    // An exact version: the safety snapshot taken before the first restore (v3).
    let exact = restore(
        &restorer,
        json!({"snapshot": {"key": safety.object.key, "version_id": safety.object.version_id}}),
    )
    .await;
    texts.push(format!("{exact:?}"));
    restored(&exact)?;
    assert_eq!(bed.kv("app").await?.as_deref(), Some("v3"));
    assert_eq!(bed.kv("later").await?.as_deref(), Some("x"));

    // Each restore is recorded.
    let restores = aws_sdk_dynamodb::Client::new(&bed.bed.region.sdk)
        .query()
        .table_name(&bed.bed.region.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("restore#{}", bed.bed.cluster)),
        )
        .send()
        .await?;
    assert_eq!(restores.count(), 3);
    assert_nothing_leaked(&bed, &logs, &texts).await
}

#[tokio::test]
async fn refused_restores_change_nothing() -> Result<()> {
    let logs = capture_logs();
    let bed = SnapshotBed::start(1).await?;
    bed.write("kv/app", json!({"value": "v1"})).await?;
    let function = bed.backup(&[])?;
    let entry = backed_up(&backup(&function, &json!({}), "req-1").await)?
        .snapshot
        .clone();
    bed.write("kv/app", json!({"value": "v2"})).await?;
    // A truncated copy of the snapshot, stored as a newer version at the same key.
    let s3 = SnapshotBed::s3(&bed.bed.region);
    let good = s3
        .get_object()
        .bucket(&bed.bed.region.bucket)
        .key(&entry.object.key)
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    let cut = s3
        .put_object()
        .bucket(&bed.bed.region.bucket)
        .key(&entry.object.key)
        .body(good.slice(..good.len() / 2).into())
        .send()
        .await?
        .version_id()
        .context("versioned")?
        .to_owned();
    let restorer = bed.restore(&[])?;
    let before_versions = SnapshotBed::versions(&bed.bed.region).await?;
    let before_entries = entries(&bed).await?;
    let mut texts = Vec::new();

    let key = entry.object.key.clone();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"snapshot": "newest"}),
            "Permanent.InvalidEvent",
            "is not one of",
        ),
        (
            json!({"snapshot": "latest", "colour": "red"}),
            "Permanent.InvalidEvent",
            "snapshot",
        ),
        (
            json!({"snapshot": {"key": key, "version_id": "no-such-version"}}),
            "Permanent.NoSuchVersion",
            "does not exist",
        ),
        (
            json!({"snapshot": {"as_of": "2020-01-01T00:00:00Z"}}),
            "Permanent.NoSnapshotAsOf",
            "at or before 2020-01-01",
        ),
        (
            json!({"snapshot": {"key": "elsewhere/prod/x.snap", "version_id": "v"}}),
            "Permanent.OutsidePrefix",
            "elsewhere/prod/x.snap",
        ),
        (
            json!({"snapshot": {"key": key, "version_id": cut}}),
            "Permanent.NotCatalogued",
            "is not in the catalog",
        ),
    ];
    for (request, error_type, says) in cases {
        let out = restore(&restorer, request.clone()).await;
        texts.push(format!("{out:?}"));
        match &out {
            Err(e) => {
                assert_eq!(e.error_type, error_type, "{request}: {}", e.message);
                assert!(e.message.contains(says), "{request}: {}", e.message);
            }
            Ok(o) => bail!("{request} was not refused: {o:?}"),
        }
    }
    // The truncated version, as if the catalog recorded it (bit rot, a bad copy): the
    // whole object is read before anything is sent, and refused.
    let mut rotten = entry.clone();
    rotten.object.version_id = Some(cut.clone());
    rotten.taken_at = Utc::now();
    catalog(&bed).put(&rotten).await?;
    let out = restore(&restorer, json!({"snapshot": "latest"})).await;
    texts.push(format!("{out:?}"));
    let err = out.expect_err("a truncated object is refused");
    assert_eq!(
        err.error_type, "Permanent.ChecksumMismatch",
        "{}",
        err.message
    );
    assert!(err.message.contains("truncated"), "{}", err.message);
    catalog(&bed).remove(&[rotten]).await?;

    // A dry run reads and checks the snapshot, and changes nothing.
    let dry = restore(&restorer, json!({"snapshot": "latest", "dry_run": true})).await;
    texts.push(format!("{dry:?}"));
    match &dry {
        Ok(RestoreOutcome::WouldRestore(plan)) => {
            assert_eq!(plan.snapshot, entry.object);
            assert_eq!(plan.checked.sha256, entry.sha256);
            assert_eq!(plan.checked.index, entry.index);
        }
        other => bail!("expected a dry run, got {other:?}"),
    }

    assert_eq!(
        bed.kv("app").await?.as_deref(),
        Some("v2"),
        "the cluster is untouched"
    );
    assert_eq!(
        SnapshotBed::versions(&bed.bed.region).await?,
        before_versions
    );
    assert_eq!(entries(&bed).await?, before_entries);
    assert_nothing_leaked(&bed, &logs, &texts).await
}

#[tokio::test]
async fn concurrent_deliveries_of_one_tick_store_one_snapshot() -> Result<()> {
    let logs = capture_logs();
    let bed = SnapshotBed::start(1).await?;
    let tick = schedule_event();
    let functions = (0..3)
        .map(|_| bed.backup(&[("DR_REGION", ""), ("DR_BUCKET", "")]))
        .collect::<Result<Vec<_>>>()?;
    let outcomes = join_all(
        functions
            .iter()
            .enumerate()
            .map(|(i, f)| backup(f, &tick, ["a", "b", "c"][i])),
    )
    .await;
    let texts: Vec<String> = outcomes.iter().map(|o| format!("{o:?}")).collect();
    let stored: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(BackupOutcome::BackedUp(r)) => Some(r.snapshot.clone()),
            _ => None,
        })
        .collect();
    assert!(!stored.is_empty(), "{texts:?}");
    for o in &outcomes {
        assert!(
            matches!(
                o,
                Ok(BackupOutcome::BackedUp(_) | BackupOutcome::Busy { .. })
            ),
            "{o:?}"
        );
    }
    assert!(stored.iter().all(|s| *s == stored[0]), "{texts:?}");
    let fresh = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(BackupOutcome::BackedUp(r)) if !r.redelivered))
        .count();
    assert_eq!(fresh, 1, "one delivery took the snapshot: {texts:?}");
    // health-probe reads the catalog and publishes the age of the newest snapshot.
    let probe = HealthProbe {
        cluster: cluster(&bed)?,
        fleet: AsgFleet::from_sdk(
            &bed.bed.region.sdk,
            ClusterSettings::from_env(&env_of(&bed))?,
        ),
        api: bed.vault.clone(),
        login: VaultLogin::new(
            AuthSettings::from_env(&env_of(&bed), &cluster(&bed)?, "health-probe")?,
            SsmParameters::from_sdk(&bed.bed.region.sdk),
        ),
        metrics: FakeMetrics::default(),
        catalog: Some(Box::new(catalog(&bed))),
        primary: None,
    };
    let report = probe.run().await?;
    let age = report
        .summary
        .last_good_backup_age_secs
        .context("the age is known")?;
    assert!(age < 600, "{age}");
    assert_eq!(
        probe.metrics.value("LastGoodBackupAgeSeconds", None),
        Some(age as f64)
    );
    assert_eq!(entries(&bed).await?.len(), 1);
    assert_eq!(SnapshotBed::versions(&bed.bed.region).await?.len(), 1);
    assert_nothing_leaked(&bed, &logs, &texts).await
}

#[tokio::test]
async fn retention_over_1500_snapshots_keeps_exactly_the_policy() -> Result<()> {
    let logs = capture_logs();
    let bed = SnapshotBed::start(1).await?;
    let s3 = SnapshotBed::s3(&bed.bed.region);
    let cluster = bed.bed.cluster.clone();
    let now = Utc::now();
    // 1,500 hourly snapshots before now, each a real (tiny) object version.
    let mut old = Vec::new();
    for batch in (1..=1500i64).collect::<Vec<_>>().chunks(100) {
        let puts = batch.iter().map(|h| {
            let key = format!("vault-lifecycle/{cluster}/old-{h}.snap");
            let s3 = &s3;
            let bucket = &bed.bed.region.bucket;
            async move {
                let out = s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(format!("snapshot {h}").into_bytes().into())
                    .send()
                    .await?;
                Ok::<_, anyhow::Error>((*h, key, out.version_id().map(str::to_owned)))
            }
        });
        for put in join_all(puts).await {
            old.push(put?);
        }
    }
    let template = CatalogEntry {
        cluster: cluster.clone(),
        taken_at: now,
        object: shared::snapshots::store::Location {
            region: bed.bed.region.region.clone(),
            bucket: bed.bed.region.bucket.clone(),
            key: String::new(),
            version_id: None,
        },
        dr_copy: None,
        sha256: "0".repeat(64),
        bytes: 10,
        index: 1,
        term: 1,
        state_size: 1,
        cluster_id: String::new(),
        server_version: "2.7.2".into(),
        kind: BackupKind::Scheduled,
        reason: None,
        share_generation: Some(1),
        database_generation: None,
        canary: None,
        drill: None,
    };
    let catalog = catalog(&bed);
    for batch in old.chunks(50) {
        let puts = batch.iter().map(|(h, key, version)| {
            let mut entry = template.clone();
            entry.taken_at = now - chrono::Duration::hours(*h);
            entry.object.key = key.clone();
            entry.object.version_id = version.clone();
            let catalog = &catalog;
            async move { catalog.put(&entry).await }
        });
        for put in join_all(puts).await {
            put?;
        }
    }
    assert_eq!(entries(&bed).await?.len(), 1500);

    let outcome = backup(
        &bed.backup(&[("DR_REGION", ""), ("DR_BUCKET", "")])?,
        &json!({}),
        "req",
    )
    .await;
    let report = backed_up(&outcome)?;
    let kept = entries(&bed).await?;
    // What the policy keeps, computed here from the times alone.
    let times: Vec<DateTime<Utc>> = (1..=1500)
        .map(|h| now - chrono::Duration::hours(h))
        .chain([report.snapshot.taken_at])
        .collect();
    let decision = shared::snapshots::retention::plan(&times, &Default::default());
    let expected: BTreeSet<DateTime<Utc>> = decision.keep.iter().map(|&i| times[i]).collect();
    let got: BTreeSet<DateTime<Utc>> = kept.iter().map(|e| e.taken_at).collect();
    assert_eq!(got, expected);
    assert!(
        got.contains(&report.snapshot.taken_at),
        "the newest is kept"
    );
    assert_eq!(report.retention.kept, kept.len());
    assert_eq!(report.retention.deleted.len(), 1501 - kept.len());
    // Exactly the kept versions are left in the bucket: the others' exact versions were
    // deleted (no delete markers stand in for them).
    let left: BTreeSet<(String, String)> = SnapshotBed::versions(&bed.bed.region)
        .await?
        .into_iter()
        .collect();
    let wanted: BTreeSet<(String, String)> = kept
        .iter()
        .map(|e| {
            (
                e.object.key.clone(),
                e.object.version_id.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(left, wanted);
    let markers = s3
        .list_object_versions()
        .bucket(&bed.bed.region.bucket)
        .send()
        .await?;
    assert!(markers.delete_markers().is_empty());
    assert_nothing_leaked(&bed, &logs, &[format!("{outcome:?}")]).await
}

#[tokio::test]
async fn another_clusters_snapshot_needs_force_and_that_clusters_shares() -> Result<()> {
    let logs = capture_logs();
    let (source, target) = tokio::try_join!(SnapshotBed::start(1), SnapshotBed::start(1))?;
    source
        .write("kv/app", json!({"value": "from-source"}))
        .await?;
    let entry = backed_up(
        &backup(
            &source.backup(&[("DR_REGION", ""), ("DR_BUCKET", "")])?,
            &json!({}),
            "req",
        )
        .await,
    )?
    .snapshot
    .clone();
    target
        .write("kv/app", json!({"value": "target's own"}))
        .await?;
    // The target's restore reads the source's bucket and catalog (one table and bucket
    // can serve several clusters).
    let overrides = [
        ("SNAPSHOT_BUCKET", source.bed.region.bucket.as_str()),
        ("STATE_TABLE", source.bed.region.table.as_str()),
    ];
    let restorer = target.restore(&overrides)?;
    let exact = json!({"key": entry.object.key, "version_id": entry.object.version_id});
    let mut texts = Vec::new();

    let refused = restore(&restorer, json!({"snapshot": exact})).await;
    texts.push(format!("{refused:?}"));
    let err = refused.expect_err("another cluster's snapshot needs force");
    assert_eq!(err.error_type, "Permanent.OtherCluster", "{}", err.message);
    assert!(err.message.contains(&source.bed.cluster) && err.message.contains("force"));

    // With force, and one of the source's shares missing: refused before anything.
    let ssm = SsmParameters::from_sdk(&source.bed.region.sdk);
    let share3 = format!("{}/unseal/share-3", source.bed.ssm_path());
    let kept_share = ssm.secret(&share3).await?;
    ssm.delete(&share3).await?;
    let missing = restore(&restorer, json!({"snapshot": exact, "force": true})).await;
    texts.push(format!("{missing:?}"));
    let err = missing.expect_err("the source's shares are needed");
    assert_eq!(
        err.error_type, "Permanent.SourceSharesMissing",
        "{}",
        err.message
    );
    assert_eq!(target.kv("app").await?.as_deref(), Some("target's own"));
    ssm.put_new_secret(&share3, &kept_share, &source.bed.region.kms_key)
        .await?;

    let forced = restore(&restorer, json!({"snapshot": exact, "force": true})).await;
    texts.push(format!("{forced:?}"));
    let report = restored(&forced)?;
    assert!(report.plan.other_cluster);
    // The restored keyring is the source's: the target's node sealed, and the function
    // unsealed it with the source's shares.
    assert_eq!(report.unsealed.len(), 1, "{report:?}");
    assert_eq!(report.plan.source_cluster, source.bed.cluster);
    // The target now holds the source's data, under the source's keys: the source's
    // root token reads it.
    let as_source = SnapshotBed {
        root: source.root.clone(),
        ..target
    };
    assert_eq!(as_source.kv("app").await?.as_deref(), Some("from-source"));
    texts.push(format!("{:?}", report.unsealed));
    let mut canaries = texts.clone();
    canaries.push(logs.contents());
    for text in &canaries {
        assert!(!text.contains(kept_share.expose()));
    }
    assert_nothing_leaked(&source, &logs, &texts).await?;
    assert_nothing_leaked(&as_source, &logs, &texts).await
}

#[tokio::test]
async fn the_sample_requests_under_the_lambda_emulator() -> Result<()> {
    let bed = SnapshotBed::start(1).await?;
    bed.write("kv/app", json!({"value": "v1"})).await?;
    let mut env = bed.env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let mut emulator = testbed::lambda::LambdaEmulator::start(&env).await?;
    let wait = Duration::from_secs(900);
    let ok = |answer: testbed::lambda::Invocation, what: &str, output: String| match answer {
        testbed::lambda::Invocation::Ok(value) => Ok(value),
        testbed::lambda::Invocation::Err(e) => {
            bail!("{what} failed: {e}\nemulator output:\n{output}")
        }
    };
    let report = emulator
        .invoke("snapshot-backup", "snapshot-backup/schedule.json", wait)
        .await?;
    let report = ok(report, "schedule.json", emulator.output())?;
    assert_eq!(report["outcome"], "backed_up", "{report}");
    assert_eq!(report["snapshot"]["kind"], "scheduled", "{report}");
    assert!(
        report["snapshot"]["dr_copy"]["bucket"] == bed.dr.bucket.as_str(),
        "{report}"
    );
    let report = emulator
        .invoke("snapshot-backup", "snapshot-backup/direct.json", wait)
        .await?;
    let report = ok(report, "direct.json", emulator.output())?;
    assert_eq!(
        report["snapshot"]["reason"], "before upgrade to 2.8",
        "{report}"
    );
    bed.write("kv/app", json!({"value": "v2"})).await?;

    let report = emulator
        .invoke("snapshot-restore", "snapshot-restore/dry-run.json", wait)
        .await?;
    let report = ok(report, "dry-run.json", emulator.output())?;
    assert_eq!(report["outcome"], "would_restore", "{report}");
    assert_eq!(bed.kv("app").await?.as_deref(), Some("v2"));
    let report = emulator
        .invoke("snapshot-restore", "snapshot-restore/latest.json", wait)
        .await?;
    let report = ok(report, "latest.json", emulator.output())?;
    assert_eq!(report["outcome"], "restored", "{report}");
    assert_eq!(bed.kv("app").await?.as_deref(), Some("v1"));

    // The samples name cluster prod's objects and a time before this cluster's first
    // snapshot: each is refused, and nothing changes.
    let before = entries(&bed).await?;
    for (function, sample, error_type) in [
        (
            "snapshot-restore",
            "snapshot-restore/as-of.json",
            "Permanent.NoSnapshotAsOf",
        ),
        (
            "snapshot-restore",
            "snapshot-restore/exact-version.json",
            "Permanent.NoSuchVersion",
        ),
        (
            "snapshot-restore",
            "snapshot-restore/force-other-cluster.json",
            "Permanent.NoSuchVersion",
        ),
        (
            "snapshot-restore",
            "snapshot-backup/schedule.json",
            "Permanent.UnrecognisedEvent",
        ),
        (
            "snapshot-backup",
            "node-lifecycle/launch.json",
            "Permanent.UnrecognisedEvent",
        ),
    ] {
        let testbed::lambda::Invocation::Err(error) =
            emulator.invoke(function, sample, wait).await?
        else {
            bail!("{sample} must fail");
        };
        assert!(error.contains(error_type), "{sample}: {error}");
    }
    assert_eq!(entries(&bed).await?, before);
    assert_eq!(bed.kv("app").await?.as_deref(), Some("v1"));

    let output = emulator.output();
    assert!(output.contains("snapshot catalogued"), "logs are captured");
    for (name, secret) in bed.bed.stored_secrets().await? {
        assert!(
            !output.contains(&secret),
            "{name} reached the functions' output"
        );
    }

    // A missing setting stops each binary at start-up with the variable's name.
    for (binary, variable) in [
        ("snapshot-backup", "SNAPSHOT_BUCKET"),
        ("snapshot-restore", "STATE_TABLE"),
    ] {
        let path = testbed::lambda::function_binary(binary);
        let out = std::process::Command::new(&path)
            .env_clear()
            .envs(bed.env().into_iter().filter(|(k, _)| k != variable))
            .output()
            .with_context(|| path.display().to_string())?;
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(variable), "{binary}: {text}");
    }
    Ok(())
}

/// credential-rotation's way to the backup path: an asynchronous invocation of
/// snapshot-backup through the Lambda API (the emulator's), with a reason, becomes a
/// catalogued snapshot with that reason and the share generation in force.
#[tokio::test]
async fn a_snapshot_asked_through_the_lambda_api_is_taken_and_catalogued() -> Result<()> {
    use shared::cluster::ports::BackupTrigger;
    let bed = SnapshotBed::start(1).await?;
    let emulator = testbed::lambda::LambdaEmulator::start(&bed.env()).await?;
    emulator.serve("snapshot-backup")?;
    let sdk = bed
        .bed
        .region
        .sdk
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{}", emulator.port))
        .build();
    let trigger = shared::aws::LambdaBackupTrigger::from_sdk(&sdk, "snapshot-backup".into());
    let reason = "after credential-rotation: unseal-shares generation 2";
    trigger.request_backup(reason).await?;
    let waited = Instant::now() + Duration::from_secs(300);
    let entry = loop {
        let found = entries(&bed)
            .await?
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason));
        match found {
            Some(entry) => break entry,
            None if Instant::now() < waited => tokio::time::sleep(Duration::from_millis(500)).await,
            None => bail!(
                "no snapshot with the reason; emulator output:\n{}",
                emulator.output()
            ),
        }
    };
    assert_eq!(entry.kind, BackupKind::Manual);
    assert_eq!(entry.share_generation, Some(1));
    Ok(())
}

/// A snapshot taken before a share rotation is restored: the dry run names its
/// generation, the data comes back, a restarted node is unsealed by node-lifecycle with
/// that older generation, and the next rotation starts from it. With that generation's
/// shares gone, the restore is refused and changes nothing.
#[tokio::test]
async fn a_snapshot_taken_before_a_share_rotation_restores_and_unseals_with_its_generation(
) -> Result<()> {
    use shared::events::RotationTarget;
    let mut bed = SnapshotBed::start(1).await?;
    let backup_fn = bed.backup(&[])?;
    let restorer = bed.restore(&[])?;
    let rotation = bed.rotation(&[])?;
    bed.write("kv/app", json!({"value": "before"})).await?;
    let before = backed_up(&backup(&backup_fn, &json!({"reason": "before"}), "req-1").await)?
        .snapshot
        .clone();
    assert_eq!(before.share_generation, Some(1));

    let rotated = rotation
        .rotate(&[RotationTarget::UnsealShares], "rot-1", deadline())
        .await?;
    assert_eq!(
        rotated.unseal_shares.as_ref().map(|s| s.generation),
        Some(2)
    );
    bed.write("kv/app", json!({"value": "after"})).await?;
    let after = backed_up(&backup(&backup_fn, &json!({"reason": "after"}), "req-2").await)?
        .snapshot
        .clone();
    assert_eq!(after.share_generation, Some(2));

    let exact = json!({"key": before.object.key, "version_id": before.object.version_id});
    let plan = restore(&restorer, json!({"snapshot": exact, "dry_run": true})).await;
    let Ok(RestoreOutcome::WouldRestore(plan)) = &plan else {
        bail!("expected a plan, got {plan:?}");
    };
    assert_eq!(plan.share_generation, Some(1));
    restored(&restore(&restorer, json!({"snapshot": exact})).await)?;
    assert_eq!(bed.kv("app").await?.as_deref(), Some("before"));

    // The restored root key is under generation 1: a restarted node is unsealed with it
    // (generation 2, newest in force, is refused first).
    bed.bed.bao.restart(0).await?;
    let lifecycle = bed.bed.function(&[])?;
    let waited = Instant::now() + Duration::from_secs(60);
    while bed.bed.bao.health_code(0).await? == 503 {
        if Instant::now() > waited {
            bail!("the restarted node stayed sealed");
        }
        let _ = lifecycle
            .handle(&json!({"action": "reconcile"}), deadline())
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(bed.kv("app").await?.as_deref(), Some("before"));

    // The next rotation starts from generation 1 and makes generation 3.
    let next = rotation
        .rotate_as(&[RotationTarget::UnsealShares], true, "rot-2", deadline())
        .await?;
    assert_eq!(
        next.unseal_shares
            .as_ref()
            .map(|s| (s.previous_generation, s.generation)),
        Some((2, 3))
    );

    // Generation 1's shares gone (three of five deleted): its snapshot is refused.
    let ssm = aws_sdk_ssm::Client::new(&bed.bed.region.sdk);
    for n in 1..=3 {
        ssm.delete_parameter()
            .name(format!("{}/unseal/share-{n}", bed.bed.ssm_path()))
            .send()
            .await?;
    }
    let refused = restore(&restorer, json!({"snapshot": exact}))
        .await
        .expect_err("generation 1 is gone");
    assert_eq!(refused.error_type, "Permanent.GenerationSharesMissing");
    assert_eq!(
        bed.kv("app").await?.as_deref(),
        Some("before"),
        "nothing changed"
    );
    Ok(())
}
