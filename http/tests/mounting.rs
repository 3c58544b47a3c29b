//! The router as a host mounts it: next to the host's own routes, behind
//! the host's own authentication, with every request authenticated before
//! it is routed, and the library's error answered by a host's handler
//! through `?`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use userstate::{
    Caller, InMemoryAuthorizer, InMemoryRepository, OrgId, Permission, UserId, UserService,
};
use userstate_http::{Authenticate, HttpError, Tokens};

/// The host's authentication: a user a front proxy vouches for.
struct FromProxy;

#[async_trait]
impl Authenticate for FromProxy {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, HttpError> {
        let user = parts
            .headers
            .get("x-authenticated-user")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| HttpError::unauthenticated("no authenticated user"))?;
        Ok(Caller::new(UserId::new(user)?, OrgId::new("acme")?))
    }
}

fn service() -> UserService {
    let grants = InMemoryAuthorizer::new();
    let acme = OrgId::new("acme").unwrap();
    grants.grant(
        &UserId::new("admin").unwrap(),
        &acme,
        [Permission::Read, Permission::Write],
    );
    UserService::new(Arc::new(InMemoryRepository::new()), Arc::new(grants))
}

/// The host's own handler, answering the library's error with `?`.
async fn host_lookup(
    axum::extract::State(service): axum::extract::State<UserService>,
) -> Result<String, HttpError> {
    let admin = Caller::new(UserId::new("admin")?, OrgId::new("acme")?);
    let user = service.get(&admin, &UserId::new("nobody-here")?).await?;
    Ok(user.id.to_string())
}

fn app() -> Router {
    let service = service();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/host/lookup", get(host_lookup))
        .with_state(service.clone())
        .merge(userstate_http::router(service, FromProxy))
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, user: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(user) = user {
        request = request.header("x-authenticated-user", user);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn the_host_authenticates_and_its_own_routes_stay_its_own() {
    let app = app();
    let (status, _) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the host's route needs no userstate caller"
    );

    let (status, created) = send(
        &app,
        post(
            "/management/v1/users",
            Some("admin"),
            r#"{"userId":"alice"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["userId"], "alice");
    let (status, refused) = send(
        &app,
        post("/management/v1/users", None, r#"{"userId":"bob"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["code"], 16);
}

#[tokio::test]
async fn nothing_is_answered_before_authentication() {
    let app = app();
    // Unknown paths and unknown Connect methods: 401 without a caller,
    // their own answers with one.
    for (path, known) in [
        ("/management/v1/nothing-here", StatusCode::NOT_FOUND),
        (
            "/zitadel.user.v2.UserService/NoSuchMethod",
            StatusCode::NOT_IMPLEMENTED,
        ),
        (
            "/zitadel.user.v2.UserService/LockUser",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, body) = send(&app, post(path, None, r#"{"userId":"x"}"#)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let (status, _) = send(&app, post(path, Some("admin"), r#"{"userId":"x"}"#)).await;
        assert_eq!(status, known, "{path}");
    }
}

#[tokio::test]
async fn a_host_handler_answers_the_librarys_error_with_question_mark() {
    let (status, body) = send(
        &app(),
        Request::get("/host/lookup").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 5);
    assert_eq!(body["message"], "User not found (USER-NOT-FOUND)");
}

#[tokio::test]
async fn the_token_table_accepts_its_tokens_only() {
    let tokens = Tokens::from_json(r#"{"s3cret": {"userId": "admin", "orgId": "acme"}}"#).unwrap();
    let app = userstate_http::router(service(), tokens);
    let search = |token: &str| {
        Request::post("/management/v1/users/_search")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, search("s3cret")).await.0, StatusCode::OK);
    for wrong in ["s3cre", "s3crets", "S3cret", "x"] {
        assert_eq!(
            send(&app, search(wrong)).await.0,
            StatusCode::UNAUTHORIZED,
            "{wrong}"
        );
    }
}
