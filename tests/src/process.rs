//! A child process that is killed when its handle drops, with its output in a log file
//! that is printed when the test panics, and kept under `target/testbed-logs/` in every
//! case (a test that fails by returning `Err` drops its servers before it is reported).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
};

use anyhow::{Context, Result};

pub(crate) struct Managed {
    pub(crate) name: String,
    pub(crate) child: Option<Child>,
    pub(crate) log: PathBuf,
}

impl Managed {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name}: {command:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Kills the process (SIGKILL, like a lost instance) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How the process ended, once it has; `None` while it runs (or after [`Self::kill`]).
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// Where the logs of every process the test bed started are kept.
pub fn logs_dir() -> PathBuf {
    crate::target_dir().join("testbed-logs")
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.kill();
        let kept = logs_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if std::fs::create_dir_all(&kept).is_ok() {
            let _ = std::fs::copy(
                &self.log,
                kept.join(format!("{stamp}-{}-{name}.log", std::process::id())),
            );
        }
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!(
                "----- last lines of {} ({}) -----",
                self.name,
                self.log.display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
