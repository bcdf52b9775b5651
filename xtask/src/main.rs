//! `cargo xtask <task>`: the project's tasks.
//!
//! - `test`: installs the tools on first use, then fmt, clippy, every test, cfn-lint and
//!   checkov, with a summary. CI runs exactly this.
//! - `sandbox [--once]`: the product's story on loopback, driven by the functions.
//! - `tools`: only installs the tools.

mod sandbox;
mod test;
mod tools;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test::run(),
        Some("sandbox") => sandbox::run(args.iter().any(|a| a == "--once")),
        Some("tools") => tools::ensure().map(|_| ()),
        _ => bail!("usage: cargo xtask <test | sandbox [--once] | tools>"),
    }
}
