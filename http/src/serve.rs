//! Serving the router so that slow and idle clients cannot starve it: a
//! bound on reading a request's head, a bound on reading its body, and a
//! cap on open connections, past which new ones wait in the listen queue
//! instead of taking file descriptors the process needs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// The bounds [`serve`] puts on clients. The defaults suit a public
/// deployment: no honest client takes 10 s to send a request's head or
/// 30 s to send 64 KiB, and 512 connections leave room in the usual limit
/// of 1024 open files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// A connection whose request head (request line and headers) is not
    /// complete within this time is closed, and so is one that sends
    /// nothing for this long before its next request.
    pub header_read_timeout: Duration,
    /// A request whose body is not complete within this time is answered
    /// 408.
    pub request_body_timeout: Duration,
    /// The most connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// After the shutdown signal, how long the requests in flight may take
    /// to finish; connections still open then (an event stream followed
    /// for good, say) are closed.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// [`ServeOptions::header_read_timeout`] unless told otherwise.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// [`ServeOptions::request_body_timeout`] unless told otherwise.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// [`ServeOptions::max_connections`] unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// [`ServeOptions::shutdown_grace`] unless told otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` over HTTP/1.1 within `options`' bounds until
/// `shutdown` resolves; then stops accepting, lets the requests in flight
/// finish within [`ServeOptions::shutdown_grace`], and returns.
///
/// # Errors
/// None once serving: a failed accept (out of file descriptors, say) is
/// logged and tried again after a pause, so it cannot spin.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(options.request_body_timeout));
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            // A client that went away or timed out is no fault of ours.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after the shutdown grace are closed");
    }
    connections.shutdown().await;
    Ok(())
}
