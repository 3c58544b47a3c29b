//! Several `http_service` processes on ONE PostgreSQL database, as behind a
//! load balancer: concurrent locks of one user split between two instances
//! succeed exactly once, a lock made through one instance reaches a client
//! following the event stream of the other, and `swap_backend` runs on
//! PostgreSQL. Skipped (after one printed line) on a machine without
//! PostgreSQL, unless `CI=true`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Service;
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use userstate_postgres::testing;

/// The seeds' answer to locking a locked user.
fn already_locked() -> Value {
    json!({
        "code": 9,
        "message": "User is already locked (USER-ALREADY-LOCKED)",
        "details": [{
            "@type": "type.googleapis.com/userstate.v1.ErrorDetail",
            "id": "USER-ALREADY-LOCKED",
            "message": "User is already locked",
        }],
    })
}

/// The two spellings of one database the examples accept:
/// `postgres:KEY=VALUE ...` and a `postgresql://` URL. The URL only when the
/// connection string is plain pairs (the test cluster's is); otherwise the
/// key=value spec twice.
fn specs(connection: &str) -> (String, String) {
    let pairs = connection
        .split_whitespace()
        .map(|pair| pair.split_once('='))
        .collect::<Option<Vec<_>>>()
        .filter(|pairs| {
            !connection.contains('\'') && pairs.iter().any(|(key, _)| *key == "dbname")
        });
    let key_value = format!("postgres:{connection}");
    let Some(pairs) = pairs else {
        return (key_value.clone(), key_value);
    };
    let dbname = pairs.iter().find(|(key, _)| *key == "dbname").unwrap().1;
    let query: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| *key != "dbname")
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    let url = format!("postgresql:///{}?{}", encode(dbname), query.join("&"));
    (key_value, url)
}

/// Percent-encodes all but unreserved characters and `/`.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Two instances on one fresh database, the first on the key=value spec,
/// the second on the URL; `None` without PostgreSQL. On a blocking thread:
/// the test cluster and the services' start block.
async fn two_instances(tokens: PathBuf) -> Option<(Service, Service)> {
    let started = tokio::task::spawn_blocking(move || {
        if !testing::available() {
            return None;
        }
        let db = testing::database()?;
        let (key_value, url) = specs(db.connection_string());
        // The first creates the schema; the second finds it.
        let first = Service::start(&key_value, &tokens);
        let second = Service::start(&url, &tokens);
        Some((first, second))
    });
    started.await.unwrap()
}

#[tokio::test]
async fn concurrent_locks_split_between_two_instances_succeed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = common::tokens_file(dir.path());
    let Some((first, second)) = two_instances(tokens).await else {
        return;
    };
    assert_ne!(first.base, second.base);
    let (status, body) = first
        .call(
            Method::POST,
            "/management/v1/users",
            "admin-token",
            json!({"userId": "alice"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // 32 locks in flight at once, 16 through each instance.
    let lock = "/management/v1/users/alice/_lock";
    let answers = join_all((0..32).map(|n| {
        let service = if n % 2 == 0 { &first } else { &second };
        service.call(Method::POST, lock, "admin-token", json!({}))
    }))
    .await;

    let won: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(won.len(), 1, "exactly one lock wins: {answers:?}");
    assert_eq!(won[0].1["details"]["sequence"], "2", "{:?}", won[0]);
    assert_eq!(won[0].1["details"]["resourceOwner"], "acme", "{:?}", won[0]);
    let lost: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert_eq!(lost.len(), 31);
    for answer in lost {
        assert_eq!(answer, &(400, already_locked()));
    }

    // Either instance tells the same history: one lock.
    for service in [&first, &second] {
        let (status, history) = service
            .call(
                Method::POST,
                "/management/v1/users/alice/changes/_search",
                "reader-token",
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{history}");
        let types: Vec<&str> = history["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|change| change["eventType"]["key"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["user.added", "user.locked"], "{history}");
        let (status, user) = service
            .call(
                Method::GET,
                "/management/v1/users/alice",
                "reader-token",
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["user"]["state"], "USER_STATE_LOCKED");
    }
}

#[tokio::test]
async fn a_client_of_one_instance_receives_a_lock_made_through_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = common::tokens_file(dir.path());
    let Some((first, second)) = two_instances(tokens).await else {
        return;
    };
    let (status, body) = first
        .call(
            Method::POST,
            "/management/v1/users",
            "admin-token",
            json!({"userId": "bob"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut stream = reqwest::Client::new()
        .get(format!("{}/admin/v1/events/_stream?after=1", second.base))
        .bearer_auth("reader-token")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (status, body) = first
        .call(
            Method::POST,
            "/management/v1/users/bob/_lock",
            "admin-token",
            json!({"reason": "phishing"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut received = String::new();
    while !received.contains("user.locked") {
        let chunk = stream.chunk().await.unwrap().expect("the stream goes on");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains(r#""reason":"phishing""#), "{received}");
    assert!(received.contains("id: 2"), "{received}");
}

#[test]
fn swap_backend_runs_on_postgres() {
    if !testing::available() {
        return;
    }
    let Some(db) = testing::database() else {
        return;
    };
    let (key_value, url) = specs(db.connection_string());
    // Twice on one database: the second run finds the first's users.
    for (spec, locked) in [(key_value, 2), (url, 4)] {
        let output = Command::new(common::example("swap_backend"))
            .arg(&spec)
            .stdin(Stdio::null())
            .output()
            .expect("run swap_backend");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{spec}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("locked users in acme: {locked}")),
            "{spec}: {stdout}{stderr}"
        );
    }
}

#[test]
fn the_url_spec_spells_the_same_database() {
    let (key_value, url) = specs("host=/tmp/pg x/socket port=5432 user=postgres dbname=d1");
    assert_eq!(
        key_value,
        "postgres:host=/tmp/pg x/socket port=5432 user=postgres dbname=d1"
    );
    // Not plain pairs (a space in a value): the key=value spec twice.
    assert_eq!(url, key_value);
    let (_, url) = specs("host=/tmp/pg-1/socket port=5432 user=postgres dbname=d1");
    assert_eq!(
        url,
        "postgresql:///d1?host=/tmp/pg-1/socket&port=5432&user=postgres"
    );
}
