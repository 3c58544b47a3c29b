//! What the tests that start the real `http_service` binary share: finding
//! the built examples, a running service, and the bearer tokens.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The tokens the services accept: an administrator and a reader of acme.
pub const TOKENS: &str = r#"{
    "admin-token": {"userId": "acme-admin", "orgId": "acme",
                    "grants": {"acme": ["user.read", "user.write", "policy.write"]}},
    "reader-token": {"userId": "acme-reader", "orgId": "acme",
                     "grants": {"acme": ["user.read"]}}
}"#;

/// Writes [`TOKENS`] to `tokens.json` in `dir`.
pub fn tokens_file(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens.json");
    std::fs::write(&tokens, TOKENS).unwrap();
    tokens
}

/// A built example, beside this test binary's folder.
pub fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().unwrap().parent().unwrap();
    let path = profile.join("examples").join(name);
    assert!(path.exists(), "{} is built by cargo test", path.display());
    path
}

/// `http_service` on a backend spec, on a free loopback port, stopped when
/// dropped.
pub struct Service {
    child: Child,
    /// `http://ADDRESS`.
    pub base: String,
}

impl Service {
    /// Starts `http_service --db spec`; returns once it has bound its port.
    ///
    /// # Panics
    /// When the service ends before it serves, with what it logged.
    pub fn start(spec: &str, tokens: &Path) -> Service {
        Service::start_with(spec, tokens, &[])
    }

    /// [`Service::start`] with more flags.
    pub fn start_with(spec: &str, tokens: &Path, flags: &[&str]) -> Service {
        let mut child = Command::new(example("http_service"))
            .args(["--db", spec, "--listen", "127.0.0.1:0", "--tokens"])
            .arg(tokens)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start http_service");
        // The service logs the address it serves on once its port is bound,
        // so connections made after the line are accepted.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = Vec::new();
        let address = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let address = line
                .split_once("address=")
                .and_then(|(_, rest)| Some(rest.split_whitespace().next()?.to_owned()));
            said.push(line);
            address
        });
        let Some(address) = address else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "http_service --db {spec} ended ({status:?}) before serving:\n{}",
                said.join("\n")
            );
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Service {
            child,
            base: format!("http://{address}"),
        }
    }

    /// `method path` with `token` and the JSON `body`: the status and the
    /// JSON answer.
    pub async fn call(
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
