//! Slow and idle clients cannot starve the service: more connections than
//! the cap, each sending half a request line or nothing at all and never
//! finishing, are closed by the header-read timeout, and a legitimate
//! request made while they hold on is answered. A body that never ends is
//! answered 408.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use userstate::{InMemoryRepository, UserService};
use userstate_http::{ServeOptions, Tokens};

const CAP: usize = 4;

async fn start() -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let tokens = Tokens::from_json(
        r#"{"t": {"userId": "admin", "orgId": "acme",
        "grants": {"acme": ["user.read", "user.write"]}}}"#,
    )
    .unwrap();
    let service = UserService::new(
        Arc::new(InMemoryRepository::new()),
        Arc::new(tokens.authorizer()),
    );
    let app = userstate_http::router(service, tokens);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        request_body_timeout: Duration::from_millis(300),
        max_connections: CAP,
        shutdown_grace: Duration::from_millis(300),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        userstate_http::serve(listener, app, options, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (address, stop, server)
}

#[tokio::test]
async fn half_open_and_idle_connections_beyond_the_cap_do_not_starve_a_request() {
    let (base, stop, server) = start().await;
    let host = base.trim_start_matches("http://").to_owned();
    let mut attackers = Vec::new();
    for i in 0..3 * CAP {
        let mut socket = TcpStream::connect(&host).await.unwrap();
        if i % 2 == 0 {
            socket.write_all(b"GET /management/v1/us").await.unwrap();
        }
        attackers.push(socket);
    }
    let answer = reqwest::Client::new()
        .post(format!("{base}/management/v1/users/_search"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "the legitimate request is answered");
    // The server closed every attacker's connection (a read sees the end).
    for mut socket in attackers {
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
    }
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_body_that_never_ends_is_answered_408() {
    let (base, stop, server) = start().await;
    let host = base.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&host).await.unwrap();
    socket
        .write_all(
            b"POST /management/v1/users HTTP/1.1\r\nhost: x\r\nauthorization: Bearer t\r\n\
              content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"userId\"",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    stop.send(()).unwrap();
    server.await.unwrap();
}

/// A stream followed for good does not keep the server from stopping: the
/// connections still open after the grace are closed.
#[tokio::test]
async fn a_followed_stream_does_not_hold_up_the_shutdown() {
    let (base, stop, server) = start().await;
    let mut stream = reqwest::Client::new()
        .get(format!("{base}/admin/v1/events/_stream?after=0"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    stop.send(()).unwrap();
    server.await.unwrap();
    // The server closed the stream: the client sees its end.
    while let Ok(Some(_)) = stream.chunk().await {}
}
