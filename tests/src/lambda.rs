//! Function binaries under the Lambda runtime emulator of cargo-lambda.
//!
//! `cargo lambda watch --only-lambda-apis` serves the Lambda APIs: invocations come in on
//! its invoke port and each function fetches them from its runtime API. The functions
//! themselves are the workspace's binaries, started here on their first invocation with
//! the environment Lambda gives them. They are the binaries `cargo build --workspace
//! --bins` builds, with the feature set of the test build (see `tests/Cargo.toml`), so
//! nothing is compiled a second time for the emulator, as `cargo lambda watch` alone
//! would do with its `cargo run --bin <function>`. `cargo lambda invoke` sends them the
//! files in events/. This proves the binary, its configuration from the environment and
//! its event wiring together, as Lambda would run them.
//!
//! A function that exits is started again, as Lambda starts a new execution environment:
//! at once when it had been serving for a while (a crash), on its next invocation when it
//! died at start-up (bad configuration), so that a broken function does not spin. An
//! invocation whose function exits before answering fails at once; the emulator keeps its
//! event queued, and the function's next start takes that event first.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::{free_port, poll_until, process::Managed, repo_root, target_dir, venv};

/// The functions of the workspace that the emulator can run.
pub const FUNCTIONS: [&str; 6] = [
    "credential-rotation",
    "dr-failover",
    "health-probe",
    "node-lifecycle",
    "snapshot-backup",
    "snapshot-restore",
];

/// A function that served this long before it exited crashed; one that exited sooner
/// failed at start-up and waits for its next invocation to be started again.
const SERVED_BEFORE_CRASH: Duration = Duration::from_secs(10);
/// How often the emulator looks for functions that exited.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// How long an invocation may still answer after its function exited.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// The workspace's binary of `function` (`target/debug/<function>`), as
/// [`LambdaEmulator::start`] builds it.
pub fn function_binary(function: &str) -> PathBuf {
    target_dir().join("debug").join(function)
}

/// A running emulator, serving every function of the workspace.
pub struct LambdaEmulator {
    /// Its invoke port on 127.0.0.1.
    pub port: u16,
    functions: Arc<Functions>,
    supervisor: tokio::task::JoinHandle<()>,
    process: Managed,
    _dir: TempDir,
}

/// What an invocation returned.
#[derive(Debug)]
pub enum Invocation {
    /// The function's JSON result.
    Ok(Value),
    /// The function failed; the text holds `errorType` and `errorMessage`.
    Err(String),
}

/// The function processes of one emulator.
struct Functions {
    /// The emulator's port, for each function's runtime API.
    port: u16,
    /// What every function gets besides Lambda's own variables.
    env: Vec<(String, String)>,
    /// Where each function's log is, `<function>.log`.
    dir: PathBuf,
    running: Mutex<BTreeMap<String, Instance>>,
}

/// One function's process, and how many times it was started.
struct Instance {
    process: Managed,
    started: Instant,
    /// When its exit was first seen (within [`SUPERVISE_EVERY`] of it).
    ended: Option<Instant>,
    starts: u32,
}

impl Instance {
    /// How the process ended and how long it ran; `None` while it runs.
    fn ended(&mut self) -> Option<(ExitStatus, Duration)> {
        let status = self.process.exit_status()?;
        let ended = *self.ended.get_or_insert_with(Instant::now);
        Some((status, ended - self.started))
    }
}

fn cargo_lambda() -> Command {
    let mut command = Command::new("cargo");
    let path = std::env::var("PATH").unwrap_or_default();
    command
        .arg("lambda")
        .env("PATH", format!("{}:{path}", venv().join("bin").display()))
        .current_dir(repo_root());
    command
}

/// Builds the workspace's binaries as `cargo xtask` does: fresh after `cargo xtask test`
/// (a second or two), and a test run alone still runs the current code.
pub async fn build_functions() -> Result<()> {
    let out = tokio::process::Command::new("cargo")
        .args(["build", "--quiet", "--workspace", "--bins"])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build --workspace --bins failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl LambdaEmulator {
    /// Builds the functions, starts the emulator; every function it runs gets `env`.
    pub async fn start(env: &[(String, String)]) -> Result<Self> {
        build_functions().await?;
        let dir = tempfile::Builder::new().prefix("lambda-").tempdir()?;
        let port = free_port()?;
        let mut command = cargo_lambda();
        // No `--timeout`: it would also end a function's long poll for its next event
        // after that long, and the function would exit (the invocation's own timeout is
        // in `invoke`).
        command.args([
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ]);
        let process = Managed::spawn(
            "cargo lambda watch",
            command,
            &dir.path().join("emulator.log"),
        )?;
        let functions = Arc::new(Functions {
            port,
            env: env.to_vec(),
            dir: dir.path().to_path_buf(),
            running: Mutex::new(BTreeMap::new()),
        });
        let supervisor = tokio::spawn(Arc::clone(&functions).supervise());
        let emulator = Self {
            port,
            functions,
            supervisor,
            process,
            _dir: dir,
        };
        poll_until(
            "the lambda emulator to listen",
            Duration::from_secs(60),
            || async {
                Ok(std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| ()))
            },
        )
        .await?;
        Ok(emulator)
    }

    /// Starts `function`'s process (the emulator runs only the Lambda APIs), so that an
    /// invocation made by other means than [`invoke`](Self::invoke) (an SDK's) finds it.
    pub fn serve(&self, function: &str) -> Result<()> {
        self.functions.ensure_started(function).map(|_| ())
    }

    /// Invokes `function` with `events/<file>`; waits at most `timeout`.
    pub async fn invoke(
        &mut self,
        function: &str,
        event_file: &str,
        timeout: Duration,
    ) -> Result<Invocation> {
        let data = repo_root().join("events").join(event_file);
        self.invoke_path(function, &data, timeout).await
    }

    /// Invokes `function` with the JSON file at `path`.
    pub async fn invoke_path(
        &mut self,
        function: &str,
        path: &Path,
        timeout: Duration,
    ) -> Result<Invocation> {
        if !self.process.is_running() {
            bail!("the lambda emulator has exited");
        }
        let starts = self.functions.ensure_started(function)?;
        let mut command = cargo_lambda();
        command
            .args([
                "invoke",
                function,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &self.port.to_string(),
                "--output-format",
                "json",
            ])
            .arg("--data-file")
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()?;
        let answer = child.wait_with_output();
        tokio::pin!(answer);
        let deadline = tokio::time::Instant::now() + timeout;
        let out = loop {
            tokio::select! {
                out = &mut answer => break out?,
                _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{function} did not answer within {timeout:?}; its output:\n{}",
                    self.output()
                );
            }
            if !self.functions.serving(function, starts) {
                match tokio::time::timeout(ANSWER_GRACE, &mut answer).await {
                    Ok(out) => break out?,
                    Err(_) => bail!(
                        "{function} exited during the invocation; its output:\n{}",
                        self.output()
                    ),
                }
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            let value = serde_json::from_str(&stdout)
                .with_context(|| format!("{function} returned non-JSON: {stdout}"))?;
            return Ok(Invocation::Ok(value));
        }
        Ok(Invocation::Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }

    /// Everything the emulator and the functions printed so far (for leak checks): the
    /// emulator's log, then each function's, every run of it.
    pub fn output(&self) -> String {
        let mut text = std::fs::read_to_string(&self.process.log).unwrap_or_default();
        for function in FUNCTIONS {
            text.push_str(
                &std::fs::read_to_string(self.functions.log(function)).unwrap_or_default(),
            );
        }
        text
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        self.supervisor.abort();
        // Each function is killed as its handle drops, its log kept.
        self.functions.lock().clear();
    }
}

impl Functions {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Instance>> {
        // A panic while the map was held leaves it whole: every change is one insert.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.log"))
    }

    /// Starts `function`'s binary with the variables Lambda (and cargo-lambda) give a
    /// function, its output appended to its log.
    fn spawn(&self, function: &str) -> Result<Managed> {
        if !FUNCTIONS.contains(&function) {
            bail!("no function {function}; the workspace has {FUNCTIONS:?}");
        }
        let mut command = Command::new(function_binary(function));
        command
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt/{function}", self.port),
            );
        Managed::spawn(function, command, &self.log(function))
    }

    /// Starts `function` unless it runs; returns how many times it has been started.
    fn ensure_started(&self, function: &str) -> Result<u32> {
        let mut running = self.lock();
        if let Some(instance) = running.get_mut(function) {
            match instance.ended() {
                None => return Ok(instance.starts),
                Some((status, ran)) => self.append(
                    function,
                    &format!(
                        "{function} exited ({status}) after {:.1} s; starting it again",
                        ran.as_secs_f64()
                    ),
                ),
            }
        }
        let starts = running.get(function).map_or(0, |i| i.starts) + 1;
        let process = self.spawn(function)?;
        running.insert(
            function.to_owned(),
            Instance {
                process,
                started: Instant::now(),
                ended: None,
                starts,
            },
        );
        Ok(starts)
    }

    /// Whether the process started `starts`-th is still `function`'s and runs.
    fn serving(&self, function: &str, starts: u32) -> bool {
        self.lock()
            .get_mut(function)
            .is_some_and(|i| i.starts == starts && i.ended().is_none())
    }

    /// Starts again every function that crashed after it had served.
    async fn supervise(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SUPERVISE_EVERY).await;
            let crashed: Vec<String> = self
                .lock()
                .iter_mut()
                .filter_map(|(name, i)| match i.ended() {
                    Some((_, ran)) if ran >= SERVED_BEFORE_CRASH => Some(name.clone()),
                    _ => None,
                })
                .collect();
            for function in crashed {
                if let Err(e) = self.ensure_started(&function) {
                    self.append(&function, &format!("cannot start it again: {e:#}"));
                }
            }
        }
    }

    /// Adds a line of the test bed's to `function`'s log, so that its output tells its
    /// runs apart.
    fn append(&self, function: &str, line: &str) {
        if let Ok(mut log) = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log(function))
        {
            let _ = writeln!(log, "[testbed] {line}");
        }
    }
}
