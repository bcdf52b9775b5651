//! The real-server test bed that integration tests share.
//!
//! - [`openbao`]: OpenBao Raft clusters on loopback with TLS from a per-run CA, Shamir or
//!   transit auto-unseal, and raw-API helpers to set up preconditions.
//! - [`moto`]: moto server as AWS (every region at once), started through
//!   `tests/moto_server.py`, which adds the lifecycle actions moto lacks; fixtures for
//!   buckets, the table, SSM, KMS, and an Auto Scaling group whose instances get loopback
//!   private IPs, where their OpenBao nodes listen; a Route 53 hosted zone and an SNS
//!   topic, with what was published to it.
//! - [`dr`]: a primary with its DR region and a standby, warm or pilot light (with the
//!   launcher that brings up its raised group), and dr-failover for them.
//! - [`postgres`]: a throw-away PostgreSQL server.
//! - [`lambda`]: the function binaries under cargo-lambda's Lambda runtime emulator,
//!   invoked with events/ files.
//! - [`tls`]: the per-run CA and each node's certificate.
//! - [`recorder`]: a listener that records every connection and forwards it.
//!
//! Every server listens on loopback (a node of an Auto Scaling group on its instance's
//! private IP and the cluster's port) and keeps its data in a temp dir; every
//! process is ended when its handle drops (panics included) and its log is printed when
//! the test failed. moto is shared: `cargo xtask test` starts one for the whole run and
//! passes `TESTBED_MOTO_URL`; without it, each test process starts its own once.

pub mod dr;
pub mod lambda;
pub mod lifecycle;
pub mod moto;
pub mod openbao;
pub mod postgres;
mod process;
pub mod proxy;
pub mod recorder;
pub mod snapshots;
pub mod tls;

use std::{
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target dir: `CARGO_TARGET_DIR`, else `target/` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| repo_root().join(dir))
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The Python virtual environment that `cargo xtask` installs the tools into.
pub fn venv() -> PathBuf {
    std::env::var_os("TESTBED_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/venv"))
}

/// A free TCP port on 127.0.0.1 for a server to take, never handed out twice while the
/// process that asked for it lives.
///
/// A server may bind its port long after it was chosen (OpenBao binds its cluster port only
/// once unsealed), so "bindable now" is not enough: ports come from below the kernel's
/// ephemeral range (outgoing connections never take them), and each is reserved by a file
/// naming the reserving process in a directory every test process shares. A file whose
/// process has ended is stale and removed.
pub fn free_port() -> Result<u16> {
    const PORTS: std::ops::Range<u16> = 20_000..32_000;
    let dir = std::env::temp_dir().join("testbed-ports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let me = std::process::id();
    for _ in 0..2_000 {
        let port = fastrand::u16(PORTS);
        let claim = dir.join(port.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(mut file) => {
                use std::io::Write;
                write!(file, "{me}")?;
                if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                    return Ok(port);
                }
                // Someone outside the test bed has it: keep the claim so no one tries again.
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&claim).unwrap_or_default();
                let alive = owner
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|pid| pid == me || Path::new(&format!("/proc/{pid}")).exists());
                if !alive && !owner.is_empty() {
                    let _ = std::fs::remove_file(&claim);
                }
            }
            Err(e) => return Err(e).with_context(|| format!("claiming {}", claim.display())),
        }
    }
    bail!("no free port in {PORTS:?} after 2000 tries")
}

/// A name no other test or run uses: `<prefix>-<8 hex>`, lower case.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:08x}", fastrand::u32(..))
}

/// Polls `probe` every 100 ms until it returns `Ok(Some(value))` or `timeout` passes.
/// The error names what was awaited and the last thing seen.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a command to completion and returns its stdout; the error holds its stderr.
pub fn run(command: &mut std::process::Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Panics if any of `secrets` appears in any of `texts` (logs, outcomes, errors), naming
/// the start of the text it leaked into, never the secret.
pub fn assert_no_secret(secrets: &[String], texts: &[&str]) {
    assert!(!secrets.is_empty(), "there are secrets to look for");
    for text in texts {
        assert!(
            shared::testing::first_found(text, secrets).is_none(),
            "a secret leaked into: {}",
            &text[..text.len().min(200)]
        );
    }
}
