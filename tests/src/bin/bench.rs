//! Benchmarks (`cargo xtask bench <name>` builds the workspace and runs this).
//!
//! `lifecycle`: the time from a launch event to the lifecycle action's CONTINUE for a
//! joining node, through node-lifecycle, side by side with the floor: the raw API steps
//! (join, unseal with shares already in memory, wait for autopilot's healthy voter,
//! complete the action) done directly, in the same run, against the same cluster.
//! Rounds alternate between the two so that any drift (a growing cluster, a warming
//! cache) falls on both.
//!
//! `backup`: a cluster filled with `--size-mb` MiB of values that do not compress, then,
//! per round, the same snapshot brought into S3 (moto) three ways, each a child process
//! under GNU time so that its CPU time and peak RSS are measured beside its wall-clock
//! time: the floor (curl reads the snapshot to /dev/null: nothing stored), the usual
//! script (`bao operator raft snapshot save` to a file, then boto3's `upload_file`, the
//! transfer manager `aws s3 cp` uses) and snapshot-backup (this binary again, building
//! the function as its `main` does and invoking it once, without the DR copy;
//! `SNAPSHOT_PART_SIZE_MIB` is passed on when set). The order rotates each round so that
//! drift falls on all three alike.

use std::{
    ffi::OsStr,
    io::Write,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    aws::{sdk_config, AsgLifecycleActions},
    backup::{BackupConfig, BackupOutcome},
    cluster::lifecycle_actions::{LifecycleActions, Verdict},
    events::{LifecycleAction, Transition},
    ids::NodeAddr,
    lifecycle::Outcome,
    secret::Secret,
    vault::VaultClient,
};
use testbed::{
    lifecycle::LifecycleBed,
    openbao::{bao_binary, InitKeys, Seal},
    snapshots::SnapshotBed,
    unique_name, venv,
};
use tokio::process::Command;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lifecycle") => lifecycle(option(&args, "--rounds", 3)?).await,
        Some("backup") => {
            backup(
                option(&args, "--size-mb", 100)?,
                option(&args, "--rounds", 3)?,
            )
            .await
        }
        // Not in the usage: `backup` runs it as snapshot-backup's stand-in.
        Some("backup-child") => backup_child().await,
        _ => bail!("usage: bench lifecycle [--rounds N] | bench backup [--size-mb N] [--rounds N]"),
    }
}

/// The value after `name` in `args`, or `default` when `name` is absent.
fn option<T>(args: &[String], name: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .with_context(|| format!("{name} needs a whole number"))?),
        None => Ok(default),
    }
}

async fn lifecycle(rounds: usize) -> Result<()> {
    println!("bench lifecycle: {rounds} rounds, each one joining node through node-lifecycle and one by the raw API");
    let mut bed = LifecycleBed::start(1, Seal::Shamir).await?;
    // The root token is kept (KEEP_ROOT_TOKEN) only so the bench can shorten autopilot's
    // stabilisation time to 2 s for both paths alike.
    let function = bed.function(&[("KEEP_ROOT_TOKEN", "true")])?;
    let first = bed.region.instances(None).await?.remove(0);
    let event = LifecycleBed::event(&bed.pending(&first, "launch").await?);
    let outcome = function
        .handle(
            &event,
            tokio::time::Instant::now() + Duration::from_secs(900),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!("  cluster initialised by node-lifecycle: {outcome:?}");
    let path = bed.ssm_path();
    let mut shares = Vec::new();
    for n in 1..=3 {
        shares.push(
            bed.parameter(&format!("{path}/unseal/share-{n}"))
                .await?
                .context("share")?,
        );
    }
    let root_token = bed
        .parameter(&format!("{path}/root-token"))
        .await?
        .context("root token")?;
    bed.bao.keys = Some(InitKeys {
        keys: shares.clone(),
        threshold: 3,
        root_token: root_token.clone(),
    });
    bed.bao
        .root(
            0,
            Method::POST,
            "sys/storage/raft/autopilot/configuration",
            Some(json!({"server_stabilization_time": "2s"})),
        )
        .await?;
    let vault = VaultClient::new(&shared::config::VaultSettings {
        ca: shared::config::CaSource::Pem(bed.bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
    })?;
    let actions = AsgLifecycleActions::new(aws_sdk_autoscaling::Client::new(&bed.region.sdk));
    let (mut through_function, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for by_function in [round % 2 == 1, round % 2 == 0] {
            let id = bed.scale_out(1).await?.remove(0);
            let action = bed.pending(&id, "launch").await?;
            let started = Instant::now();
            if by_function {
                let outcome = function
                    .handle(
                        &LifecycleBed::event(&action),
                        tokio::time::Instant::now() + Duration::from_secs(900),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                if !matches!(outcome, Outcome::Launched(_)) {
                    bail!("{id}: {outcome:?}");
                }
                through_function.push(started.elapsed());
            } else {
                let node: NodeAddr = bed.bao.nodes[bed.bao.index_of(&id)?]
                    .api_addr
                    .parse()
                    .map_err(anyhow::Error::msg)?;
                let leader = active(&bed, &vault).await?;
                raw_join(
                    &vault,
                    &node,
                    &leader,
                    &bed.bao.ca.ca_pem,
                    &shares,
                    &root_token,
                    &id,
                )
                .await?;
                let action = LifecycleAction {
                    group: action.group.clone(),
                    hook: action.hook.clone(),
                    instance: id.as_str().into(),
                    token: action.token.clone(),
                    transition: Transition::Launching,
                    metadata: None,
                };
                actions.complete(&action, Verdict::Continue).await?;
                raw.push(started.elapsed());
            }
            let spent = started.elapsed().as_secs_f64();
            let how = if by_function {
                "node-lifecycle"
            } else {
                "raw API"
            };
            println!("  round {round}: {id} joined by {how:<14} {spent:>6.2} s");
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (f, r) = (median(&mut through_function), median(&mut raw));
    println!();
    println!("| path (median of {rounds}) | launch event → CONTINUE |");
    println!("|---|---|");
    println!("| raw API: join, unseal, wait for healthy voter, complete | {r:.2} s |");
    println!("| node-lifecycle | {f:.2} s |");
    println!("| overhead | {:.2} s (goal: under 0.50 s) |", f - r);
    Ok(())
}

async fn active(bed: &LifecycleBed, vault: &VaultClient) -> Result<NodeAddr> {
    for node in &bed.bao.nodes {
        let Ok(addr) = node.api_addr.parse::<NodeAddr>() else {
            continue;
        };
        if vault.health(&addr).await.is_ok_and(|h| h.is_active()) {
            return Ok(addr);
        }
    }
    bail!("no active node")
}

/// The floor: the API calls a joining node needs, polling autopilot every 50 ms.
async fn raw_join(
    vault: &VaultClient,
    node: &NodeAddr,
    leader: &NodeAddr,
    ca_pem: &str,
    shares: &[String],
    root: &str,
    id: &str,
) -> Result<()> {
    vault.join(node, leader, Some(ca_pem)).await?;
    for share in shares {
        vault.unseal(node, &Secret::new(share.clone())).await?;
    }
    let root = Secret::new(root.to_owned());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sealed = vault.seal_status(node).await?.sealed;
        if !sealed {
            let state = vault.autopilot_state(leader, &root).await?;
            if state
                .servers
                .get(id)
                .is_some_and(|s| s.healthy && s.is_voter())
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{id} did not become a healthy voter");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each value written: a quarter of Raft's largest entry (1 MiB).
const VALUE_BYTES: usize = 256 << 10;
/// Writes in flight while the cluster is filled.
const WRITES_IN_FLIGHT: usize = 8;
/// How far a way's snapshot may be from the first one's size and still be the same.
const SIZE_TOLERANCE: f64 = 0.02;
/// The script's upload: what `aws s3 cp` does, through the same transfer manager.
const UPLOAD_PY: &str = "\
import sys, boto3
from botocore.config import Config
path, bucket, key, kms = sys.argv[1:]
s3 = boto3.client('s3', config=Config(s3={'addressing_style': 'path'}))
s3.upload_file(path, bucket, key, ExtraArgs={'ServerSideEncryption': 'aws:kms', 'SSEKMSKeyId': kms})
";

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

/// A child process that ended well.
struct Finished {
    took: Duration,
    cpu: f64,
    peak_kib: u64,
    stdout: String,
}

async fn backup(size_mib: usize, rounds: usize) -> Result<()> {
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

/// What the three ways need, prepared once.
struct Ways<'a> {
    bed: &'a SnapshotBed,
    node: NodeAddr,
    /// `X-Vault-Token: <root>` for curl's `-H @file` (mode 0600), so that the token is on
    /// no command line.
    token_header: tempfile::NamedTempFile,
    scratch: tempfile::TempDir,
    s3: aws_sdk_s3::Client,
    bao: PathBuf,
    /// A copy of this binary: the shared target dir may get a newer one mid-run.
    this_binary: PathBuf,
    /// The functions' environment without the DR copy, and a retention that deletes
    /// none of the bench's snapshots.
    function_env: Vec<(String, String)>,
}

impl<'a> Ways<'a> {
    async fn new(bed: &'a SnapshotBed) -> Result<Self> {
        let mut token_header = tempfile::NamedTempFile::new()?;
        writeln!(token_header, "X-Vault-Token: {}", bed.root.expose())?;
        token_header.flush()?;
        let mut function_env: Vec<(String, String)> = bed
            .env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("DR_") && k != "RETAIN_LAST")
            .collect();
        function_env.push(("RETAIN_LAST".into(), "1000".into()));
        // Passed on, so that part sizes can be compared: `SNAPSHOT_PART_SIZE_MIB=16 cargo
        // xtask bench backup`.
        if let Ok(part_mib) = std::env::var("SNAPSHOT_PART_SIZE_MIB") {
            function_env.push(("SNAPSHOT_PART_SIZE_MIB".into(), part_mib));
        }
        let scratch = tempfile::tempdir()?;
        let this_binary = scratch.path().join("bench");
        // /proc/self/exe still reads this process's binary after its path was rebuilt.
        std::fs::copy("/proc/self/exe", &this_binary).context("cannot copy this binary")?;
        Ok(Self {
            bed,
            node: bed.active().await?,
            token_header,
            scratch,
            s3: SnapshotBed::s3(&bed.bed.region),
            bao: bao_binary()?,
            this_binary,
            function_env,
        })
    }

    /// Runs `way` and checks that the bucket holds one more version after it (none more
    /// after the floor).
    async fn run(&self, way: Way, round: usize) -> Result<Measured> {
        let before = SnapshotBed::versions(&self.bed.bed.region).await?.len();
        let measured = match way {
            Way::Floor => self.floor().await?,
            Way::Script => self.script(round).await?,
            Way::Function => self.function().await?,
        };
        let after = SnapshotBed::versions(&self.bed.bed.region).await?.len();
        let stored = usize::from(way != Way::Floor);
        if after != before + stored {
            bail!(
                "{}: the bucket went from {before} to {after} versions; expected {stored} more",
                way.label()
            );
        }
        Ok(measured)
    }

    /// curl reads the snapshot and throws it away: what any way must at least spend.
    async fn floor(&self) -> Result<Measured> {
        let mut curl = under_time("curl");
        curl.args(["-sS", "--fail", "--cacert"])
            .arg(&self.bed.bed.bao.ca.ca_file)
            .arg("-H")
            .arg(format!("@{}", self.token_header.path().display()))
            .args(["-o", "/dev/null", "-w", "%{size_download}"])
            .arg(format!("{}/v1/sys/storage/raft/snapshot", self.node));
        let done = measure("curl", &mut curl).await?;
        Ok(Measured {
            took: done.took,
            cpu: done.cpu,
            peak_kib: done.peak_kib,
            bytes: done.stdout.trim().parse().context("curl's size_download")?,
            steps: String::new(),
        })
    }

    /// `bao operator raft snapshot save` into a file, then boto3 uploads the file.
    async fn script(&self, round: usize) -> Result<Measured> {
        let file = self.scratch.path().join(format!("round-{round}.snap"));
        let mut save = under_time(&self.bao);
        save.args(["operator", "raft", "snapshot", "save"])
            .arg(&file)
            .env("BAO_ADDR", self.node.to_string())
            .env("BAO_CACERT", &self.bed.bed.bao.ca.ca_file)
            .env("BAO_TOKEN", self.bed.root.expose());
        let saved = measure("bao operator raft snapshot save", &mut save).await?;
        let bytes = std::fs::metadata(&file)?.len();
        let region = &self.bed.bed.region;
        let key = format!("bench-script/{}/round-{round}.snap", self.bed.bed.cluster);
        let mut upload = under_time(venv().join("bin/python"));
        upload
            .arg("-c")
            .arg(UPLOAD_PY)
            .arg(&file)
            .args([&region.bucket, &key, &region.kms_key])
            .envs(
                self.bed
                    .env()
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("AWS_")),
            );
        let uploaded = measure("boto3 upload_file", &mut upload).await;
        std::fs::remove_file(&file)?;
        let uploaded = uploaded?;
        let stored = self.stored_bytes(&key, None).await?;
        if stored != bytes {
            bail!("script: the file has {bytes} bytes, the bucket's {key} {stored}");
        }
        Ok(Measured {
            took: saved.took + uploaded.took,
            cpu: saved.cpu + uploaded.cpu,
            peak_kib: saved.peak_kib.max(uploaded.peak_kib),
            bytes,
            steps: format!(
                "  (save {:.2} s, {:.1} MiB; upload {:.2} s, {:.1} MiB)",
                saved.took.as_secs_f64(),
                saved.peak_kib as f64 / 1024.0,
                uploaded.took.as_secs_f64(),
                uploaded.peak_kib as f64 / 1024.0
            ),
        })
    }

    /// snapshot-backup, cold: this binary's `backup-child` with the function's
    /// environment and nothing else.
    async fn function(&self) -> Result<Measured> {
        let mut child = under_time(&self.this_binary);
        child
            .arg("backup-child")
            .env_clear()
            .envs(self.function_env.iter().map(|(k, v)| (k, v)));
        let done = measure("snapshot-backup", &mut child).await?;
        let stored: Value = serde_json::from_str(done.stdout.trim())
            .with_context(|| format!("snapshot-backup printed {:?}", done.stdout))?;
        let (Some(key), Some(bytes)) = (stored["key"].as_str(), stored["bytes"].as_u64()) else {
            bail!("snapshot-backup printed {stored}");
        };
        let in_bucket = self
            .stored_bytes(key, stored["version_id"].as_str())
            .await?;
        if in_bucket != bytes {
            bail!("snapshot-backup recorded {bytes} bytes, the bucket's {key} has {in_bucket}");
        }
        Ok(Measured {
            took: done.took,
            cpu: done.cpu,
            peak_kib: done.peak_kib,
            bytes,
            steps: String::new(),
        })
    }

    async fn stored_bytes(&self, key: &str, version: Option<&str>) -> Result<u64> {
        let head = self
            .s3
            .head_object()
            .bucket(&self.bed.bed.region.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .with_context(|| format!("{key} is not in the bucket"))?;
        Ok(u64::try_from(head.content_length().unwrap_or_default())?)
    }
}

/// `program` under GNU time, whose last line of stderr is the user and system CPU
/// seconds and the peak RSS in KiB.
fn under_time(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%U %S %M"])
        .arg(program)
        .stdin(Stdio::null());
    command
}

/// Runs `command` (from [`under_time`]) to its end. `what` names it in errors: the
/// command's `Debug` would show its environment, tokens included.
async fn measure(what: &str, command: &mut Command) -> Result<Finished> {
    let started = Instant::now();
    let out = command
        .output()
        .await
        .with_context(|| format!("cannot start {what}"))?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, stderr.trim());
    }
    let figures: Vec<f64> = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|figure| figure.parse().ok())
        .collect();
    let [user, system, peak_kib] = figures[..] else {
        bail!("{what}: no CPU times and peak RSS from GNU time in {stderr:?}");
    };
    Ok(Finished {
        took,
        cpu: user + system,
        peak_kib: peak_kib as u64,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
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
async fn backup_child() -> Result<()> {
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
