//! `cargo xtask <task>`: the project's tasks.
//!
//! - `test`: installs the tools on first use, then fmt, cfn-lint, checkov, clippy and
//!   every test, with a summary. CI runs exactly this.
//! - `sandbox [--once]`: the product's story on loopback, driven by the functions.
//! - `bench <name> [options]`: a benchmark beside its baseline, measured in the same run.
//! - `tools`: only installs the tools.

mod test;
mod tools;

use std::process::Command;

use anyhow::{bail, Result};

use crate::tools::{repo_root, status};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test::run(),
        Some("sandbox") => run_testbed_binary("sandbox", &args[1..]),
        Some("bench") => run_testbed_binary("bench", &args[1..]),
        Some("tools") => tools::ensure().map(|_| ()),
        _ => bail!(
            "usage: cargo xtask <test | sandbox [--once] | bench lifecycle [--rounds N] | bench backup [--size-mb N] [--rounds N] [--release] | bench rotation [--rounds N] | bench failover [--size-mb N] [--rounds N] [--pilot-light [--reused]] [--release] | tools>"
        ),
    }
}

/// Builds the whole workspace (one feature set, so nothing is built twice) and runs one
/// of the test bed's binaries (`sandbox`, `bench`). With `--release` (for a bench: the
/// functions ship as release builds), only that binary is built, optimised, and run.
fn run_testbed_binary(binary: &str, args: &[String]) -> Result<()> {
    tools::ensure()?;
    let release = args.iter().any(|a| a == "--release");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--release").collect();
    let mut build = Command::new("cargo");
    if release {
        eprintln!("xtask: building {binary} (release)");
        build.args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "testbed",
            "--bin",
            binary,
        ]);
    } else {
        eprintln!("xtask: building the workspace");
        build.args(["build", "--quiet", "--workspace", "--bins"]);
    }
    status(build.current_dir(repo_root()))?;
    let target = tools::target_dir();
    status(
        Command::new(
            target
                .join(if release { "release" } else { "debug" })
                .join(binary),
        )
        .args(args)
        .current_dir(repo_root()),
    )
}
