//! `bench backup`: a cluster filled with `--size-mb` MiB of values that do not compress,
//! then, per round, the same snapshot brought into S3 (moto) four ways, each a child
//! process under GNU time so that its CPU time and peak RSS are measured beside its
//! wall-clock time:
//!
//! - the read floor: curl reads the snapshot to /dev/null, storing nothing;
//! - the store floor: boto3's `upload_file` (the transfer manager `aws s3 cp` uses)
//!   uploads the same bytes from a file saved before the rounds, reading nothing;
//! - the usual script: `bao operator raft snapshot save` to a file, then the same upload;
//! - snapshot-backup: this binary again, building the function as its `main` does and
//!   invoking it once, without the DR copy (`SNAPSHOT_PART_SIZE_MIB` is passed on when
//!   set).
//!
//! A way that reads and stores cannot beat the slower of the two floors, so
//! snapshot-backup is judged against that one. The order rotates each round so that
//! drift falls on every way alike.

mod ways;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::future::join_all;
use serde_json::json;
use shared::{
    aws::sdk_config,
    backup::{BackupConfig, BackupOutcome},
};
use testbed::{snapshots::SnapshotBed, unique_name};

use ways::Ways;

/// Each value written: a quarter of Raft's largest entry (1 MiB).
const VALUE_BYTES: usize = 256 << 10;
/// Writes in flight while the cluster is filled.
const WRITES_IN_FLIGHT: usize = 8;
/// How far a way's snapshot may be from the first one's size and still be the same.
const SIZE_TOLERANCE: f64 = 0.02;

#[derive(Clone, Copy, PartialEq)]
enum Way {
    ReadFloor,
    StoreFloor,
    Script,
    Function,
}

impl Way {
    const ALL: [Way; 4] = [Way::ReadFloor, Way::StoreFloor, Way::Script, Way::Function];

    fn label(self) -> &'static str {
        match self {
            Way::ReadFloor => "read floor",
            Way::StoreFloor => "store floor",
            Way::Script => "script",
            Way::Function => "snapshot-backup",
        }
    }

    /// Whether this way leaves one more object version in the bucket.
    fn stores(self) -> bool {
        self != Way::ReadFloor
    }
}

/// One way in one round.
struct Measured {
    took: Duration,
    /// User and system CPU seconds.
    cpu: f64,
    peak_kib: u64,
    /// Bytes read (the read floor) or stored.
    bytes: u64,
    /// The script's steps, one by one.
    steps: String,
}

pub async fn run(size_mib: usize, rounds: usize) -> Result<()> {
    let build = crate::measure::BUILD;
    let part_mib = std::env::var("SNAPSHOT_PART_SIZE_MIB").unwrap_or_else(|_| "8".into());
    println!("bench backup: {size_mib} MiB of values, {rounds} rounds, each bringing the same snapshot into S3 (moto) four ways, order rotating; snapshot-backup is this {build} build, {part_mib} MiB parts, no DR copy");
    let bed = SnapshotBed::start(1).await?;
    let started = Instant::now();
    let values = fill(&bed, size_mib).await?;
    println!(
        "  cluster filled: {values} values of {} KiB in {:.1} s",
        VALUE_BYTES >> 10,
        started.elapsed().as_secs_f64()
    );
    let ways = Ways::new(&bed).await?;
    // Untimed: it warms the node's cache for every way alike, gives the size to expect
    // and the file the store floor uploads.
    let expected = ways.save_snapshot().await?;
    println!("  snapshot: {:.1} MiB ({expected} bytes)", mib(expected));
    let mut measured: [Vec<Measured>; 4] = Default::default();
    for round in 1..=rounds {
        for i in 0..Way::ALL.len() {
            let way = Way::ALL[(round - 1 + i) % Way::ALL.len()];
            let m = ways.run(way, round).await?;
            if (m.bytes as f64 - expected as f64).abs() > expected as f64 * SIZE_TOLERANCE {
                bail!(
                    "{}: {} bytes, but the snapshot has about {expected}",
                    way.label(),
                    m.bytes
                );
            }
            println!(
                "  round {round}: {:<15} {:>7.2} s  CPU {:>6.2} s  peak RSS {:>6.1} MiB  {:.1} MiB{}",
                way.label(),
                m.took.as_secs_f64(),
                m.cpu,
                m.peak_kib as f64 / 1024.0,
                mib(m.bytes),
                m.steps
            );
            measured[way as usize].push(m);
        }
    }
    report(mib(expected), rounds, &measured);
    Ok(())
}

/// Writes values of random text (random bytes in base64's alphabet) until they add up to
/// `size_mib` MiB; returns how many. Vault encrypts what it stores, so the snapshot is
/// about as large as the values, and nothing along the way can compress them.
pub(crate) async fn fill(bed: &SnapshotBed, size_mib: usize) -> Result<usize> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let count = (size_mib << 20).div_ceil(VALUE_BYTES);
    for first in (0..count).step_by(WRITES_IN_FLIGHT) {
        let paths: Vec<String> = (first..count.min(first + WRITES_IN_FLIGHT))
            .map(|i| format!("kv/bench-{i}"))
            .collect();
        let writes = paths.iter().map(|path| {
            let mut bytes = vec![0; VALUE_BYTES];
            fastrand::fill(&mut bytes);
            let text: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
                .collect();
            bed.write(path, json!({ "value": text }))
        });
        for written in join_all(writes).await {
            written?;
        }
    }
    Ok(count)
}

fn report(snapshot_mib: f64, rounds: usize, measured: &[Vec<Measured>; 4]) {
    let seconds = |way: Way| median(&measured[way as usize], |m| m.took.as_secs_f64());
    let (read, store) = (seconds(Way::ReadFloor), seconds(Way::StoreFloor));
    let (slower, floor) = if store >= read {
        (Way::StoreFloor, store)
    } else {
        (Way::ReadFloor, read)
    };
    let peak = |way: Way| {
        let runs = &measured[way as usize];
        let max = runs.iter().map(|m| m.peak_kib).max().unwrap_or_default();
        (
            median(runs, |m| m.peak_kib as f64) / 1024.0,
            max as f64 / 1024.0,
        )
    };
    println!();
    println!("| way ({snapshot_mib:.1} MiB snapshot; medians of {rounds} rounds) | time | × slower floor | CPU time | peak RSS (median; max) |");
    println!("|---|---|---|---|---|");
    for way in Way::ALL {
        let what = match way {
            Way::ReadFloor => "read floor: curl reads the snapshot to /dev/null",
            Way::StoreFloor => "store floor: boto3 `upload_file` of the snapshot from a file",
            Way::Script => "script: `bao operator raft snapshot save`, then boto3 `upload_file` (both steps; RSS: the larger)",
            Way::Function => "snapshot-backup: streamed into S3, checked, catalogued",
        };
        let (median_peak, max_peak) = peak(way);
        println!(
            "| {what} | {:.2} s | {:.2} | {:.2} s | {median_peak:.1} MiB; {max_peak:.1} MiB |",
            seconds(way),
            seconds(way) / floor,
            median(&measured[way as usize], |m| m.cpu),
        );
    }
    let goal = crate::measure::goals();
    let (s, b) = (seconds(Way::Script), seconds(Way::Function));
    goal(
        "snapshot-backup ≤ 1.15 × the slower floor",
        format!(
            "{:.2} × the {} ({floor:.2} s); {:.2} × the read floor",
            b / floor,
            slower.label(),
            b / read
        ),
        b <= 1.15 * floor,
    );
    goal(
        "snapshot-backup faster than the script",
        format!("{b:.2} s against {s:.2} s"),
        b < s,
    );
    let (_, max_peak) = peak(Way::Function);
    goal(
        "snapshot-backup peak RSS ≤ 64 MiB",
        format!("{max_peak:.1} MiB (max of {rounds})"),
        max_peak <= 64.0,
    );
}

/// The median of `figure` over `runs`.
fn median(runs: &[Measured], figure: fn(&Measured) -> f64) -> f64 {
    crate::measure::median(runs.iter().map(figure).collect())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// snapshot-backup as its `main` builds it, from this process's environment (which
/// `backup` sets), invoked once. Prints only the stored object and its size, as JSON.
pub async fn child() -> Result<()> {
    let config = BackupConfig::from_env("snapshot-backup")?;
    let function = shared::backup::from_sdk(&sdk_config().await, config)?;
    let outcome = function
        .handle(
            &json!({"reason": "bench"}),
            &unique_name("bench"),
            tokio::time::Instant::now() + Duration::from_secs(900),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))?;
    let BackupOutcome::BackedUp(report) = outcome else {
        bail!("no snapshot taken: {outcome:?}");
    };
    let object = &report.snapshot.object;
    println!(
        "{}",
        json!({"key": object.key, "version_id": object.version_id, "bytes": report.snapshot.bytes})
    );
    Ok(())
}
