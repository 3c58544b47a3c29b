//! The library as an HTTP service: the seeds' Management v1 and Resources
//! v3alpha endpoints and ZITADEL's v2 User service (Connect, JSON).
//!
//! ```text
//! cargo run --example http_service -- --demo
//! cargo run --example http_service -- --db memory --listen 127.0.0.1:9000 --tokens tokens.json
//! cargo run --example http_service -- --db postgres://me@db.example/identity --tokens tokens.json
//! ```
//!
//! Flags: `--db sqlite:PATH | sled:PATH | postgres://URL | postgres:CONNSTRING | memory`
//! (default: `http.sqlite3` in the examples' private folder, see
//! `userstate_examples::backend::default_dir`; the specs are those of
//! `userstate_backend::open`), `--listen ADDR` (default
//! 127.0.0.1:8080), `--tokens FILE` (see `userstate_http::Tokens`),
//! `--demo` (demo organisations, users and tokens, and curl commands to
//! try). Several instances on one PostgreSQL database serve the same users,
//! each command decided on what all of them committed. Logs go to stderr;
//! `RUST_LOG` filters them (default `info`). Ctrl-C (or SIGTERM) stops it
//! after the requests in flight.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use userstate::{UserRepository, UserService};
use userstate_examples::{backend, demo};
use userstate_http::{ServeOptions, Tokens};

const USAGE: &str = "\
usage: http_service [--db SPEC] [--listen ADDR] [--tokens FILE] [--demo]
                    [--header-timeout SECS] [--body-timeout SECS] [--max-connections N]

  --db SPEC      storage backend: sqlite:PATH, sled:PATH, memory,
                 postgres://URL (or postgresql://URL) or postgres:CONNSTRING
                 (libpq's key=value form, e.g. postgres:host=/run/postgresql dbname=users);
                 several instances may share one PostgreSQL database
                 (default: sqlite:<local data dir>/userstate-examples/http.sqlite3)
  --listen ADDR  address to serve on (default 127.0.0.1:8080)
  --tokens FILE  bearer tokens: {\"TOKEN\": {\"userId\", \"orgId\", \"grants\"?, \"instanceGrants\"?}}
  --demo         organisations acme and globex with users and tokens, and curl commands
  --header-timeout SECS  close a connection whose request head takes longer (default 10)
  --body-timeout SECS    answer 408 to a body that takes longer (default 30)
  --max-connections N    connections open at once; more wait to be accepted (default 512)";

/// The command line.
#[derive(Debug)]
struct Options {
    db: Option<String>,
    listen: SocketAddr,
    tokens: Option<PathBuf>,
    demo: bool,
    serve: ServeOptions,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            db: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tokens: None,
            demo: false,
            serve: ServeOptions::default(),
        };
        let seconds = |flag: &str, text: String| -> Result<Duration, String> {
            let seconds: f64 = text.parse().map_err(|e| format!("{flag} {text:?}: {e}"))?;
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("{flag} {text:?}: a positive number of seconds"))
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--db" => options.db = Some(value()?),
                "--listen" => {
                    let text = value()?;
                    options.listen = text
                        .parse()
                        .map_err(|e| format!("--listen {text:?}: {e}"))?;
                }
                "--tokens" => options.tokens = Some(PathBuf::from(value()?)),
                "--demo" => options.demo = true,
                "--header-timeout" => {
                    options.serve.header_read_timeout = seconds(&flag, value()?)?;
                }
                "--body-timeout" => options.serve.request_body_timeout = seconds(&flag, value()?)?,
                "--max-connections" => {
                    let text = value()?;
                    options.serve.max_connections =
                        text.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            format!("--max-connections {text:?}: a positive number")
                        })?;
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let repository = open_backend(options.db).await?;
    let tokens = match &options.tokens {
        Some(path) => Tokens::load(path)?,
        None => Tokens::new(),
    };
    let (service, tokens) = if options.demo {
        demo::demo(repository, tokens)
            .await
            .map_err(|e| format!("demo setup: {e}"))?
    } else if tokens.is_empty() {
        return Err("no tokens: pass --tokens FILE or --demo".to_owned());
    } else {
        let grants = Arc::new(tokens.authorizer());
        (UserService::new(repository, grants), tokens)
    };
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("listening socket: {e}"))?;
    tracing::info!(%address, tokens = tokens.len(), "serving");
    if options.demo {
        println!("{}", demo::demo_curl_commands(&format!("http://{address}")));
    }
    let app = userstate_http::router(service, tokens);
    userstate_http::serve(listener, app, options.serve, shutdown_signal())
        .await
        .map_err(|e| format!("server: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// The backend `--db` names; without `--db`, an SQLite file in the
/// examples' private data folder. Opened on a blocking thread: opening
/// waits for the file or the database server, which an async task may not.
async fn open_backend(spec: Option<String>) -> Result<Arc<dyn UserRepository>, String> {
    let spec = match spec {
        Some(spec) => spec,
        None => backend::default_sqlite("http.sqlite3")?,
    };
    let shown = userstate_backend::redacted(&spec);
    let repository = tokio::task::spawn_blocking(move || userstate_backend::open(&spec))
        .await
        .map_err(|e| format!("opening the backend: {e}"))?
        .map_err(|e| e.to_string())?
        .repository();
    tracing::info!(backend = %shown, "storage");
    Ok(repository)
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
