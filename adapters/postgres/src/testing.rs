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
    match create_database(&server.base) {
        Ok(db) => Some(db),
        Err(e) => panic!("the test cluster cannot create a database: {e}"),
    }
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
    _cluster: Option<TestCluster>,
}

fn server() -> Result<&'static Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var(URL_VAR) {
            Ok(url) => Ok(Server {
                base: url,
                _cluster: None,
            }),
            Err(_) => TestCluster::start().map(|cluster| Server {
                base: cluster.base(),
                _cluster: Some(cluster),
            }),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A cluster of a test's own, for tests that stop, crash and restart the
/// server or cut it off. It lives in a private temporary folder and is
/// stopped and removed when dropped, or by its keeper when the test binary
/// ends however it ends.
///
/// ```no_run
/// use userstate_postgres::testing::TestCluster;
/// let cluster = TestCluster::start().unwrap();
/// let db = cluster.create_database().unwrap();
/// cluster.stop("immediate").unwrap(); // a crash
/// cluster.restart().unwrap();
/// # drop(db);
/// ```
#[derive(Debug)]
pub struct TestCluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
    netns: Option<String>,
    server_options: String,
    tcp: Option<String>,
    as_root: bool,
    _keeper: Mutex<Child>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// A new cluster on a Unix socket in its folder only.
    ///
    /// # Errors
    /// Why no cluster can be had: no server binaries, initdb or the start
    /// failed.
    pub fn start() -> Result<TestCluster, String> {
        TestCluster::create(None)
    }

    /// A new cluster run inside the network namespace `netns` (which must
    /// exist), listening on `address` port 5432 there besides its Unix
    /// socket: the socket stays reachable from outside the namespace, for
    /// checks while the network is cut.
    ///
    /// # Errors
    /// As [`TestCluster::start`].
    pub fn start_in_namespace(netns: &str, address: &str) -> Result<TestCluster, String> {
        TestCluster::create(Some((netns.to_owned(), address.to_owned())))
    }

    fn create(network: Option<(String, String)>) -> Result<TestCluster, String> {
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
        let (netns, listen) = match network {
            Some((netns, address)) => (Some(netns), address),
            None => (None, String::new()),
        };
        let mut cluster = TestCluster {
            bin,
            log: dir.path().join("server.log"),
            data,
            server_options: format!(
                "-k {} -p 5432 -c listen_addresses={listen} -c fsync=on -c synchronous_commit=on",
                socket_dir.display()
            ),
            tcp: (!listen.is_empty()).then(|| format!("host={listen} port=5432 user=postgres")),
            socket_dir,
            netns,
            as_root,
            _keeper: Mutex::new(Command::new("true").spawn().map_err(|e| e.to_string())?),
            _dir: dir,
        };
        let initdb = cluster
            .run("initdb")
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
            .arg(&cluster.data)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            ));
        }
        // Host-based access for TCP clients: trust, as for the socket.
        if cluster.tcp.is_some() {
            let hba = cluster.data.join("pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba).map_err(|e| e.to_string())?;
            rules.push_str("\nhost all all 0.0.0.0/0 trust\n");
            std::fs::write(&hba, rules).map_err(|e| e.to_string())?;
        }
        cluster.restart()?;
        // Stops the cluster and removes its folder once its stdin closes:
        // when this binary ends.
        let stop = format!(
            "read _ignored; {} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
            cluster.bin.join("pg_ctl").display(),
            cluster.data.display(),
            cluster._dir.path().display()
        );
        let keeper = cluster
            .command(Path::new("sh"))
            .args(["-c", &stop])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("the cluster's keeper: {e}"))?;
        cluster._keeper = Mutex::new(keeper);
        Ok(cluster)
    }

    /// The key=value connection string of the server over its Unix
    /// socket, without a database name.
    pub fn base(&self) -> String {
        format!("host={} port=5432 user=postgres", self.socket_dir.display())
    }

    /// The same over TCP, for a cluster in a namespace.
    pub fn tcp_base(&self) -> Option<&str> {
        self.tcp.as_deref()
    }

    /// A fresh, empty database on the cluster.
    ///
    /// # Errors
    /// When the server refuses.
    pub fn create_database(&self) -> Result<TestDatabase, String> {
        create_database(&self.base())
    }

    /// Stops the server: `mode` is pg_ctl's, `immediate` being a crash (no
    /// checkpoint, recovery from the log at the next start).
    ///
    /// # Errors
    /// When pg_ctl fails.
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        let stopped = self
            .run("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl stop: {e}"))?;
        if stopped.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&stopped.stderr).trim()
            ))
        }
    }

    /// Starts the server (again), and waits until it accepts connections.
    ///
    /// # Errors
    /// When it does not start.
    pub fn restart(&self) -> Result<(), String> {
        let started = self
            .run("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &self.server_options, "-l"])
            .arg(&self.log)
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if started.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(format!(
            "the cluster did not start: {} {}",
            String::from_utf8_lossy(&started.stderr).trim(),
            log.trim()
        ))
    }

    /// A command for one of the server's programs, as the account and in
    /// the namespace the cluster runs in.
    fn run(&self, program: &str) -> Command {
        self.command(&self.bin.join(program))
    }

    fn command(&self, program: &Path) -> Command {
        let mut words: Vec<std::ffi::OsString> = Vec::new();
        if let Some(netns) = &self.netns {
            words.extend(["ip".into(), "netns".into(), "exec".into(), netns.into()]);
        }
        if self.as_root {
            words.extend([
                "runuser".into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
            ]);
        }
        words.push(program.into());
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        command
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
    }
}

fn create_database(base: &str) -> Result<TestDatabase, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "userstate_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    execute(
        &with_database(base, "postgres"),
        &format!("CREATE DATABASE {name}"),
    )?;
    Ok(TestDatabase {
        connection: with_database(base, &name),
        name,
    })
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

/// `base` (key=value pairs, or a `postgres://` URL as in [`URL_VAR`]) naming
/// the database `name`.
fn with_database(base: &str, name: &str) -> String {
    if base.starts_with("postgres://") || base.starts_with("postgresql://") {
        // A query parameter is read after the URL's path, so it wins.
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}dbname={name}")
    } else {
        format!("{base} dbname={name}")
    }
}

/// Runs `statements` (one or several, as a simple query) on the database
/// `connection` names, on a connection and runtime of their own: for tests
/// that set a server up or look behind the adapter.
///
/// # Errors
/// The server's or the connection's error, as text.
pub fn execute(connection: &str, statements: &str) -> Result<(), String> {
    query(connection, statements).map(|_| ())
}

/// Runs one query and returns the first column of its first row as text
/// (`None` for no row or NULL).
///
/// # Errors
/// As [`execute`].
pub fn query(connection: &str, sql: &str) -> Result<Option<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(connection, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let answered = client.simple_query(sql).await.map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        Ok(answered?
            .iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
                _ => None,
            })
            .flatten())
    })
}

/// A session of its own holding the advisory lock `key` until dropped: a
/// gate that a test's trigger or statement can wait on, to stop a writer
/// at a chosen point without any timing.
#[derive(Debug)]
pub struct AdvisoryLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    session: Option<std::thread::JoinHandle<()>>,
}

impl AdvisoryLock {
    /// Takes the lock `key` on a new connection to `connection`, returning
    /// once it is held.
    ///
    /// # Errors
    /// The server's or the connection's error, as text.
    pub fn hold(connection: &str, key: i64) -> Result<AdvisoryLock, String> {
        let (held, taken) = std::sync::mpsc::channel::<Result<(), String>>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let connection = connection.to_owned();
        let session = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = held.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let connected = tokio_postgres::connect(&connection, tokio_postgres::NoTls).await;
                let (client, driver) = match connected {
                    Ok(pair) => pair,
                    Err(e) => {
                        let _ = held.send(Err(e.to_string()));
                        return;
                    }
                };
                let driver = tokio::spawn(driver);
                let locked = client
                    .execute("SELECT pg_advisory_lock($1)", &[&key])
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string());
                let ok = locked.is_ok();
                let _ = held.send(locked);
                if ok {
                    // Blocks this session's thread only; the lock is held
                    // until the test lets go or drops the gate.
                    let _ = tokio::task::spawn_blocking(move || released.recv()).await;
                }
                drop(client);
                let _ = driver.await;
            });
        });
        match taken.recv() {
            Ok(Ok(())) => Ok(AdvisoryLock {
                release: Some(release),
                session: Some(session),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the locking session ended".to_owned()),
        }
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(session) = self.session.take() {
            let _ = session.join();
        }
    }
}
