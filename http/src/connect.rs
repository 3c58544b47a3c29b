//! ZITADEL's v2 User service as Connect unary calls with JSON
//! (`POST /zitadel.user.v2.UserService/LockUser` with `{"userId":"..."}`).
//! Errors use Connect's JSON form and its HTTP status per code.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use userstate::wire::V1Details;
use userstate::{LockRequest, UserId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::body;
use crate::error::HttpError;
use crate::openapi::ConnectErrorResponses;
use crate::AppState;

/// The service's path prefix.
const SERVICE: &str = "/zitadel.user.v2.UserService";

/// Whether `path` is one of the Connect service's, whose errors take
/// Connect's form.
pub(crate) fn is_connect_path(path: &str) -> bool {
    path.starts_with(SERVICE)
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lock_user))
        .routes(routes!(unlock_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(delete_user))
        .routes(routes!(get_user_by_id))
}

/// The answer to a method the service does not have (the router's
/// fallback, for a path under the service's prefix): 501 `unimplemented`.
pub(crate) fn unimplemented(path: &str) -> Response {
    HttpError::unimplemented(format!("{path} is not implemented")).into_connect()
}

/// The methods served; each takes `{"userId"}`. Any other name is answered
/// 501 `unimplemented` by the router's fallback.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// Locks the user.
    LockUser,
    /// Unlocks the user.
    UnlockUser,
    /// Deactivates the user.
    DeactivateUser,
    /// Reactivates the user.
    ReactivateUser,
    /// Removes the user.
    DeleteUser,
    /// Reads the user (the reply has `user` too).
    #[allow(clippy::upper_case_acronyms)]
    GetUserByID,
}

/// Every method's request: the user, by id alone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"userId": "69629012906488334"}))]
struct UserRequest {
    #[schema(min_length = 1)]
    user_id: String,
}

/// `GetUserByID`'s user: ZITADEL's fields that the library knows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct User {
    #[schema(value_type = String)]
    user_id: UserId,
    details: V1Details,
    #[schema(value_type = crate::openapi::UserStateName)]
    state: &'static str,
    /// The library has no usernames; the id stands in.
    #[schema(value_type = String)]
    username: UserId,
}

/// Every method's reply: `{"details"}`, and for `GetUserByID` the `user` too.
#[derive(Debug, Serialize, ToSchema)]
struct ConnectReply {
    details: V1Details,
    /// Only in `GetUserByID`'s reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    user: Option<User>,
}

/// The documentation and route of one method, answered by [`call`].
macro_rules! method {
    ($handler:ident, $method:ident, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, operation_id = stringify!($method),
            path = concat!("/zitadel.user.v2.UserService/", stringify!($method)),
            tag = "ZITADEL v2 UserService (Connect)", summary = $summary,
            request_body = UserRequest,
            responses((status = 200, description = "The method's reply", body = ConnectReply),
                ConnectErrorResponses))]
        async fn $handler(State(state): State<AppState>, request: Request) -> Response {
            call(&state, Method::$method, request).await
        }
    };
}

method!(lock_user, LockUser, "Locks the user.");
method!(unlock_user, UnlockUser, "Unlocks the user.");
method!(deactivate_user, DeactivateUser, "Deactivates the user.");
method!(reactivate_user, ReactivateUser, "Reactivates the user.");
method!(delete_user, DeleteUser, "Removes the user.");
method!(
    get_user_by_id,
    GetUserByID,
    "Reads the user (the reply has `user` too)."
);

/// Every method through one conversion of every failure (token, body, the
/// library's errors) to Connect's form.
async fn call(state: &AppState, method: Method, request: Request) -> Response {
    match dispatch(state, method, request).await {
        Ok(response) => response,
        Err(error) => error.into_connect(),
    }
}

async fn dispatch(
    state: &AppState,
    method: Method,
    request: Request,
) -> Result<Response, HttpError> {
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
        Method::LockUser => service.lock(&caller, &user, LockRequest::new()).await?,
        Method::UnlockUser => service.unlock(&caller, &user, None).await?,
        Method::DeactivateUser => service.deactivate(&caller, &user, None).await?,
        Method::ReactivateUser => service.reactivate(&caller, &user, None).await?,
        Method::DeleteUser => service.remove(&caller, &user, None).await?,
        Method::GetUserByID => {
            let found = service.get(&caller, &user).await?;
            let details = found.details().to_v1().details;
            let reply = ConnectReply {
                details: details.clone(),
                user: Some(User {
                    user_id: found.id.clone(),
                    details,
                    state: found.state.api_name(),
                    username: found.id,
                }),
            };
            return Ok(Json(reply).into_response());
        }
    };
    let reply = ConnectReply {
        details: details.to_v1().details,
        user: None,
    };
    Ok(Json(reply).into_response())
}
