//! A throwaway PostgreSQL cluster for tests (feature `testing`): one per
//! test binary, started on first use from the server binaries installed on
//! the machine, one fresh database per test.
//!
//! With `USERSTATE_POSTGRES_URL` set (a key=value connection string or a
//! `postgres://` URL of a server the tests may create databases on), that
//! server is used instead. Otherwise the cluster lives in a private
//! temporary folder, listens on a Unix socket there only (no TCP port
//! another test or account can reach), runs as the `postgres` account when
//! the tests run as root (PostgreSQL refuses root), and is stopped when the
//! test binary exits: a keeper process waits on a pipe the binary holds and
//! stops the cluster when the pipe closes, however the binary ends.
//!
//! Under `CI=true` a missing server is a failure; elsewhere [`database`]
//! answers `None` and prints one line saying why, so a machine without
//! PostgreSQL skips these tests.
//!
//! ```no_run
//! let Some(db) = userstate_postgres::testing::database() else { return };
//! println!("connect with {}", db.connection_string());
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The variable naming a server to use instead of a throwaway cluster.
pub const URL_VAR: &str = "USERSTATE_POSTGRES_URL";

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    connection: String,
    name: String,
}

impl TestDatabase {
    /// The key=value connection string of the database.
    pub fn connection_string(&self) -> &str {
        &self.connection
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A fresh, empty database on the test cluster; `None` (after one printed
/// line) when no PostgreSQL can be had outside CI.
///
/// # Panics
/// Under `CI=true` when no server can be had, and when the cluster refuses
/// to create the database.
pub fn database() -> Option<TestDatabase> {
    let server = reachable()?;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "userstate_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("{} dbname=postgres", server.base);
    let created = run_sql(&admin, &format!("CREATE DATABASE {name}"));
    if let Err(e) = created {
        panic!("the test cluster cannot create a database: {e}");
    }
    Some(TestDatabase {
        connection: format!("{} dbname={name}", server.base),
        name,
    })
}

/// Whether the tests have a server: `false` (after one printed line) when
/// no PostgreSQL can be had outside CI.
///
/// # Panics
/// Under `CI=true` when no server can be had.
pub fn available() -> bool {
    reachable().is_some()
}

fn reachable() -> Option<&'static Server> {
    match server() {
        Ok(server) => Some(server),
        Err(why) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true needs PostgreSQL for these tests: {why}")
        }
        Err(why) => {
            static SAID: OnceLock<()> = OnceLock::new();
            // Straight to stderr: the test harness captures eprintln!.
            SAID.get_or_init(|| {
                let _ = writeln!(std::io::stderr(), "skipping the PostgreSQL tests: {why}");
            });
            None
        }
    }
}

/// How to reach the server the tests use, without a database name.
struct Server {
    base: String,
    _cluster: Option<Cluster>,
}

fn server() -> Result<&'static Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var(URL_VAR) {
            Ok(url) => Ok(Server {
                base: url,
                _cluster: None,
            }),
            Err(_) => Cluster::start().map(|cluster| Server {
                base: cluster.base(),
                _cluster: Some(cluster),
            }),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A cluster in a temporary folder, stopped by its keeper when the test
/// binary's end closes the keeper's pipe.
struct Cluster {
    socket_dir: PathBuf,
    _keeper: Mutex<Child>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = server_binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("userstate-postgres-")
            .tempdir()
            .map_err(|e| format!("no temporary folder: {e}"))?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir).map_err(|e| e.to_string())?;
        let as_root = is_root();
        if as_root {
            let owned = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !owned.success() {
                return Err("cannot give the cluster's folder to the postgres account".into());
            }
        }
        let run = |program: &Path| -> Command {
            if as_root {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            } else {
                Command::new(program)
            }
        };
        let initdb = run(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            ));
        }
        let options = format!(
            "-k {} -p 5432 -c listen_addresses= -c fsync=on -c synchronous_commit=on",
            socket_dir.display()
        );
        let started = run(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.path().join("server.log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !started.status.success() {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            return Err(format!(
                "the cluster did not start: {} {}",
                String::from_utf8_lossy(&started.stderr).trim(),
                log.trim()
            ));
        }
        // Stops the cluster and removes its folder once its stdin closes:
        // when this binary ends.
        let stop = format!(
            "read _ignored; {} -D {} -m fast stop >/dev/null 2>&1; rm -rf {}",
            bin.join("pg_ctl").display(),
            data.display(),
            dir.path().display()
        );
        let mut keeper = run(Path::new("sh"))
            .args(["-c", &stop])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("the cluster's keeper: {e}"))?;
        // Nothing is ever written: only the pipe's end matters.
        let _ = keeper.stdin.as_mut().map(|stdin| stdin.flush());
        Ok(Cluster {
            socket_dir,
            _keeper: Mutex::new(keeper),
            _dir: dir,
        })
    }

    fn base(&self) -> String {
        format!("host={} port=5432 user=postgres", self.socket_dir.display())
    }
}

/// The folder of `initdb` and `pg_ctl`: `USERSTATE_POSTGRES_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin` (Debian's layout), else `pg_ctl` on
/// the `PATH`.
fn server_binaries() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("USERSTATE_POSTGRES_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("pg_ctl").exists() && dir.join("initdb").exists())
        .ok_or_else(|| {
            format!(
                "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql or \
                 on the PATH, and {URL_VAR} is not set"
            )
        })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs one statement on `connection` on a runtime of its own.
fn run_sql(connection: &str, sql: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(connection, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let done = client.batch_execute(sql).await.map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        done
    })
}
