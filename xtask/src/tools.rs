//! Installs what the test bed needs, on first use: the Python tools into a git-ignored
//! venv inside the repo (re-installed when xtask/requirements.txt changes), and
//! PostgreSQL from Debian's packages when it is missing.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// Paths of the installed tools.
pub struct Tools {
    /// The venv's bin/ (cargo-lambda, cfn-lint, checkov, python).
    pub bin: PathBuf,
    /// clippy's rustc driver, for linting while building.
    pub clippy_driver: PathBuf,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// Cargo's target dir: `CARGO_TARGET_DIR`, else `target/` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

pub fn ensure() -> Result<Tools> {
    let root = repo_root();
    let venv = root.join(".tools/venv");
    let requirements = std::fs::read_to_string(root.join("xtask/requirements.txt"))?;
    let stamp = venv.join(".installed-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(requirements.as_str()) {
        eprintln!("xtask: installing the test bed's Python tools into .tools/venv (about 2 minutes, once)");
        if !venv.join("bin/python").exists() {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            status(Command::new(&python).args(["-m", "venv"]).arg(&venv))
                .context("cannot create the venv: Python 3.11 with the venv module is needed")?;
        }
        let pip = venv.join("bin/pip");
        status(
            Command::new(&pip)
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(root.join("xtask/requirements.txt")),
        )?;
        status(Command::new(&pip).args(["check", "--disable-pip-version-check"]))?;
        std::fs::write(&stamp, &requirements)?;
    }
    ensure_postgres()?;
    Ok(Tools {
        bin: venv.join("bin"),
        clippy_driver: clippy_driver()?,
    })
}

/// The toolchain's `clippy-driver` (rustup's proxy resolves it on every call otherwise).
fn clippy_driver() -> Result<PathBuf> {
    let driver = Command::new("rustup")
        .args(["which", "clippy-driver"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| PathBuf::from("clippy-driver"));
    let works = Command::new(&driver)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    anyhow::ensure!(
        works,
        "clippy is needed (`rustup component add clippy`): {} does not run",
        driver.display()
    );
    Ok(driver)
}

fn postgres_installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("bin/postgres").exists())
        })
        .unwrap_or(false)
}

fn ensure_postgres() -> Result<()> {
    if postgres_installed() {
        return Ok(());
    }
    eprintln!("xtask: installing PostgreSQL with apt-get");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        status(&mut command)
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "postgresql"])
        .context("cannot install PostgreSQL; install the Debian package postgresql by hand")?;
    if !postgres_installed() {
        bail!("apt-get installed postgresql, but no server binary is under /usr/lib/postgresql");
    }
    Ok(())
}

pub fn status(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// The moto launcher, started once for a whole test run; killed on drop (and it exits by
/// itself if this process dies).
pub struct Moto {
    pub url: String,
    child: std::process::Child,
    // Kept open so that a later line on moto's stdout cannot hit a broken pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Moto {
    /// Starts moto with its log in `log`.
    pub fn start(bin: &Path, log: &Path) -> Result<Self> {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(bin.join("python"))
            .arg(repo_root().join("tests/moto_server.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("cannot start tests/moto_server.py")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        match line.trim().strip_prefix("moto ready ") {
            Some(url) => Ok(Self {
                url: url.to_owned(),
                child,
                _stdout: stdout,
            }),
            None => {
                let _ = child.kill();
                bail!("moto did not start: {line:?}; its log: {}", log.display())
            }
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
