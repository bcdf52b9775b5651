//! Benchmarks (`cargo xtask bench <name>` builds the workspace and runs this), one module
//! each:
//!
//! - [`lifecycle`]: a joining node through node-lifecycle beside the raw API steps.
//! - [`backup`]: a snapshot brought into S3 by snapshot-backup beside the usual script
//!   and the floor; its ways are run by `backup::ways`.
//! - [`rotation`]: each credential-rotation action beside the raw API calls.
//! - [`failover`]: dr-failover from the alarm to the DR cluster serving, by phase, beside
//!   the raw API steps of a restore into a standby; its standby warm, or with
//!   `--pilot-light` a group at 0, `--reused` one used once before (rebuilt).
//! - [`measure`]: a child process under GNU time: wall time, CPU time, peak RSS; medians.
//!
//! With `RUST_LOG` set (for example `RUST_LOG=shared=info`), the functions' log lines go
//! to stderr with their times: where a step spends its time.

mod backup;
mod failover;
mod lifecycle;
mod measure;
mod rotation;

use anyhow::{bail, ensure, Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Every table reports medians: at least one round.
    let rounds = option(&args, "--rounds", 3)?;
    ensure!(rounds >= 1, "--rounds needs at least 1");
    match args.first().map(String::as_str) {
        Some("lifecycle") => lifecycle::run(rounds).await,
        Some("backup") => backup::run(option(&args, "--size-mb", 100)?, rounds).await,
        Some("rotation") => rotation::run(rounds).await,
        Some("failover") => {
            let standby = if args.iter().any(|a| a == "--pilot-light") {
                testbed::dr::Standby::PilotLight
            } else {
                testbed::dr::Standby::Warm
            };
            let reused = args.iter().any(|a| a == "--reused");
            ensure!(
                !reused || standby == testbed::dr::Standby::PilotLight,
                "--reused is a pilot light's: add --pilot-light"
            );
            failover::run(option(&args, "--size-mb", 100)?, rounds, standby, reused).await
        }
        // Not in the usage: `backup` runs it as snapshot-backup's stand-in.
        Some("backup-child") => backup::child().await,
        _ => bail!("usage: bench lifecycle [--rounds N] | bench backup [--size-mb N] [--rounds N] | bench rotation [--rounds N] | bench failover [--size-mb N] [--rounds N] [--pilot-light [--reused]]"),
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
