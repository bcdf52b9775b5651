//! A benchmarked child process under GNU time: its wall time, CPU time and peak RSS; and
//! the median every table reports.

use std::{
    ffi::OsStr,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

/// The build measured: the functions ship optimised, `--release` measures that.
pub const BUILD: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

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

/// The median of `figures` (the upper one of an even count). There is at least one.
pub fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

/// Prints the head of the table of goals; the row printer it returns takes what a goal
/// asks, what was measured, and whether it was met.
pub fn goals() -> impl Fn(&str, String, bool) {
    println!();
    println!("| goal | measured | result |");
    println!("|---|---|---|");
    |what, measured, met| {
        let result = if met { "goal met" } else { "goal missed" };
        println!("| {what} | {measured} | {result} |");
    }
}
