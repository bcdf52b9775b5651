//! How each way of `bench backup` is run and checked.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use shared::ids::NodeAddr;
use testbed::{openbao::bao_binary, snapshots::SnapshotBed, venv};

use super::{Measured, Way};
use crate::measure::{measure, under_time, Finished};

/// The upload of the script and of the store floor: what `aws s3 cp` does, through the
/// same transfer manager (8 MiB parts, 10 at a time).
const UPLOAD_PY: &str = "\
import sys, boto3
from botocore.config import Config
path, bucket, key, kms = sys.argv[1:]
s3 = boto3.client('s3', config=Config(s3={'addressing_style': 'path'}))
s3.upload_file(path, bucket, key, ExtraArgs={'ServerSideEncryption': 'aws:kms', 'SSEKMSKeyId': kms})
";

/// What the four ways need, prepared once.
pub struct Ways<'a> {
    bed: &'a SnapshotBed,
    node: NodeAddr,
    /// `X-Vault-Token: <root>` for curl's `-H @file` (mode 0600), so that the token is on
    /// no command line.
    token_header: tempfile::NamedTempFile,
    scratch: tempfile::TempDir,
    /// The snapshot the store floor uploads, saved once before the rounds.
    snapshot_file: PathBuf,
    s3: aws_sdk_s3::Client,
    bao: PathBuf,
    /// A copy of this binary: the shared target dir may get a newer one mid-run.
    this_binary: PathBuf,
    /// The functions' environment without the DR copy, and a retention that deletes
    /// none of the bench's snapshots.
    function_env: Vec<(String, String)>,
}

impl<'a> Ways<'a> {
    pub async fn new(bed: &'a SnapshotBed) -> Result<Self> {
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
        let snapshot_file = scratch.path().join("store-floor.snap");
        // /proc/self/exe still reads this process's binary after its path was rebuilt.
        std::fs::copy("/proc/self/exe", &this_binary).context("cannot copy this binary")?;
        Ok(Self {
            bed,
            node: bed.active().await?,
            token_header,
            scratch,
            snapshot_file,
            s3: SnapshotBed::s3(&bed.bed.region),
            bao: bao_binary()?,
            this_binary,
            function_env,
        })
    }

    /// Runs `way` and checks that the bucket holds one more version after it (none more
    /// after the read floor).
    pub async fn run(&self, way: Way, round: usize) -> Result<Measured> {
        let before = SnapshotBed::versions(&self.bed.bed.region).await?.len();
        let measured = match way {
            Way::ReadFloor => self.read_floor().await?,
            Way::StoreFloor => self.store_floor(round).await?,
            Way::Script => self.script(round).await?,
            Way::Function => self.function().await?,
        };
        let after = SnapshotBed::versions(&self.bed.bed.region).await?.len();
        let stored = usize::from(way.stores());
        if after != before + stored {
            bail!(
                "{}: the bucket went from {before} to {after} versions; expected {stored} more",
                way.label()
            );
        }
        Ok(measured)
    }

    /// Saves the snapshot into the file the store floor uploads (untimed); returns its
    /// size.
    pub async fn save_snapshot(&self) -> Result<u64> {
        let (_, bytes) = self.curl(&self.snapshot_file).await?;
        if std::fs::metadata(&self.snapshot_file)?.len() != bytes {
            bail!("curl read {bytes} bytes, but its file holds another size");
        }
        Ok(bytes)
    }

    /// curl reads the snapshot and throws it away: what any way must at least spend on
    /// reading.
    async fn read_floor(&self) -> Result<Measured> {
        let (done, bytes) = self.curl(Path::new("/dev/null")).await?;
        Ok(Measured {
            took: done.took,
            cpu: done.cpu,
            peak_kib: done.peak_kib,
            bytes,
            steps: String::new(),
        })
    }

    /// boto3 uploads the saved snapshot: what any way must at least spend on storing.
    async fn store_floor(&self, round: usize) -> Result<Measured> {
        let key = format!("bench-store/{}/round-{round}.snap", self.bed.bed.cluster);
        let done = self.upload(&self.snapshot_file, &key).await?;
        let bytes = std::fs::metadata(&self.snapshot_file)?.len();
        let stored = self.stored_bytes(&key, None).await?;
        if stored != bytes {
            bail!("store floor: the file has {bytes} bytes, the bucket's {key} {stored}");
        }
        Ok(Measured {
            took: done.took,
            cpu: done.cpu,
            peak_kib: done.peak_kib,
            bytes,
            steps: String::new(),
        })
    }

    /// curl reads the snapshot into `output`; returns how it went and the bytes read.
    async fn curl(&self, output: &Path) -> Result<(Finished, u64)> {
        let mut curl = under_time("curl");
        curl.args(["-sS", "--fail", "--cacert"])
            .arg(&self.bed.bed.bao.ca.ca_file)
            .arg("-H")
            .arg(format!("@{}", self.token_header.path().display()))
            .arg("-o")
            .arg(output)
            .args(["-w", "%{size_download}"])
            .arg(format!("{}/v1/sys/storage/raft/snapshot", self.node));
        let done = measure("curl", &mut curl).await?;
        let bytes = done.stdout.trim().parse().context("curl's size_download")?;
        Ok((done, bytes))
    }

    /// boto3's `upload_file` of `file` to `key`, encrypted as the functions encrypt.
    async fn upload(&self, file: &Path, key: &str) -> Result<Finished> {
        let region = &self.bed.bed.region;
        let mut upload = under_time(venv().join("bin/python"));
        upload
            .arg("-c")
            .arg(UPLOAD_PY)
            .arg(file)
            .args([&region.bucket, key, &region.kms_key])
            .envs(
                self.bed
                    .env()
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("AWS_")),
            );
        measure("boto3 upload_file", &mut upload).await
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
        let key = format!("bench-script/{}/round-{round}.snap", self.bed.bed.cluster);
        let uploaded = self.upload(&file, &key).await;
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
