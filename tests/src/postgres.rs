//! A throw-away PostgreSQL server on a free loopback port, data in a temp dir.

use std::{os::unix::process::CommandExt, path::PathBuf, process::Command, time::Duration};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::{free_port, poll_until, process::Managed, run};

/// A running PostgreSQL with a superuser `postgres` whose password is `password`.
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The superuser's password.
    pub password: String,
    bin: PathBuf,
    dir: TempDir,
    _process: Managed,
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed; `cargo xtask test` installs it with apt-get")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no PostgreSQL server binaries under /usr/lib/postgresql")
}

/// PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
fn server_uid() -> Result<Option<u32>> {
    let is_root = run(Command::new("id").arg("-u"))?.trim() == "0";
    if !is_root {
        return Ok(None);
    }
    let uid = run(Command::new("id").args(["-u", "postgres"]))
        .context("running as root needs the postgres user")?;
    Ok(Some(uid.trim().parse()?))
}

impl Postgres {
    /// initdb, start, and wait until it accepts connections.
    pub async fn start() -> Result<Self> {
        let bin = bin_dir()?;
        let uid = server_uid()?;
        let dir = tempfile::Builder::new().prefix("pg-").tempdir()?;
        let password = "password".to_owned();
        std::fs::write(dir.path().join("pw"), &password)?;
        if let Some(uid) = uid {
            run(Command::new("chown")
                .arg("-R")
                .arg(uid.to_string())
                .arg(dir.path()))?;
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()));
        if let Some(uid) = uid {
            initdb.uid(uid);
        }
        run(&mut initdb)?;
        let port = free_port()?;
        let mut server = Command::new(bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]);
        if let Some(uid) = uid {
            server.uid(uid);
        }
        let log = dir.path().join("postgres.log");
        if let Some(uid) = uid {
            std::fs::write(&log, "")?;
            run(Command::new("chown").arg(uid.to_string()).arg(&log))?;
        }
        let process = Managed::spawn("postgres", server, &log)?;
        let pg = Self {
            port,
            password,
            bin,

            dir,
            _process: process,
        };
        poll_until(
            "postgres to accept connections",
            Duration::from_secs(30),
            || async {
                Ok(pg
                    .query("select 1")
                    .ok()
                    .filter(|out| out.trim() == "1")
                    .map(|_| ()))
            },
        )
        .await?;
        Ok(pg)
    }

    /// Runs one SQL statement with psql as the superuser; returns the unaligned output.
    pub fn query(&self, sql: &str) -> Result<String> {
        self.query_as("postgres", &self.password, sql)
    }

    /// Runs one SQL statement with psql as `user` with `password` (a password login over
    /// TCP); the error holds psql's message, never the password.
    pub fn query_as(&self, user: &str, password: &str, sql: &str) -> Result<String> {
        let psql = self.bin.join("psql");
        let out = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-tAc",
                sql,
            ])
            .env("PGPASSWORD", password)
            .output()?;
        if !out.status.success() {
            bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A connection URL for the superuser.
    pub fn url(&self) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// Mounts OpenBao's database engine at `database` (through node 0 of `bao`, with
    /// `root`) and configures one connection per `(connection, admin)` to this server,
    /// each admin a new PostgreSQL role that may create roles, and a dynamic role
    /// `<connection>-app` per connection. Returns the admins' passwords, in order.
    pub async fn configure_engine(
        &self,
        bao: &crate::openbao::BaoCluster,
        root: &str,
        connections: &[(&str, &str)],
    ) -> Result<Vec<String>> {
        let api = |path: String, body: serde_json::Value| async move {
            let (status, answer) = bao
                .api(0, reqwest::Method::POST, &path, Some(root), Some(body))
                .await?;
            if status >= 300 {
                bail!("{path}: {status} {answer}");
            }
            Ok(())
        };
        api(
            "sys/mounts/database".into(),
            serde_json::json!({"type": "database"}),
        )
        .await?;
        let url = format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        );
        let mut passwords = Vec::new();
        for (connection, admin) in connections {
            let password = format!("pw-{}", fastrand::u64(..));
            self.query(&format!(
                "CREATE ROLE {admin} WITH LOGIN CREATEROLE PASSWORD '{password}'"
            ))?;
            api(
                format!("database/config/{connection}"),
                serde_json::json!({"plugin_name": "postgresql-database-plugin",
                    "connection_url": url, "username": admin, "password": password,
                    "allowed_roles": "*", "verify_connection": true}),
            )
            .await?;
            api(
                format!("database/roles/{connection}-app"),
                serde_json::json!({"db_name": connection, "default_ttl": "5m",
                    "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}),
            )
            .await?;
            passwords.push(password);
        }
        Ok(passwords)
    }

    /// Where its data and log are.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
