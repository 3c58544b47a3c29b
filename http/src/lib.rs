//! `userstate-http`: the seeds' HTTP API of `userstate` as an axum
//! [`Router`] a host mounts next to its own routes, behind its own
//! authentication: the Management API v1, the Resources API v3alpha,
//! ZITADEL's v2 User service in Connect's JSON form, lockout policies and
//! the Event API with its stream.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::routing::get;
//! use userstate::{InMemoryRepository, UserService};
//! use userstate_http::Tokens;
//!
//! # async fn serve() -> std::io::Result<()> {
//! let tokens = Tokens::from_json(r#"{"s3cret": {"userId": "admin", "orgId": "acme",
//!     "grants": {"acme": ["user.read", "user.write"]}}}"#).unwrap();
//! let service = UserService::new(Arc::new(InMemoryRepository::new()), Arc::new(tokens.authorizer()));
//! let app = axum::Router::new()
//!     .route("/healthz", get(|| async { "ok" }))        // the host's own route
//!     .merge(userstate_http::router(service, tokens));  // every userstate endpoint
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Every request is authenticated first ([`Authenticate`], which the host
//! implements; [`Tokens`] is a bearer-token table for demos and tests), so
//! nothing, not even an unknown path, is answered to a caller without
//! credentials but 401, with one exception: `GET /openapi.json`, the
//! public OpenAPI 3.1 document of every endpoint ([`openapi`]). The optional [`ORG_HEADER`] names the organisation
//! a request targets, by default the caller's own. A user of another organisation is
//! answered like a user that does not exist (404), never 403.
//!
//! | endpoint | permission | 200 body |
//! |---|---|---|
//! | `POST /management/v1/users` `{"userId","state"?}` | `user.write` | `{"userId","details"}` |
//! | `GET /management/v1/users/{id}` | `user.read` | `{"user":{"id","state","details","lock"?,"failedChecks"?}}` |
//! | `POST /management/v1/users/_search` | `user.read` | `{"details":{"totalResult"},"result":[user]}` |
//! | `POST /management/v1/users/{id}/changes/_search` | `user.read` | `{"result":[change]}` |
//! | `POST /management/v1/users/{id}/_lock` `{"reason"?,"until"?}` | `user.write` | v1 details |
//! | `POST /management/v1/users/{id}/_unlock`, `/_deactivate`, `/_reactivate` | `user.write` | v1 details |
//! | `DELETE /management/v1/users/{id}` | `user.delete` | v1 details |
//! | `POST /management/v1/users/{id}/_record_check` `{"factor","succeeded"}` | `user.write` | `{"details","state","failedAttempts","remainingAttempts"?,"locked"}` |
//! | `PUT /management/v1/policies/lockout` (a [`userstate::LockoutPolicy`]) | `policy.write` | `{"policy":{"maxPasswordAttempts","maxOtpAttempts","showLockoutFailure","isDefault",...},"details"}` |
//! | `GET /management/v1/policies/lockout` | `user.read` | as the PUT |
//! | `POST /resources/v3alpha/users/{id}/_lock`, `/_unlock` | `user.write` | v3alpha details |
//! | `POST /admin/v1/events/_search` `{"sequence"?,"limit"?,"asc"?,"aggregateId"?,"eventTypes"?,"resourceOwner"?}` | `user.read` (events of the organisations where it is held) | `{"events":[{"editor","aggregate","sequence","creationDate","payload","type"}]}` |
//! | `GET /admin/v1/events/_stream?after=N` | as the search | server-sent events, one per event, as the search shows it |
//! | `POST /zitadel.user.v2.UserService/{LockUser,UnlockUser,DeactivateUser,ReactivateUser,DeleteUser,GetUserByID}` `{"userId"}` | as above | `{"details"}`, `GetUserByID`: `{"details","user"}` |
//! | `GET /openapi.json` | none | the OpenAPI 3.1 document of these endpoints |
//!
//! Errors are the seeds' body (`{"code":9,"message":...,"details":[...]}`)
//! with the status of the library's [`userstate::ErrorKind::http_status`];
//! 401 with code 16 without a known token; on the Connect paths they are
//! Connect's `{"code":"failed_precondition","message":...}` with Connect's
//! status for the code. Bodies are JSON of at most [`MAX_BODY_BYTES`] bytes;
//! an empty body counts as `{}`; unknown fields are refused.

mod auth;
mod body;
mod connect;
mod error;
mod events;
mod management;
mod openapi;
mod path;
mod resources;
mod serve;

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{
    DefaultMakeSpan, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::Level;
use userstate::UserService;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Authenticate, Tokens, ORG_HEADER};
pub use error::{ids, HttpError};
pub use serve::{
    serve, ServeOptions, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_BODY_TIMEOUT, DEFAULT_SHUTDOWN_GRACE,
};

/// The largest request body accepted (64 KiB); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares: the user service and how callers are
/// authenticated. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    service: UserService,
    auth: Arc<dyn Authenticate>,
}

impl AppState {
    /// The user service behind the endpoints.
    pub(crate) fn service(&self) -> &UserService {
        &self.service
    }
}

/// Every endpoint, on `service`, with callers authenticated by `auth`:
/// each request is authenticated before anything else (401 with the
/// seeds' error body otherwise), bodies are limited to
/// [`MAX_BODY_BYTES`], a handler that panics answers 500 with an error
/// body, and unknown routes (404) and methods (405) get error bodies too.
///
/// Requests are traced (`tracing`, a span per request; requests and
/// responses at DEBUG, so a client's mistakes never fill a log at INFO);
/// the server's own faults (Internal, Unavailable) are logged at ERROR and
/// WARN as they are answered.
pub fn router(service: UserService, auth: impl Authenticate) -> Router {
    let state = AppState {
        service,
        auth: Arc::new(auth),
    };
    let (routes, _) = api().split_for_parts();
    routes
        .fallback(|uri: axum::http::Uri| async move {
            if connect::is_connect_path(uri.path()) {
                connect::unimplemented(uri.path())
            } else {
                HttpError::route_not_found().into_response()
            }
        })
        .method_not_allowed_fallback(|| async { HttpError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate_every_request,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .with_state(state)
}

/// Every route with its documentation: one registration for both.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(management::routes())
        .merge(resources::routes())
        .merge(connect::routes())
        .merge(events::routes())
        .routes(routes!(openapi::document))
}

/// The OpenAPI 3.1 document of every route [`router`] mounts, generated
/// from the handlers' types as the routes are registered; [`router`] serves
/// it as JSON at `GET /openapi.json`, the one path answered without
/// authentication.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = api().split_for_parts().1;
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

/// A handler that panicked answers 500 with an error body; the panic is logged.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "handler panicked");
    HttpError::panicked().into_response()
}
