//! The Resources API v3alpha endpoints of the seeds: lock and unlock,
//! answering `{"details":{"id","created","changed","owner":{"type","id"}}}`.

use axum::extract::State;
use axum::Json;
use userstate::wire::{DetailsBody, V3Details};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::HttpError;
use crate::management::{LockArguments, ReasonArguments};
use crate::openapi::{ErrorResponses, UserParams};
use crate::path::UserPath;
use crate::AppState;

/// The OpenAPI tag of these endpoints.
const TAG: &str = "Resources API v3alpha";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lock))
        .routes(routes!(unlock))
}

/// Takes the same optional body as the v1 lock (`reason`, `until`).
#[utoipa::path(post, operation_id = "v3alphaLockUser", path = "/resources/v3alpha/users/{id}/_lock", tag = TAG,
    params(UserParams),
    request_body(content = Option<LockArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The user was locked", body = DetailsBody<V3Details>), ErrorResponses))]
async fn lock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<LockArguments>,
) -> Result<Json<DetailsBody<V3Details>>, HttpError> {
    let request = arguments.into_request()?;
    let details = state.service().lock(&caller, &user, request).await?;
    Ok(Json(details.to_v3alpha()))
}

/// Takes an optional `{"reason": "..."}`.
#[utoipa::path(post, operation_id = "v3alphaUnlockUser", path = "/resources/v3alpha/users/{id}/_unlock", tag = TAG,
    params(UserParams),
    request_body(content = Option<ReasonArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "User successfully unlocked", body = DetailsBody<V3Details>), ErrorResponses))]
async fn unlock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<ReasonArguments>,
) -> Result<Json<DetailsBody<V3Details>>, HttpError> {
    let reason = arguments.into_reason()?;
    let details = state.service().unlock(&caller, &user, reason).await?;
    Ok(Json(details.to_v3alpha()))
}
