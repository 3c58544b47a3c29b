//! The HTTP service as a real process on a real SQLite file: a lockout
//! policy set before a restart is in force after it, and a client
//! following the event stream receives a lock another client makes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

const TOKENS: &str = r#"{
    "admin-token": {"userId": "acme-admin", "orgId": "acme",
                    "grants": {"acme": ["user.read", "user.write", "policy.write"]}},
    "reader-token": {"userId": "acme-reader", "orgId": "acme",
                     "grants": {"acme": ["user.read"]}}
}"#;

/// A built example, beside this test binary's folder.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    let path = profile.join("examples").join(name);
    assert!(path.exists(), "{} is built by cargo test", path.display());
    path
}

/// `http_service` on `db`, on a free loopback port, stopped when dropped.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(db: &Path, tokens: &Path) -> Service {
        let mut child = Command::new(example("http_service"))
            .arg("--db")
            .arg(format!("sqlite:{}", db.display()))
            .args(["--listen", "127.0.0.1:0", "--tokens"])
            .arg(tokens)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start http_service");
        // The service logs the address it serves on before it accepts.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let (_, rest) = line.split_once("address=")?;
                Some(rest.split_whitespace().next()?.to_owned())
            })
            .expect("http_service said where it serves");
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Service {
            child,
            base: format!("http://{address}"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, TOKENS).unwrap();
    let db = dir.path().join("users.sqlite3");
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
