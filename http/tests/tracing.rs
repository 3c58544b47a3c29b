//! What the router's commands tell `tracing`: a span per command with its
//! name, organisation and user, ending in its outcome; never the reason a
//! caller gave.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use userstate::{InMemoryRepository, UserService};
use userstate_http::Tokens;

/// A log written to memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_command_is_a_span_ending_in_its_outcome() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("userstate=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let tokens = Tokens::from_json(
        r#"{"t": {"userId": "admin", "orgId": "acme", "grants": {"acme": ["user.read", "user.write"]}}}"#,
    )
    .unwrap();
    let service = UserService::new(
        Arc::new(InMemoryRepository::new()),
        Arc::new(tokens.authorizer()),
    );
    let app = userstate_http::router(service, tokens);
    let post = |path: &str, body: &str| {
        Request::post(path)
            .header("authorization", "Bearer t")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    for (path, body) in [
        ("/management/v1/users", r#"{"userId":"alice"}"#),
        (
            "/management/v1/users/alice/_lock",
            r#"{"reason":"a secret reason"}"#,
        ),
        (
            "/management/v1/users/alice/_lock",
            r#"{"reason":"a secret reason"}"#,
        ),
    ] {
        app.clone().oneshot(post(path, body)).await.unwrap();
    }

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let done: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("command done"))
        .collect();
    assert_eq!(done.len(), 3, "{text}");
    assert!(
        done[0].contains(r#"command="create" org=acme user=alice"#),
        "{}",
        done[0]
    );
    assert!(done[0].contains(r#"outcome="ok""#), "{}", done[0]);
    assert!(done[1].contains(r#"command="lock""#) && done[1].contains(r#"outcome="ok""#));
    assert!(
        done[2].contains(r#"outcome="USER-ALREADY-LOCKED""#),
        "{}",
        done[2]
    );
    assert!(!text.contains("secret"), "a reason was logged: {text}");
}
