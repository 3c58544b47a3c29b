//! The Resources API v3alpha endpoints of the seeds: lock and unlock,
//! answering `{"details":{"id","created","changed","owner":{"type","id"}}}`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use userstate::wire::{DetailsBody, V3Details};

use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::HttpError;
use crate::management::{LockArguments, ReasonArguments};
use crate::path::UserPath;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/resources/v3alpha/users/{id}/_lock", post(lock))
        .route("/resources/v3alpha/users/{id}/_unlock", post(unlock))
}

/// Takes the same optional body as the v1 lock (`reason`, `until`).
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
