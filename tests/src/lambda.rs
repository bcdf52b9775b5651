//! Function binaries under the Lambda runtime emulator of cargo-lambda.
//!
//! `cargo lambda watch` builds and starts a function on its first invocation (one build of
//! the binary, sharing the workspace's target dir), and `cargo lambda invoke` sends it a
//! file from events/. This proves the binary, its configuration from the environment and
//! its event wiring together, as Lambda would run them.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::{free_port, poll_until, process::Managed, repo_root, venv};

/// A running emulator, serving every function of the workspace.
pub struct LambdaEmulator {
    /// Its invoke port on 127.0.0.1.
    pub port: u16,
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

fn cargo_lambda() -> Command {
    let mut command = Command::new("cargo");
    let path = std::env::var("PATH").unwrap_or_default();
    command
        .arg("lambda")
        .env("PATH", format!("{}:{path}", venv().join("bin").display()))
        .current_dir(repo_root());
    command
}

impl LambdaEmulator {
    /// Starts the emulator; every function it runs gets `env`.
    pub async fn start(env: &[(String, String)]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("lambda-").tempdir()?;
        let env_file = dir.path().join("function.env");
        let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        std::fs::write(&env_file, lines.join("\n"))?;
        let port = free_port()?;
        let mut command = cargo_lambda();
        command
            .args([
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
                "--timeout",
                "900",
            ])
            .arg("--env-file")
            .arg(&env_file);
        let process = Managed::spawn(
            "cargo lambda watch",
            command,
            &dir.path().join("emulator.log"),
        )?;
        let emulator = Self {
            port,
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

    /// Invokes `function` with `events/<file>`; waits at most `timeout` (the first call
    /// includes building the binary).
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
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .with_context(|| {
                format!(
                    "{function} did not answer within {timeout:?}; emulator log:\n{}",
                    self.output()
                )
            })??;
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

    /// Everything the emulator and the functions printed so far (for leak checks).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }
}
