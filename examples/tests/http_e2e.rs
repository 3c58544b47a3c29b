//! End-to-end tests of the HTTP service: the router on a loopback port, a
//! fresh backend per test, a real HTTP client, and whole response bodies
//! compared (times are exact: the service runs on a manual clock).

use std::sync::Arc;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use userstate::{ManualClock, Timestamp, UserRepository, UserService};
use userstate_examples::demo;
use userstate_http::{Tokens, ORG_HEADER};

/// Every test runs on its own temporary SQLite file, the service's default
/// backend, under cargo's per-target scratch folder.
fn fresh_backend() -> Arc<dyn UserRepository> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("http-e2e-{}-{n}.sqlite3", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    userstate_backend::open(&format!("sqlite:{}", path.display()))
        .unwrap()
        .repository()
}

const ADMIN: &str = "acme-admin-token";
const READER: &str = "acme-reader-token";
const WRITER: &str = "acme-writer-token";
const GLOBEX: &str = "globex-admin-token";
const ROOT: &str = "root-token";

const TOKENS: &str = r#"{
    "acme-admin-token": {"userId": "acme-admin", "orgId": "acme",
                         "grants": {"acme": ["user.read", "user.write", "user.delete", "policy.write"]}},
    "acme-reader-token": {"userId": "acme-reader", "orgId": "acme",
                          "grants": {"acme": ["user.read"]}},
    "acme-writer-token": {"userId": "acme-writer", "orgId": "acme",
                          "grants": {"acme": ["user.read", "user.write"]}},
    "globex-admin-token": {"userId": "globex-admin", "orgId": "globex",
                           "grants": {"globex": ["user.read", "user.write", "user.delete"]}},
    "root-token": {"userId": "root", "orgId": "acme",
                   "instanceGrants": ["user.read", "user.write", "user.delete"]}
}"#;

const T0: &str = "2024-06-13T06:44:37.424Z";
const T1: &str = "2024-06-13T06:44:38.424Z";
const T2: &str = "2024-06-13T06:44:39.424Z";
const T3: &str = "2024-06-13T06:44:40.424Z";

/// The router served on a random loopback port until dropped.
struct Server {
    base: String,
    client: reqwest::Client,
    clock: ManualClock,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Server {
        let tokens = Tokens::from_json(TOKENS).unwrap();
        let service = UserService::new(fresh_backend(), Arc::new(tokens.authorizer()));
        Server::serve((service, tokens)).await
    }

    async fn serve((service, tokens): (UserService, Tokens)) -> Server {
        let clock = ManualClock::new(Timestamp::parse_rfc3339(T0).unwrap());
        let service = service.with_clock(Arc::new(clock.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = userstate_http::router(service, tokens);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            clock,
            task,
        }
    }

    /// Moves the clock one second on.
    fn tick(&self) {
        self.clock.advance(1000);
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends and returns the status and the whole body as JSON.
    async fn send(&self, request: RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, body)
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(self.request(Method::POST, path, Some(token)).json(&body))
            .await
    }

    /// A POST without a body (an empty body counts as `{}`).
    async fn post_empty(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(self.request(Method::POST, path, Some(token)))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(self.request(Method::GET, path, Some(token)))
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(self.request(Method::DELETE, path, Some(token)))
            .await
    }

    async fn create(&self, token: &str, id: &str, state: &str) -> Value {
        let (status, body) = self
            .post(
                "/management/v1/users",
                token,
                json!({"userId": id, "state": state}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn connect(&self, method: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let path = format!("/zitadel.user.v2.UserService/{method}");
        self.send(self.request(Method::POST, &path, token).json(&body))
            .await
    }
}

fn v1(sequence: u64, created: &str, changed: &str, owner: &str) -> Value {
    json!({"details": v1_fields(sequence, created, changed, owner)})
}

fn v1_fields(sequence: u64, created: &str, changed: &str, owner: &str) -> Value {
    json!({
        "sequence": sequence.to_string(),
        "creationDate": created,
        "changeDate": changed,
        "resourceOwner": owner,
    })
}

fn v3(id: &str, created: &str, changed: &str, owner: &str) -> Value {
    json!({"details": {
        "id": id,
        "created": created,
        "changed": changed,
        "owner": {"type": "OWNER_TYPE_ORG", "id": owner},
    }})
}

/// The seeds' error body.
fn error(code: u16, id: &str, message: &str) -> Value {
    json!({
        "code": code,
        "message": format!("{message} ({id})"),
        "details": [{
            "@type": "type.googleapis.com/userstate.v1.ErrorDetail",
            "id": id,
            "message": message,
        }],
    })
}

fn not_found() -> Value {
    error(5, "USER-NOT-FOUND", "User not found")
}

fn already_locked() -> Value {
    error(9, "USER-ALREADY-LOCKED", "User is already locked")
}

fn denied(permission: &str) -> Value {
    error(
        7,
        "USER-PERMISSION",
        &format!("Permission {permission} is missing in the organisation"),
    )
}

fn connect_error(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

const ACME_ALICE_LOCK: &str = "/management/v1/users/alice/_lock";

#[tokio::test]
async fn create_lock_and_lock_again_answer_like_the_seeds() {
    let s = Server::start().await;
    let created = s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    assert_eq!(
        created,
        json!({"userId": "alice", "details": v1_fields(1, T0, T0, "acme")})
    );

    s.tick();
    assert_eq!(
        s.post(ACME_ALICE_LOCK, ADMIN, json!({})).await,
        (200, v1(2, T0, T1, "acme"))
    );
    assert_eq!(
        s.post(ACME_ALICE_LOCK, ADMIN, json!({})).await,
        (400, already_locked())
    );
    assert_eq!(
        s.post("/management/v1/users", ADMIN, json!({"userId": "alice"}))
            .await,
        (409, error(6, "USER-EXISTS", "User already exists"))
    );

    // No body at all is the same as `{}`; the state defaults to active.
    s.post("/management/v1/users", ADMIN, json!({"userId": "bob"}))
        .await;
    assert_eq!(
        s.post_empty("/management/v1/users/bob/_lock", ADMIN).await,
        (200, v1(2, T1, T1, "acme"))
    );
}

#[tokio::test]
async fn lock_reason_and_expiry_are_validated_and_shown_by_get() {
    let s = Server::start().await;
    s.create(ADMIN, "bob", "USER_STATE_ACTIVE").await;
    s.tick();
    let lock = json!({"reason": "phishing report", "until": "2024-06-14T02:00:00+02:00"});
    assert_eq!(
        s.post("/management/v1/users/bob/_lock", ADMIN, lock).await,
        (200, v1(2, T0, T1, "acme"))
    );
    assert_eq!(
        s.get("/management/v1/users/bob", ADMIN).await,
        (
            200,
            json!({"user": {
                "id": "bob",
                "state": "USER_STATE_LOCKED",
                "details": v1_fields(2, T0, T1, "acme"),
                "lock": {
                    "reason": "phishing report",
                    "expiresAt": "2024-06-14T00:00:00.000Z",
                    "lockedAt": T1,
                    "cause": "command",
                },
            }})
        )
    );

    s.post_empty("/management/v1/users/bob/_unlock", ADMIN)
        .await;
    let bad = [
        (
            json!({"until": "2024-06-13T06:44:00Z"}),
            error(3, "USER-ARG-TIME", "lock expiry must lie in the future"),
        ),
        (
            json!({"until": "tomorrow"}),
            error(3, "USER-ARG-TIME", "time must be RFC 3339 text"),
        ),
        (
            json!({"reason": "x".repeat(501)}),
            error(
                3,
                "USER-ARG-REASON",
                "reason must be at most 500 characters",
            ),
        ),
        (
            json!({"reason": "bell\u{7}"}),
            error(
                3,
                "USER-ARG-REASON",
                "reason must not contain control characters",
            ),
        ),
    ];
    for (body, expected) in bad {
        assert_eq!(
            s.post("/management/v1/users/bob/_lock", ADMIN, body).await,
            (400, expected)
        );
    }
}

#[tokio::test]
async fn another_organisations_users_do_not_exist() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    s.create(GLOBEX, "gina", "USER_STATE_ACTIVE").await;

    // globex's admin, in its own organisation, does not see acme's alice.
    assert_eq!(
        s.post(ACME_ALICE_LOCK, GLOBEX, json!({})).await,
        (404, not_found())
    );
    assert_eq!(
        s.get("/management/v1/users/alice", GLOBEX).await,
        (404, not_found())
    );
    assert_eq!(
        s.post(
            "/management/v1/users/alice/changes/_search",
            GLOBEX,
            json!({})
        )
        .await,
        (404, not_found())
    );
    assert_eq!(
        s.delete("/management/v1/users/alice", GLOBEX).await,
        (404, not_found())
    );
    assert_eq!(
        s.get("/management/v1/users/gina", ADMIN).await,
        (404, not_found())
    );

    // Naming globex in the org header needs a permission there.
    let in_globex = s
        .request(Method::POST, "/management/v1/users/gina/_lock", Some(ADMIN))
        .header(ORG_HEADER, "globex");
    assert_eq!(s.send(in_globex).await, (403, denied("user.write")));

    // An instance-wide root sees each user only in its own organisation.
    let root_in_globex = |path: &str| {
        s.request(Method::POST, path, Some(ROOT))
            .header(ORG_HEADER, "globex")
    };
    assert_eq!(
        s.send(root_in_globex(ACME_ALICE_LOCK)).await,
        (404, not_found())
    );
    assert_eq!(
        s.send(root_in_globex("/management/v1/users/gina/_lock"))
            .await,
        (200, v1(2, T0, T0, "globex"))
    );
    let (status, search) = s.send(root_in_globex("/management/v1/users/_search")).await;
    assert_eq!(status, 200);
    assert_eq!(search["details"], json!({"totalResult": "1"}));
    assert_eq!(search["result"][0]["id"], "gina");
}

#[tokio::test]
async fn a_missing_permission_is_forbidden() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    assert_eq!(
        s.post(ACME_ALICE_LOCK, READER, json!({})).await,
        (403, denied("user.write"))
    );
    assert_eq!(
        s.post("/management/v1/users", READER, json!({"userId": "x"}))
            .await,
        (403, denied("user.write"))
    );
    assert_eq!(
        s.delete("/management/v1/users/alice", WRITER).await,
        (403, denied("user.delete"))
    );
    assert_eq!(
        s.send(
            s.request(Method::PUT, "/management/v1/policies/lockout", Some(READER))
                .json(&json!({"maxPasswordAttempts": 3}))
        )
        .await,
        (403, denied("policy.write"))
    );
    let check = json!({"factor": "password", "succeeded": false});
    assert_eq!(
        s.post("/management/v1/users/alice/_record_check", READER, check)
            .await,
        (403, denied("user.write"))
    );
    // Permission is checked before existence: nothing is revealed.
    assert_eq!(
        s.post("/management/v1/users/nobody/_lock", READER, json!({}))
            .await,
        (403, denied("user.write"))
    );
    let (status, _) = s.get("/management/v1/users/alice", READER).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_unauthenticated() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    let unauthenticated = |message: &str| error(16, "USER-UNAUTHENTICATED", message);

    let response = s
        .request(Method::POST, ACME_ALICE_LOCK, None)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        unauthenticated("Authorization with a bearer token is required")
    );

    assert_eq!(
        s.post(ACME_ALICE_LOCK, "no-such-token", json!({})).await,
        (401, unauthenticated("Bearer token is not valid"))
    );
    assert_eq!(
        s.get("/management/v1/users/alice", "no-such-token").await,
        (401, unauthenticated("Bearer token is not valid"))
    );
    let basic = s
        .request(Method::GET, "/management/v1/users/alice", None)
        .header(AUTHORIZATION, "Basic YWRtaW46YWRtaW4=");
    assert_eq!(
        s.send(basic).await,
        (401, unauthenticated("Authorization must be Bearer <token>"))
    );
    let lowercase = s
        .request(Method::GET, "/management/v1/users/alice", None)
        .header(AUTHORIZATION, format!("bearer {ADMIN}"));
    assert_eq!(s.send(lowercase).await.0, 200);
}

#[tokio::test]
async fn v3alpha_lock_and_unlock_answer_the_v3_shape() {
    let s = Server::start().await;
    s.create(ADMIN, "carol", "USER_STATE_INITIAL").await;
    s.tick();
    assert_eq!(
        s.post_empty("/resources/v3alpha/users/carol/_lock", ADMIN)
            .await,
        (200, v3("carol", T0, T1, "acme"))
    );
    s.tick();
    assert_eq!(
        s.post("/resources/v3alpha/users/carol/_unlock", ADMIN, json!({}))
            .await,
        (200, v3("carol", T0, T2, "acme"))
    );
    assert_eq!(
        s.post_empty("/resources/v3alpha/users/carol/_unlock", ADMIN)
            .await,
        (400, error(9, "USER-NOT-LOCKED", "User is not locked"))
    );
    assert_eq!(
        s.post_empty("/resources/v3alpha/users/carol/_lock", GLOBEX)
            .await,
        (404, not_found())
    );
    // Unlock returns to the state before the lock: carol is still initial.
    let (_, got) = s.get("/management/v1/users/carol", ADMIN).await;
    assert_eq!(got["user"]["state"], "USER_STATE_INITIAL");
}

#[tokio::test]
async fn get_search_and_changes_show_users_and_their_history() {
    let s = Server::start().await;
    for (id, state) in [
        ("alice", "USER_STATE_ACTIVE"),
        ("bob", "USER_STATE_ACTIVE"),
        ("carol", "USER_STATE_INITIAL"),
        ("dave", "USER_STATE_ACTIVE"),
        ("erin", "USER_STATE_ACTIVE"),
    ] {
        s.create(ADMIN, id, state).await;
    }
    s.tick();
    s.post(
        "/management/v1/users/bob/_lock",
        ADMIN,
        json!({"reason": "left"}),
    )
    .await;
    s.post_empty("/management/v1/users/dave/_lock", WRITER)
        .await;
    s.tick();
    s.delete("/management/v1/users/erin", ADMIN).await;

    let user = |id: &str, state: &str, sequence: u64, changed: &str| {
        json!({
            "id": id,
            "state": state,
            "details": v1_fields(sequence, T0, changed, "acme"),
        })
    };
    let mut bob = user("bob", "USER_STATE_LOCKED", 2, T1);
    bob["lock"] = json!({"reason": "left", "lockedAt": T1, "cause": "command"});
    let mut dave = user("dave", "USER_STATE_LOCKED", 2, T1);
    dave["lock"] = json!({"lockedAt": T1, "cause": "command"});
    let carol = user("carol", "USER_STATE_INITIAL", 1, T0);

    assert_eq!(
        s.get("/management/v1/users/carol", READER).await,
        (200, json!({"user": carol}))
    );
    assert_eq!(
        s.get("/management/v1/users/erin", ADMIN).await,
        (404, not_found())
    );

    let locked = json!({
        "query": {"offset": "0", "limit": 100},
        "queries": [{"stateQuery": {"state": "USER_STATE_LOCKED"}}],
    });
    assert_eq!(
        s.post("/management/v1/users/_search", READER, locked).await,
        (
            200,
            json!({"details": {"totalResult": "2"}, "result": [bob, dave]})
        )
    );
    // Offset and limit as numbers or strings; deleted users are not listed.
    let window = json!({"query": {"offset": 1, "limit": "2"}});
    assert_eq!(
        s.post("/management/v1/users/_search", READER, window).await,
        (
            200,
            json!({"details": {"totalResult": "4"}, "result": [bob, carol]})
        )
    );
    let (status, all) = s.post_empty("/management/v1/users/_search", READER).await;
    assert_eq!(status, 200);
    assert_eq!(all["details"], json!({"totalResult": "4"}));
    let ids: Vec<&str> = all["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "bob", "carol", "dave"]);
    assert_eq!(
        s.post(
            "/management/v1/users/_search",
            READER,
            json!({"queries": [{"stateQuery": {"state": "USER_STATE_DELETED"}}]}),
        )
        .await,
        (
            403,
            error(
                7,
                "USER-PERMISSION",
                "Permission user.read is missing in the instance"
            )
        )
    );
    // An instance-wide reader lists the removed users.
    let (status, removed) = s
        .post(
            "/management/v1/users/_search",
            ROOT,
            json!({"queries": [{"stateQuery": {"state": "USER_STATE_DELETED"}}]}),
        )
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["details"], json!({"totalResult": "1"}));
    assert_eq!(removed["result"][0]["state"], "USER_STATE_DELETED");
    assert_eq!(
        s.post(
            "/management/v1/users/_search",
            READER,
            json!({"queries": [{"stateQuery": {"state": "LOCKED!"}}]}),
        )
        .await,
        (
            400,
            error(
                3,
                "USER-ARG-NAME",
                "unknown user state; accepted are initial, active, locked, inactive, deleted \
                 or their API names (USER_STATE_ACTIVE, ...)"
            )
        )
    );
    assert_eq!(
        s.post(
            "/management/v1/users/_search",
            READER,
            json!({"query": {"limit": 1001}}),
        )
        .await,
        (
            400,
            error(3, "USER-ARG-QUERY", "limit must be at most 1000")
        )
    );

    let change = |sequence: u64, at: &str, key: &str, editor: &str, payload: Value| {
        json!({
            "sequence": sequence.to_string(),
            "creationDate": at,
            "eventType": {"key": key},
            "editorId": editor,
            "resourceOwnerId": "acme",
            "payload": payload,
        })
    };
    let added = change(
        1,
        T0,
        "user.added",
        "acme-admin",
        json!({"state": "USER_STATE_ACTIVE"}),
    );
    let locked = change(
        2,
        T1,
        "user.locked",
        "acme-admin",
        json!({"reason": "left", "cause": "command"}),
    );
    assert_eq!(
        s.post(
            "/management/v1/users/bob/changes/_search",
            READER,
            json!({})
        )
        .await,
        (200, json!({"result": [added, locked]}))
    );
    assert_eq!(
        s.post(
            "/management/v1/users/bob/changes/_search",
            READER,
            json!({"query": {"sequence": "1", "limit": 1}}),
        )
        .await,
        (200, json!({"result": [locked]}))
    );
    // A removed user's history stays readable as an audit trail.
    let (status, erin) = s
        .post_empty("/management/v1/users/erin/changes/_search", READER)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        erin["result"][1],
        change(2, T2, "user.removed", "acme-admin", json!({}))
    );
}

#[tokio::test]
async fn deactivate_reactivate_and_delete_follow_the_transition_table() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    s.create(ADMIN, "carol", "USER_STATE_INITIAL").await;
    let path = |action: &str| format!("/management/v1/users/alice/{action}");

    s.tick();
    assert_eq!(
        s.post_empty(&path("_deactivate"), ADMIN).await,
        (200, v1(2, T0, T1, "acme"))
    );
    assert_eq!(
        s.post_empty(&path("_deactivate"), ADMIN).await,
        (
            400,
            error(9, "USER-ALREADY-INACTIVE", "User already inactive")
        )
    );
    assert_eq!(
        s.post_empty(&path("_lock"), ADMIN).await,
        (
            400,
            error(
                9,
                "USER-NOT-ACTIVE-OR-INITIAL",
                "User is not active or initial"
            )
        )
    );
    s.tick();
    assert_eq!(
        s.post(&path("_reactivate"), ADMIN, json!({})).await,
        (200, v1(3, T0, T2, "acme"))
    );
    assert_eq!(
        s.post_empty(&path("_reactivate"), ADMIN).await,
        (400, error(9, "USER-NOT-INACTIVE", "User is not inactive"))
    );
    assert_eq!(
        s.post_empty("/management/v1/users/carol/_deactivate", ADMIN)
            .await,
        (
            400,
            error(
                9,
                "USER-INITIAL-DEACTIVATE",
                "User with state initial can only be deleted not deactivated"
            )
        )
    );
    s.tick();
    assert_eq!(
        s.delete("/management/v1/users/alice", ADMIN).await,
        (200, v1(4, T0, T3, "acme"))
    );
    assert_eq!(
        s.get("/management/v1/users/alice", ADMIN).await,
        (404, not_found())
    );
    assert_eq!(
        s.delete("/management/v1/users/alice", ADMIN).await,
        (404, not_found())
    );
    assert_eq!(
        s.post_empty(&path("_reactivate"), ADMIN).await,
        (404, not_found())
    );
    // Ids are never reused.
    assert_eq!(
        s.post("/management/v1/users", ADMIN, json!({"userId": "alice"}))
            .await,
        (409, error(6, "USER-EXISTS", "User already exists"))
    );
}

#[tokio::test]
async fn malformed_requests_get_error_bodies() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    let invalid_body = |detail: &str| {
        error(
            3,
            "USER-ARG-BODY",
            &format!("request body is not valid for this call: {detail}"),
        )
    };
    let raw = |path: &str, body: &'static str| {
        s.request(Method::POST, path, Some(ADMIN))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    };

    assert_eq!(
        s.send(raw(ACME_ALICE_LOCK, "{")).await,
        (
            400,
            invalid_body("EOF while parsing an object at line 1 column 1")
        )
    );
    assert_eq!(
        s.send(raw(ACME_ALICE_LOCK, r#"{"reasons": "typo"}"#)).await,
        (
            400,
            invalid_body(
                "unknown field `reasons`, expected `reason` or `until` at line 1 column 10"
            )
        )
    );
    assert_eq!(
        s.send(raw(
            "/management/v1/users/alice/_unlock",
            r#"{"force": true}"#
        ))
        .await,
        (
            400,
            invalid_body("unknown field `force`, expected `reason` at line 1 column 8")
        )
    );
    assert_eq!(
        s.send(raw("/management/v1/users", r#"{"userId": 7}"#))
            .await,
        (
            400,
            invalid_body("invalid type: integer `7`, expected a string at line 1 column 12")
        )
    );
    assert_eq!(
        s.post(
            "/management/v1/users",
            ADMIN,
            json!({"userId": "x", "state": "USER_STATE_LOCKED"}),
        )
        .await,
        (
            400,
            error(
                3,
                "USER-ARG-NAME",
                "a user is created in USER_STATE_ACTIVE or USER_STATE_INITIAL"
            )
        )
    );
    let text = s
        .request(Method::POST, ACME_ALICE_LOCK, Some(ADMIN))
        .header(CONTENT_TYPE, "text/plain")
        .body("{}");
    assert_eq!(
        s.send(text).await,
        (
            415,
            error(
                3,
                "USER-ARG-CONTENT-TYPE",
                "Content-Type must be application/json"
            )
        )
    );

    // 70 KiB of otherwise valid JSON.
    let reason = "x".repeat(70 * 1024);
    assert_eq!(
        s.post(ACME_ALICE_LOCK, ADMIN, json!({ "reason": reason }))
            .await,
        (
            413,
            error(
                8,
                "USER-ARG-BODY-SIZE",
                "request body must be at most 65536 bytes"
            )
        )
    );

    let long_id = "a".repeat(300);
    assert_eq!(
        s.post(
            &format!("/management/v1/users/{long_id}/_lock"),
            ADMIN,
            json!({})
        )
        .await,
        (
            400,
            error(3, "USER-ARG-USER-ID", "user id must be at most 200 bytes")
        )
    );
    assert_eq!(
        s.get("/management/v1/users/a%00b", ADMIN).await,
        (
            400,
            error(
                3,
                "USER-ARG-USER-ID",
                "user id must not contain control characters"
            )
        )
    );
    let (status, body) = s.get("/management/v1/users/%FF", ADMIN).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
    assert_eq!(body["details"][0]["id"], "USER-ARG-PATH");

    let with_org = |value: HeaderValue| {
        s.request(Method::POST, ACME_ALICE_LOCK, Some(ADMIN))
            .header(ORG_HEADER, value)
    };
    assert_eq!(
        s.send(with_org(HeaderValue::from_static("ac\tme"))).await,
        (
            400,
            error(
                3,
                "USER-ARG-ORG-ID",
                "organisation id must not contain control characters"
            )
        )
    );
    assert_eq!(
        s.send(with_org(HeaderValue::from_bytes(b"acme\xff").unwrap()))
            .await,
        (
            400,
            error(
                3,
                "USER-ARG-ORG-ID",
                "the x-zitadel-orgid header must be UTF-8 text"
            )
        )
    );

    assert_eq!(
        s.get("/management/v1/nothing-here", ADMIN).await,
        (404, error(5, "USER-ROUTE-NOT-FOUND", "No such endpoint"))
    );
    assert_eq!(
        s.get(ACME_ALICE_LOCK, ADMIN).await,
        (
            405,
            error(
                12,
                "USER-METHOD-NOT-ALLOWED",
                "Method not allowed on this endpoint"
            )
        )
    );

    // None of it changed alice or the server.
    let (status, alice) = s.get("/management/v1/users/alice", ADMIN).await;
    assert_eq!(status, 200);
    assert_eq!(alice["user"]["state"], "USER_STATE_ACTIVE");
    assert_eq!(alice["user"]["details"]["sequence"], "1");
}

#[tokio::test]
async fn connect_user_service_answers_in_connects_json() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    let alice = json!({"userId": "alice"});

    s.tick();
    assert_eq!(
        s.connect("LockUser", Some(ADMIN), alice.clone()).await,
        (200, v1(2, T0, T1, "acme"))
    );
    let details = v1_fields(2, T0, T1, "acme");
    assert_eq!(
        s.connect("GetUserByID", Some(READER), alice.clone()).await,
        (
            200,
            json!({
                "details": details,
                "user": {
                    "userId": "alice",
                    "details": details,
                    "state": "USER_STATE_LOCKED",
                    "username": "alice",
                },
            })
        )
    );
    assert_eq!(
        s.connect("LockUser", Some(ADMIN), alice.clone()).await,
        (
            400,
            connect_error(
                "failed_precondition",
                "User is already locked (USER-ALREADY-LOCKED)"
            )
        )
    );
    s.tick();
    assert_eq!(
        s.connect("UnlockUser", Some(ADMIN), alice.clone()).await,
        (200, v1(3, T0, T2, "acme"))
    );
    assert_eq!(
        s.connect("UnlockUser", Some(ADMIN), alice.clone()).await,
        (
            400,
            connect_error(
                "failed_precondition",
                "User is not locked (USER-NOT-LOCKED)"
            )
        )
    );
    assert_eq!(
        s.connect("GetUserByID", Some(GLOBEX), alice.clone()).await,
        (
            404,
            connect_error("not_found", "User not found (USER-NOT-FOUND)")
        )
    );
    assert_eq!(
        s.connect("LockUser", Some(READER), alice.clone()).await,
        (
            403,
            connect_error(
                "permission_denied",
                "Permission user.write is missing in the organisation (USER-PERMISSION)"
            )
        )
    );
    assert_eq!(
        s.connect("LockUser", None, alice.clone()).await,
        (
            401,
            connect_error(
                "unauthenticated",
                "Authorization with a bearer token is required (USER-UNAUTHENTICATED)"
            )
        )
    );
    assert_eq!(
        s.connect("FrobUser", Some(ADMIN), alice.clone()).await,
        (
            501,
            connect_error(
                "unimplemented",
                "/zitadel.user.v2.UserService/FrobUser is not implemented (USER-UNIMPLEMENTED)"
            )
        )
    );
    assert_eq!(
        s.connect("LockUser", Some(ADMIN), json!({"user_id": "alice"}))
            .await,
        (
            400,
            connect_error(
                "invalid_argument",
                "request body is not valid for this call: unknown field `user_id`, \
                 expected `userId` at line 1 column 10 (USER-ARG-BODY)"
            )
        )
    );
    assert_eq!(
        s.connect("LockUser", Some(ADMIN), json!({"userId": ""}))
            .await,
        (
            400,
            connect_error(
                "invalid_argument",
                "user id must not be empty (USER-ARG-USER-ID)"
            )
        )
    );

    s.tick();
    assert_eq!(
        s.connect("DeactivateUser", Some(ADMIN), alice.clone())
            .await,
        (200, v1(4, T0, T3, "acme"))
    );
    assert_eq!(
        s.connect("ReactivateUser", Some(ADMIN), alice.clone())
            .await,
        (200, v1(5, T0, T3, "acme"))
    );
    assert_eq!(
        s.connect("DeleteUser", Some(WRITER), alice.clone()).await,
        (
            403,
            connect_error(
                "permission_denied",
                "Permission user.delete is missing in the organisation (USER-PERMISSION)"
            )
        )
    );
    assert_eq!(
        s.connect("DeleteUser", Some(ADMIN), alice.clone()).await,
        (200, v1(6, T0, T3, "acme"))
    );
    assert_eq!(
        s.connect("GetUserByID", Some(ADMIN), alice).await,
        (
            404,
            connect_error("not_found", "User not found (USER-NOT-FOUND)")
        )
    );
}

#[tokio::test]
async fn failed_checks_up_to_the_policy_limit_lock_the_user() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    let check_path = "/management/v1/users/alice/_record_check";
    let failed = json!({"factor": "password", "succeeded": false});
    let succeeded = json!({"factor": "password", "succeeded": true});

    // The default policy never locks: no remaining attempts.
    assert_eq!(
        s.post(check_path, ADMIN, failed.clone()).await,
        (
            200,
            json!({
                "details": v1_fields(2, T0, T0, "acme"),
                "state": "USER_STATE_ACTIVE",
                "failedAttempts": 1,
                "locked": false,
            })
        )
    );

    let put_policy = |body: Value| {
        s.request(Method::PUT, "/management/v1/policies/lockout", Some(ADMIN))
            .json(&body)
    };
    let policy = json!({
        "policy": {
            "maxPasswordAttempts": "3",
            "maxOtpAttempts": "0",
            "showLockoutFailure": true,
            "isDefault": false,
            "lockDurationMs": null,
            "durationGrowth": 1,
            "maxLockDurationMs": null,
            "permanentAfter": 0,
            "changedBy": "acme-admin",
        },
        "details": {"changeDate": T0, "resourceOwner": "acme"},
    });
    assert_eq!(
        s.send(put_policy(json!({"maxPasswordAttempts": 3}))).await,
        (200, policy.clone())
    );
    assert_eq!(
        s.get("/management/v1/policies/lockout", READER).await,
        (200, policy)
    );
    assert_eq!(
        s.send(put_policy(json!({"maxPasswordAttempt": 3}))).await,
        (
            400,
            error(
                3,
                "USER-ARG-POLICY",
                "unknown lockout policy field `maxPasswordAttempt`"
            )
        )
    );
    assert_eq!(
        s.send(put_policy(json!({"durationGrowth": 0}))).await,
        (
            400,
            error(3, "USER-ARG-POLICY", "duration growth must be at least 1")
        )
    );
    // globex keeps the default.
    let (_, globex) = s.get("/management/v1/policies/lockout", GLOBEX).await;
    assert_eq!(
        globex,
        json!({
            "policy": {
                "maxPasswordAttempts": "0",
                "maxOtpAttempts": "0",
                "showLockoutFailure": true,
                "isDefault": true,
                "lockDurationMs": null,
                "durationGrowth": 1,
                "maxLockDurationMs": null,
                "permanentAfter": 0,
            },
            "details": {"resourceOwner": "globex"},
        })
    );

    // A success resets the count.
    s.tick();
    assert_eq!(
        s.post(check_path, ADMIN, succeeded.clone()).await,
        (
            200,
            json!({
                "details": v1_fields(3, T0, T1, "acme"),
                "state": "USER_STATE_ACTIVE",
                "failedAttempts": 0,
                "remainingAttempts": 3,
                "locked": false,
            })
        )
    );
    for (attempt, sequence) in [(1, 4), (2, 5)] {
        assert_eq!(
            s.post(check_path, ADMIN, failed.clone()).await,
            (
                200,
                json!({
                    "details": v1_fields(sequence, T0, T1, "acme"),
                    "state": "USER_STATE_ACTIVE",
                    "failedAttempts": attempt,
                    "remainingAttempts": 3 - attempt,
                    "locked": false,
                })
            )
        );
    }
    // The third failure is written together with the lock.
    assert_eq!(
        s.post(check_path, ADMIN, failed.clone()).await,
        (
            200,
            json!({
                "details": v1_fields(7, T0, T1, "acme"),
                "state": "USER_STATE_LOCKED",
                "failedAttempts": 3,
                "remainingAttempts": 0,
                "locked": true,
            })
        )
    );
    for body in [succeeded, failed] {
        assert_eq!(
            s.post(check_path, ADMIN, body).await,
            (400, error(9, "USER-LOGIN-LOCKED", "User is locked"))
        );
    }
    let (_, alice) = s.get("/management/v1/users/alice", ADMIN).await;
    assert_eq!(
        alice["user"]["lock"],
        json!({"lockedAt": T1, "cause": "lockout"})
    );
    assert_eq!(alice["user"]["details"]["sequence"], "7");

    assert_eq!(
        s.post(
            check_path,
            ADMIN,
            json!({"factor": "fingerprint", "succeeded": true})
        )
        .await,
        (
            400,
            error(
                3,
                "USER-ARG-NAME",
                "unknown authentication factor; accepted are password, totp, sms, email"
            )
        )
    );
}

#[tokio::test]
async fn concurrent_locks_on_one_user_succeed_exactly_once() {
    let s = Arc::new(Server::start().await);
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    let requests: Vec<_> = (0..32)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.post(ACME_ALICE_LOCK, ADMIN, json!({})).await })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    let won: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(won, [&(200, v1(2, T0, T0, "acme"))]);
    let lost: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert_eq!(lost.len(), 31);
    for answer in lost {
        assert_eq!(answer, &(400, already_locked()));
    }
    let (_, history) = s
        .post_empty("/management/v1/users/alice/changes/_search", ADMIN)
        .await;
    assert_eq!(history["result"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_demo_serves_its_organisations_users_and_tokens() {
    let repository = fresh_backend();
    demo::demo(Arc::clone(&repository), Tokens::new())
        .await
        .unwrap();
    // Setting it up again on the same storage keeps what is there.
    let state = demo::demo(repository, Tokens::from_json(TOKENS).unwrap())
        .await
        .unwrap();
    let s = Server::serve(state).await;

    let (status, bob) = s.get("/management/v1/users/bob", "acme-admin-token").await;
    assert_eq!(status, 200);
    assert_eq!(bob["user"]["state"], "USER_STATE_LOCKED");
    assert_eq!(bob["user"]["details"]["sequence"], "2");
    assert_eq!(
        bob["user"]["lock"]["reason"],
        "suspicious sign-in from a new country"
    );
    let (status, gina) = s
        .get("/management/v1/users/gina", "globex-admin-token")
        .await;
    assert_eq!(status, 200);
    assert_eq!(gina["user"]["details"]["resourceOwner"], "globex");
    assert_eq!(
        s.post_empty("/management/v1/users/carol/_lock", "acme-reader-token")
            .await,
        (403, denied("user.write"))
    );
    let root_search = s
        .request(
            Method::POST,
            "/management/v1/users/_search",
            Some("root-token"),
        )
        .header(ORG_HEADER, "globex");
    let (status, globex) = s.send(root_search).await;
    assert_eq!(status, 200);
    assert_eq!(globex["details"]["totalResult"], "1");
    // Extra tokens join the demo's.
    let (status, _) = s.get("/management/v1/users/alice", WRITER).await;
    assert_eq!(status, 200);

    let commands = demo::demo_curl_commands(&s.base);
    assert!(commands.contains(&format!("{}/management/v1/users/alice/_lock", s.base)));
    assert!(commands.contains("Bearer acme-admin-token"));
}

#[tokio::test]
async fn a_caller_who_cannot_log_in_is_forbidden_on_every_api() {
    let s = Server::start().await;
    // acme's admin is itself a user of acme, created and deactivated by root.
    s.create(ROOT, "acme-admin", "USER_STATE_ACTIVE").await;
    s.create(ROOT, "carol", "USER_STATE_ACTIVE").await;
    let (status, _) = s
        .post_empty("/management/v1/users/acme-admin/_deactivate", ROOT)
        .await;
    assert_eq!(status, 200);

    let cannot = error(
        7,
        "USER-CALLER-CANNOT-LOG-IN",
        "The calling user is not active and cannot act",
    );
    assert_eq!(
        s.post_empty("/management/v1/users/carol/_lock", ADMIN)
            .await,
        (403, cannot.clone())
    );
    assert_eq!(
        s.get("/management/v1/users/carol", ADMIN).await,
        (403, cannot.clone())
    );
    assert_eq!(
        s.post_empty("/resources/v3alpha/users/carol/_lock", ADMIN)
            .await,
        (403, cannot.clone())
    );
    assert_eq!(
        s.connect("LockUser", Some(ADMIN), json!({"userId": "carol"}))
            .await,
        (
            403,
            connect_error(
                "permission_denied",
                "The calling user is not active and cannot act (USER-CALLER-CANNOT-LOG-IN)"
            )
        )
    );

    // Root reactivates the admin, who acts again.
    let (status, _) = s
        .post_empty("/management/v1/users/acme-admin/_reactivate", ROOT)
        .await;
    assert_eq!(status, 200);
    let (status, body) = s
        .post_empty("/management/v1/users/carol/_lock", ADMIN)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn connect_addresses_users_by_id_in_any_organisation_the_caller_sees() {
    let s = Server::start().await;
    s.create(GLOBEX, "gina", "USER_STATE_ACTIVE").await;
    let gina = json!({"userId": "gina"});
    // No organisation header: root finds gina in globex by id alone.
    let (status, body) = s.connect("LockUser", Some(ROOT), gina.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["resourceOwner"], "globex");
    // acme's admin does not see her, exactly as a user that does not exist.
    let not_found = (
        404,
        connect_error("not_found", "User not found (USER-NOT-FOUND)"),
    );
    assert_eq!(
        s.connect("UnlockUser", Some(ADMIN), gina.clone()).await,
        not_found
    );
    assert_eq!(
        s.connect("UnlockUser", Some(ADMIN), json!({"userId": "nobody"}))
            .await,
        not_found
    );
}

#[tokio::test]
async fn every_lifecycle_command_can_say_why_and_changes_show_it() {
    let s = Server::start().await;
    s.create(ADMIN, "carol", "USER_STATE_ACTIVE").await;
    let base = "/management/v1/users/carol";
    for (path, reason) in [
        ("_lock", "phishing report"),
        ("_unlock", "verified by phone"),
        ("_deactivate", "left the company"),
        ("_reactivate", "rehired"),
    ] {
        s.tick();
        let (status, body) = s
            .post(
                &format!("{base}/{path}"),
                ADMIN,
                json!({ "reason": reason }),
            )
            .await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for blank in ["", "   ", "\t\n"] {
        let (status, body) = s
            .post(
                &format!("{base}/_deactivate"),
                ADMIN,
                json!({ "reason": blank }),
            )
            .await;
        assert_eq!(status, 400, "{blank:?}: {body}");
        assert_eq!(body["details"][0]["id"], "USER-ARG-REASON");
    }
    let (status, body) = s
        .post(&format!("{base}/changes/_search"), READER, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let payloads: Vec<&Value> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| &change["payload"])
        .collect();
    assert_eq!(
        payloads,
        [
            &json!({"state": "USER_STATE_ACTIVE"}),
            &json!({"reason": "phishing report", "cause": "command"}),
            &json!({"cause": "command", "reason": "verified by phone", "resetsEscalation": true}),
            &json!({"reason": "left the company"}),
            &json!({"reason": "rehired"}),
        ]
    );
}

#[tokio::test]
async fn the_event_api_searches_the_feed_by_position_and_scope() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    s.create(GLOBEX, "gina", "USER_STATE_ACTIVE").await;
    s.tick();
    let (status, _) = s.post_empty(ACME_ALICE_LOCK, ADMIN).await;
    assert_eq!(status, 200);
    let search = "/admin/v1/events/_search";
    let (status, all) = s.post(search, ROOT, json!({})).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["events"].as_array().unwrap().len(), 3);
    assert_eq!(
        all["events"][2],
        json!({
            "editor": {"userId": "acme-admin"},
            "aggregate": {"id": "alice", "type": "user", "resourceOwner": "acme"},
            "sequence": "3",
            "creationDate": T1,
            "payload": {"cause": "command"},
            "type": {"type": "user.locked"},
        })
    );
    // acme's reader sees acme's events only, from a position, by type.
    let (status, acme) = s
        .post(
            search,
            READER,
            json!({"sequence": "1", "eventTypes": ["user.locked"]}),
        )
        .await;
    assert_eq!(status, 200, "{acme}");
    let sequences: Vec<&str> = acme["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_str().unwrap())
        .collect();
    assert_eq!(sequences, ["3"]);
    let (status, past) = s.post(search, ROOT, json!({"sequence": "99"})).await;
    assert_eq!((status, past), (200, json!({"events": []})));
    let (status, body) = s.post(search, ROOT, json!({"limit": 1001})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .post(search, READER, json!({"resourceOwner": "globex"}))
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn the_event_stream_delivers_a_lock_made_by_another_client() {
    let s = Server::start().await;
    s.create(ADMIN, "alice", "USER_STATE_ACTIVE").await;
    let mut response = s
        .request(
            Method::GET,
            "/admin/v1/events/_stream?after=1",
            Some(READER),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (status, _) = s.post_empty(ACME_ALICE_LOCK, ADMIN).await;
    assert_eq!(status, 200);
    let mut received = String::new();
    while !received.contains("user.locked") {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("id: 2"), "{received}");
    assert!(
        received.contains(r#""aggregate":{"id":"alice""#),
        "{received}"
    );
    assert!(
        !received.contains("user.added"),
        "after=1 skips the creation: {received}"
    );
}
