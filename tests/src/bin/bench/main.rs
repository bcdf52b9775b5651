//! Benchmarks (`cargo xtask bench <name>` builds the workspace and runs this), one module
//! each:
//!
//! - [`lifecycle`]: a joining node through node-lifecycle beside the raw API steps.
//! - [`backup`]: a snapshot brought into S3 by snapshot-backup beside the usual script
//!   and the floor; its ways are run by `backup::ways`.
//! - [`rotation`]: each credential-rotation action beside the raw API calls.
//! - [`measure`]: a child process under GNU time: wall time, CPU time, peak RSS.

mod backup;
mod lifecycle;
mod measure;
mod rotation;

use anyhow::{bail, Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lifecycle") => lifecycle::run(option(&args, "--rounds", 3)?).await,
        Some("backup") => {
            backup::run(
                option(&args, "--size-mb", 100)?,
                option(&args, "--rounds", 3)?,
            )
            .await
        }
        Some("rotation") => rotation::run(option(&args, "--rounds", 3)?).await,
        // Not in the usage: `backup` runs it as snapshot-backup's stand-in.
        Some("backup-child") => backup::child().await,
        _ => bail!("usage: bench lifecycle [--rounds N] | bench backup [--size-mb N] [--rounds N] | bench rotation [--rounds N]"),
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
