//! `bench backup`: a cluster filled with `--size-mb` MiB of values that do not compress,
//! then, per round, the same snapshot brought into S3 (moto) three ways, each a child
//! process under GNU time so that its CPU time and peak RSS are measured beside its
//! wall-clock time: the floor (curl reads the snapshot to /dev/null: nothing stored), the
//! usual script (`bao operator raft snapshot save` to a file, then boto3's `upload_file`,
//! the transfer manager `aws s3 cp` uses) and snapshot-backup (this binary again,
//! building the function as its `main` does and invoking it once, without the DR copy;
//! `SNAPSHOT_PART_SIZE_MIB` is passed on when set). The order rotates each round so that
//! drift falls on all three alike.

mod ways;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::future::join_all;
use serde_json::json;
use shared::{
    aws::{sdk_config, snapshot_backup},
    snapshots::backup::{BackupConfig, BackupOutcome},
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
    Floor,
    Script,
    Function,
}

impl Way {
    const ALL: [Way; 3] = [Way::Floor, Way::Script, Way::Function];

    fn label(self) -> &'static str {
        match self {
            Way::Floor => "floor",
            Way::Script => "script",
            Way::Function => "snapshot-backup",
        }
    }
}

/// One way in one round.
struct Measured {
    took: Duration,
    /// User and system CPU seconds.
    cpu: f64,
    peak_kib: u64,
    /// Bytes read (the floor) or stored.
    bytes: u64,
    /// The script's steps, one by one.
    steps: String,
}

pub async fn run(size_mib: usize, rounds: usize) -> Result<()> {
    if rounds == 0 {
        bail!("--rounds needs at least 1");
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let part_mib = std::env::var("SNAPSHOT_PART_SIZE_MIB").unwrap_or_else(|_| "8".into());
    println!("bench backup: {size_mib} MiB of values, {rounds} rounds, each bringing the same snapshot into S3 (moto) three ways, order rotating; snapshot-backup is this {build} build, {part_mib} MiB parts, no DR copy");
    let bed = SnapshotBed::start(1).await?;
    let started = Instant::now();
    let values = fill(&bed, size_mib).await?;
    println!(
        "  cluster filled: {values} values of {} KiB in {:.1} s",
        VALUE_BYTES >> 10,
        started.elapsed().as_secs_f64()
    );
    let ways = Ways::new(&bed).await?;
    // Untimed: it warms the node's cache for the three alike and gives the size to expect.
    let expected = ways.floor().await?.bytes;
    println!("  snapshot: {:.1} MiB ({expected} bytes)", mib(expected));
    let mut measured: [Vec<Measured>; 3] = Default::default();
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
async fn fill(bed: &SnapshotBed, size_mib: usize) -> Result<usize> {
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

fn report(snapshot_mib: f64, rounds: usize, measured: &[Vec<Measured>; 3]) {
    let median = |runs: &[Measured], figure: fn(&Measured) -> f64| {
        let mut figures: Vec<f64> = runs.iter().map(figure).collect();
        figures.sort_by(f64::total_cmp);
        figures[figures.len() / 2]
    };
    let seconds = |runs: &[Measured]| median(runs, |m| m.took.as_secs_f64());
    let peak = |runs: &[Measured]| {
        runs.iter().map(|m| m.peak_kib).max().unwrap_or_default() as f64 / 1024.0
    };
    let floor = seconds(&measured[Way::Floor as usize]);
    println!();
    println!("| way ({snapshot_mib:.1} MiB snapshot; medians of {rounds} rounds) | time | × floor | CPU time | peak RSS (max of {rounds}) |");
    println!("|---|---|---|---|---|");
    for way in Way::ALL {
        let what = match way {
            Way::Floor => "floor: curl reads the snapshot to /dev/null",
            Way::Script => "script: `bao operator raft snapshot save`, then boto3 `upload_file` (both steps; RSS: the larger)",
            Way::Function => "snapshot-backup: streamed into S3, checked, catalogued",
        };
        let runs = &measured[way as usize];
        println!(
            "| {what} | {:.2} s | {:.2} | {:.2} s | {:.1} MiB |",
            seconds(runs),
            seconds(runs) / floor,
            median(runs, |m| m.cpu),
            peak(runs)
        );
    }
    let (script, function) = (
        &measured[Way::Script as usize],
        &measured[Way::Function as usize],
    );
    println!();
    println!("| goal | measured | result |");
    println!("|---|---|---|");
    let goal = |what: &str, measured: String, met: bool| {
        let result = if met { "goal met" } else { "goal missed" };
        println!("| {what} | {measured} | {result} |");
    };
    let (s, b) = (seconds(script), seconds(function));
    goal(
        "snapshot-backup ≤ 1.15 × floor",
        format!("{:.2} × floor", b / floor),
        b <= 1.15 * floor,
    );
    goal(
        "snapshot-backup faster than the script",
        format!("{b:.2} s against {s:.2} s"),
        b < s,
    );
    goal(
        "snapshot-backup peak RSS ≤ 64 MiB",
        format!("{:.1} MiB", peak(function)),
        peak(function) <= 64.0,
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// snapshot-backup as its `main` builds it, from this process's environment (which
/// `backup` sets), invoked once. Prints only the stored object and its size, as JSON.
pub async fn child() -> Result<()> {
    let config = BackupConfig::from_env("snapshot-backup")?;
    let function = snapshot_backup(&sdk_config().await, config)?;
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
