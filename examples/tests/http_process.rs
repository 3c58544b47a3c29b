//! The HTTP service as a real process on a real SQLite file: a lockout
//! policy set before a restart is in force after it, a client following
//! the event stream receives a lock another client makes, and clients that
//! open connections and never finish a request cannot starve it.

mod common;

use std::path::PathBuf;

use common::Service;
use serde_json::json;

/// A temporary folder with the tokens file, and the SQLite spec of a
/// database in it.
fn files() -> (tempfile::TempDir, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = common::tokens_file(dir.path());
    let db = format!("sqlite:{}", dir.path().join("users.sqlite3").display());
    (dir, db, tokens)
}

#[tokio::test]
async fn a_stored_lockout_policy_is_in_force_after_a_restart() {
    use reqwest::Method;
    let (_dir, db, tokens) = files();
    {
        let first = Service::start(&db, &tokens);
        let (status, body) = first
            .call(
                Method::PUT,
                "/management/v1/policies/lockout",
                "admin-token",
                json!({"maxPasswordAttempts": 3}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = first
            .call(
                Method::POST,
                "/management/v1/users",
                "admin-token",
                json!({"userId": "alice"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let second = Service::start(&db, &tokens);
    let (status, policy) = second
        .call(
            Method::GET,
            "/management/v1/policies/lockout",
            "reader-token",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["policy"]["maxPasswordAttempts"], "3");
    assert_eq!(policy["policy"]["isDefault"], false);
    let failed = json!({"factor": "password", "succeeded": false});
    let mut locked = Vec::new();
    for _ in 0..3 {
        let (status, body) = second
            .call(
                Method::POST,
                "/management/v1/users/alice/_record_check",
                "admin-token",
                failed.clone(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        locked.push(body["locked"].as_bool().unwrap());
    }
    assert_eq!(locked, [false, false, true], "the third failure locks");
}

#[tokio::test]
async fn a_client_following_the_stream_receives_a_lock_made_by_another() {
    use reqwest::Method;
    let (_dir, db, tokens) = files();
    let service = Service::start(&db, &tokens);
    let (status, _) = service
        .call(
            Method::POST,
            "/management/v1/users",
            "admin-token",
            json!({"userId": "bob"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut stream = reqwest::Client::new()
        .get(format!("{}/admin/v1/events/_stream?after=1", service.base))
        .bearer_auth("reader-token")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (status, _) = service
        .call(
            Method::POST,
            "/management/v1/users/bob/_lock",
            "admin-token",
            json!({"reason": "phishing"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut received = String::new();
    while !received.contains("user.locked") {
        let chunk = stream.chunk().await.unwrap().expect("the stream goes on");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains(r#""reason":"phishing""#), "{received}");
    assert!(received.contains("id: 2"), "{received}");
}

/// 300 connections that send half a request line and hold on, far more
/// than the service's cap of 32: the service closes them as their header
/// timeout passes and answers a legitimate request meanwhile.
#[tokio::test]
async fn half_open_connections_beyond_the_cap_do_not_starve_the_service() {
    use tokio::io::AsyncWriteExt;
    let (_dir, db, tokens) = files();
    let service = Service::start_with(
        &db,
        &tokens,
        &["--max-connections", "32", "--header-timeout", "1"],
    );
    let host = service.base.trim_start_matches("http://").to_owned();
    let mut attackers = Vec::new();
    for _ in 0..300 {
        let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
        // Accepted or queued, it holds the line open half written.
        let _ = socket.write_all(b"GET /management/v1/us").await;
        attackers.push(socket);
    }
    let (status, body) = service
        .call(
            reqwest::Method::POST,
            "/management/v1/users/_search",
            "admin-token",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(attackers);
}
