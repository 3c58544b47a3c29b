//! ZITADEL's Event API over the library's change feed: a search from a
//! position, and a live stream of the same events as server-sent events.
//! Scoped by the token's grants like every read: a caller sees the events
//! of organisations where it holds `user.read` (an instance-wide grant sees
//! all).

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use userstate::{FeedEvent, FeedQuery, OrgId, Timestamp, UserId, MAX_PAGE_SIZE};

use crate::auth::Authenticated;
use crate::body::{self, JsonBody};
use crate::error::HttpError;
use crate::management::payload;
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/events/_search", post(search))
        .route("/admin/v1/events/_stream", get(stream))
}

/// `POST /admin/v1/events/_search`'s body, as ZITADEL's `ListEvents`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchArguments {
    /// The position to start after.
    #[serde(default, deserialize_with = "body::uint")]
    sequence: Option<u64>,
    #[serde(default, deserialize_with = "body::uint")]
    limit: Option<u64>,
    asc: Option<bool>,
    aggregate_id: Option<String>,
    #[serde(default)]
    aggregate_types: Vec<String>,
    #[serde(default)]
    event_types: Vec<String>,
    resource_owner: Option<String>,
}

/// One event in the Event API's shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiEvent {
    editor: Editor,
    aggregate: Aggregate,
    /// The feed position, as proto3 JSON writes 64-bit integers.
    sequence: String,
    creation_date: Timestamp,
    payload: Value,
    #[serde(rename = "type")]
    event_type: EventType,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Editor {
    user_id: UserId,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Aggregate {
    id: UserId,
    #[serde(rename = "type")]
    aggregate_type: &'static str,
    resource_owner: OrgId,
}

#[derive(Debug, Serialize)]
struct EventType {
    #[serde(rename = "type")]
    name: &'static str,
}

impl From<FeedEvent> for ApiEvent {
    fn from(entry: FeedEvent) -> Self {
        let event = entry.event;
        ApiEvent {
            editor: Editor {
                user_id: event.creator.clone(),
            },
            aggregate: Aggregate {
                id: event.user_id.clone(),
                aggregate_type: "user",
                resource_owner: event.org_id.clone(),
            },
            sequence: entry.position.to_string(),
            creation_date: event.created_at,
            payload: payload(&event.payload),
            event_type: EventType {
                name: event.event_type(),
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct SearchReply {
    events: Vec<ApiEvent>,
}

/// `POST /admin/v1/events/_search`: up to `limit` (default 100, at most
/// 1000) events after position `sequence`, oldest first, of the user
/// `aggregateId`, of the types `eventTypes`, of the organisation
/// `resourceOwner`. A position past the end is an empty list.
async fn search(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(arguments): JsonBody<SearchArguments>,
) -> Result<Json<SearchReply>, HttpError> {
    if arguments.asc == Some(false) {
        return Err(HttpError::invalid(
            userstate::ids::INVALID_QUERY,
            "only ascending order (oldest first) is supported",
        ));
    }
    if arguments.aggregate_types.iter().any(|t| t != "user") {
        return Err(HttpError::invalid(
            userstate::ids::INVALID_QUERY,
            "the only aggregate type is user",
        ));
    }
    let query = FeedQuery {
        after: arguments.sequence.unwrap_or(0),
        limit: match arguments.limit.unwrap_or(0) {
            0 => 100,
            n => u32::try_from(n).unwrap_or(MAX_PAGE_SIZE + 1),
        },
        org: arguments.resource_owner.map(OrgId::new).transpose()?,
        user: arguments.aggregate_id.map(UserId::new).transpose()?,
        event_types: arguments.event_types,
    };
    let page = state.service().feed(&caller, &query).await?;
    Ok(Json(SearchReply {
        events: page.events.into_iter().map(ApiEvent::from).collect(),
    }))
}

/// `GET /admin/v1/events/_stream`'s query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StreamArguments {
    #[serde(default)]
    after: u64,
}

/// `GET /admin/v1/events/_stream?after=N`: every event after position `N`
/// the caller may see, then each new one as it commits, one server-sent
/// event each (`id` the position, `data` the event as the search shows
/// it). Closing the connection ends it and frees what it held.
async fn stream(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    arguments: Result<Query<StreamArguments>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, HttpError> {
    let Query(arguments) = arguments.map_err(|e| {
        HttpError::invalid(
            userstate::ids::INVALID_QUERY,
            format!("the query is not valid for this call: {}", e.body_text()),
        )
    })?;
    // The first page checks the caller before the stream starts.
    let query = FeedQuery::after(arguments.after, MAX_PAGE_SIZE);
    state
        .service()
        .feed(&caller, &FeedQuery::after(arguments.after, 1))
        .await?;
    let events = state.service().follow(caller, query);
    Ok(Sse::new(sse_events(events)).keep_alive(KeepAlive::default()))
}

fn sse_events(
    events: impl Stream<Item = userstate::Result<FeedEvent>> + Send + 'static,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    events.map(|entry| {
        Ok(match entry {
            Ok(entry) => {
                let position = entry.position.to_string();
                let data = serde_json::to_string(&ApiEvent::from(entry))
                    .unwrap_or_else(|_| "{}".to_owned());
                SseEvent::default().id(position).event("event").data(data)
            }
            Err(error) => SseEvent::default()
                .event("error")
                .data(serde_json::to_string(&error.body()).unwrap_or_else(|_| "{}".to_owned())),
        })
    })
}
