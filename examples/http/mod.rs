//! The HTTP service example: the library behind the seeds' endpoints
//! (Management API v1, Resources API v3alpha) and ZITADEL's v2 User service
//! in Connect's JSON form, on axum.
//!
//! Callers authenticate with `Authorization: Bearer <token>` (see
//! [`Tokens`]); the optional [`ORG_HEADER`] names the organisation a request
//! targets, by default the caller's own. A user of another organisation is
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
mod demo;
mod error;
mod events;
mod management;
mod path;
mod resources;

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use userstate::{Clock, UserRepository, UserService};

pub use auth::{Tokens, ORG_HEADER};
pub use demo::{demo, demo_curl_commands};
pub use error::{ids, HttpError};

/// The largest request body accepted (64 KiB); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares: the user service and the token table it
/// authenticates against. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    service: UserService,
    tokens: Arc<Tokens>,
}

impl AppState {
    /// A service on `repository` that accepts `tokens` and grants what they
    /// grant, using the system clock and the default lockout policy (never lock).
    pub fn new(repository: Arc<dyn UserRepository>, tokens: Tokens) -> Self {
        AppState {
            service: UserService::new(repository, Arc::new(tokens.authorizer())),
            tokens: Arc::new(tokens),
        }
    }

    /// Replaces the service's clock (tests use a [`userstate::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.service = self.service.with_clock(clock);
        self
    }

    /// The user service behind the endpoints.
    pub fn service(&self) -> &UserService {
        &self.service
    }

    /// The accepted tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

/// The service's routes, with request logging (`tracing`, requests and
/// responses at INFO), the body limit, panics turned into 500 error bodies,
/// and error bodies for unknown routes (404) and methods (405).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(management::routes())
        .merge(resources::routes())
        .merge(connect::routes())
        .merge(events::routes())
        .fallback(|| async { HttpError::route_not_found() })
        .method_not_allowed_fallback(|| async { HttpError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
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
