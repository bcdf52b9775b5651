//! `cargo xtask test`: every check the project has, in one command, with a summary.

use std::{
    io::Write,
    process::{Command, Output},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::tools::{self, repo_root};

struct Step {
    name: &'static str,
    passed: bool,
    took: Duration,
}

fn step(steps: &mut Vec<Step>, name: &'static str, command: &mut Command) {
    eprintln!("\nxtask: == {name} ==");
    let start = Instant::now();
    let passed = command
        .current_dir(repo_root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    steps.push(Step {
        name,
        passed,
        took: start.elapsed(),
    });
}

/// A check that runs beside the build (the template linters: a few seconds of Python
/// each, while the build often waits on one crate). Its output is shown when it is
/// awaited, so it does not interleave with the build's.
struct Beside {
    name: &'static str,
    run: JoinHandle<(std::io::Result<Output>, Duration)>,
}

fn beside(name: &'static str, mut command: Command) -> Beside {
    command.current_dir(repo_root());
    let run = std::thread::spawn(move || {
        let start = Instant::now();
        (command.output(), start.elapsed())
    });
    Beside { name, run }
}

fn await_beside(steps: &mut Vec<Step>, check: Beside) {
    eprintln!("\nxtask: == {} ==", check.name);
    let (passed, took) = match check.run.join() {
        Ok((Ok(out), took)) => {
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            (out.status.success(), took)
        }
        Ok((Err(e), took)) => {
            eprintln!("xtask: could not run {}: {e}", check.name);
            (false, took)
        }
        Err(_) => (false, Duration::ZERO),
    };
    steps.push(Step {
        name: check.name,
        passed,
        took,
    });
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn run() -> Result<()> {
    let start = Instant::now();
    let tools = tools::ensure()?;
    let setup = start.elapsed();
    let mut steps = Vec::new();
    step(
        &mut steps,
        "rustfmt",
        Command::new("cargo").args(["fmt", "--all", "--check"]),
    );
    let mut cfn_lint = Command::new(tools.bin.join("cfn-lint"));
    cfn_lint.arg("infra/*.yaml");
    let cfn_lint = beside("cfn-lint infra/", cfn_lint);
    let mut checkov = Command::new(tools.bin.join("checkov"));
    checkov.args([
        "--quiet",
        "--compact",
        "--framework",
        "cloudformation",
        "-f",
        "infra/template.yaml",
        "--config-file",
        "infra/.checkov.yaml",
    ]);
    let checkov = beside("checkov infra/", checkov);
    // One build, linted as it compiles: clippy's driver stands in for rustc on the
    // workspace's own crates (as `cargo clippy` does) while dependencies are compiled
    // once, for the binaries and the tests alike. `cargo clippy` would check every
    // dependency a second time. The emulator tests run the function binaries this
    // builds, and the test step below finds everything fresh.
    let lint = |command: &mut Command| {
        command
            .env("RUSTC_WORKSPACE_WRAPPER", &tools.clippy_driver)
            .env(
                "CLIPPY_ARGS",
                "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
            );
    };
    let mut build = Command::new("cargo");
    build.args(["build", "--quiet", "--workspace", "--all-targets"]);
    lint(&mut build);
    step(&mut steps, "build and clippy", &mut build);
    await_beside(&mut steps, cfn_lint);
    await_beside(&mut steps, checkov);

    // One moto for every test process; tests keep apart through unique names.
    let target = tools::target_dir();
    std::fs::create_dir_all(&target)?;
    // Each run keeps the logs of the servers its tests started; start from none.
    let _ = std::fs::remove_dir_all(target.join("testbed-logs"));
    let moto_log: std::path::PathBuf = target.join("moto-test.log");
    let moto = tools::Moto::start(&tools.bin, &moto_log)?;
    let mut tests = Command::new("cargo");
    if has_nextest() {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    tests.env("TESTBED_MOTO_URL", &moto.url);
    lint(&mut tests);
    step(&mut steps, "unit and integration tests", &mut tests);
    drop(moto);

    eprintln!("\nxtask: summary");
    eprintln!(
        "  {:<28} {:>9}  ok",
        "tool set-up",
        format!("{:.0?}", setup)
    );
    for s in &steps {
        eprintln!(
            "  {:<28} {:>9}  {}",
            s.name,
            format!("{:.0?}", s.took),
            if s.passed { "ok" } else { "FAILED" }
        );
    }
    eprintln!(
        "  {:<28} {:>9}",
        "total",
        format!("{:.0?}", start.elapsed())
    );
    let failed = steps.iter().filter(|s| !s.passed).count();
    println!("steps: {} passed, {} failed", steps.len() - failed, failed);
    if failed > 0 {
        eprintln!("moto's log of this run: {}", moto_log.display());
        std::process::exit(1);
    }
    Ok(())
}
