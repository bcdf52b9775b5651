//! A benchmarked child process under GNU time: its wall time, CPU time and peak RSS.

use std::{
    ffi::OsStr,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

/// A child process that ended well.
pub struct Finished {
    pub took: Duration,
    pub cpu: f64,
    pub peak_kib: u64,
    pub stdout: String,
}

/// `program` under GNU time, whose last line of stderr is the user and system CPU
/// seconds and the peak RSS in KiB.
pub fn under_time(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%U %S %M"])
        .arg(program)
        .stdin(Stdio::null());
    command
}

/// Runs `command` (from [`under_time`]) to its end. `what` names it in errors: the
/// command's `Debug` would show its environment, tokens included.
pub async fn measure(what: &str, command: &mut Command) -> Result<Finished> {
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
