//! ZITADEL's v2 User service as Connect unary calls with JSON
//! (`POST /zitadel.user.v2.UserService/LockUser` with `{"userId":"..."}`).
//! Errors use Connect's JSON form and its HTTP status per code.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use userstate::wire::{DetailsBody, V1Details};
use userstate::{LockRequest, UserId};

use crate::auth::Authenticated;
use crate::body;
use crate::error::HttpError;
use crate::AppState;

/// The service's path prefix.
const SERVICE: &str = "/zitadel.user.v2.UserService";

/// Whether `path` is one of the Connect service's, whose errors take
/// Connect's form.
pub(crate) fn is_connect_path(path: &str) -> bool {
    path.starts_with(SERVICE)
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(&format!("{SERVICE}/{{method}}"), post(call))
}

/// The methods served; each takes `{"userId"}`.
#[derive(Debug, Clone, Copy)]
enum Method {
    Lock,
    Unlock,
    Deactivate,
    Reactivate,
    Delete,
    Get,
}

impl Method {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "LockUser" => Method::Lock,
            "UnlockUser" => Method::Unlock,
            "DeactivateUser" => Method::Deactivate,
            "ReactivateUser" => Method::Reactivate,
            "DeleteUser" => Method::Delete,
            "GetUserByID" => Method::Get,
            _ => return None,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserRequest {
    user_id: String,
}

/// `GetUserByID`'s user: ZITADEL's fields that the library knows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct User {
    user_id: UserId,
    details: V1Details,
    state: &'static str,
    /// The library has no usernames; the id stands in.
    username: UserId,
}

#[derive(Debug, Serialize)]
struct GetUserReply {
    details: V1Details,
    user: User,
}

/// One handler for every method, so every failure (unknown method, token,
/// body, the library's errors) goes through one conversion to Connect's form.
async fn call(State(state): State<AppState>, request: Request) -> Response {
    match dispatch(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_connect(),
    }
}

async fn dispatch(state: &AppState, request: Request) -> Result<Response, HttpError> {
    let name = request.uri().path().rsplit('/').next().unwrap_or_default();
    let method = Method::parse(name)
        .ok_or_else(|| HttpError::unimplemented(format!("{SERVICE}/{name} is not implemented")))?;
    // The v2 API carries no organisation: a user is addressed by id alone,
    // in whichever organisation the caller may see it.
    let caller = request
        .extensions()
        .get::<Authenticated>()
        .map(|Authenticated(caller)| caller.clone().by_id())
        .ok_or_else(|| HttpError::unauthenticated("Authorization is required"))?;
    let bytes = body::read(request).await?;
    let UserRequest { user_id } = body::parse(&bytes)?;
    let user = UserId::new(user_id)?;
    let service = state.service();
    let details = match method {
        Method::Lock => service.lock(&caller, &user, LockRequest::new()).await?,
        Method::Unlock => service.unlock(&caller, &user, None).await?,
        Method::Deactivate => service.deactivate(&caller, &user, None).await?,
        Method::Reactivate => service.reactivate(&caller, &user, None).await?,
        Method::Delete => service.remove(&caller, &user, None).await?,
        Method::Get => {
            let found = service.get(&caller, &user).await?;
            let details = found.details().to_v1().details;
            let reply = GetUserReply {
                details: details.clone(),
                user: User {
                    user_id: found.id.clone(),
                    details,
                    state: found.state.api_name(),
                    username: found.id,
                },
            };
            return Ok(Json(reply).into_response());
        }
    };
    let reply: DetailsBody<V1Details> = details.to_v1();
    Ok(Json(reply).into_response())
}
