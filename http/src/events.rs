//! ZITADEL's Event API over the library's change feed: a search from a
//! position, and a live stream of the same events as server-sent events.
//! Scoped by the token's grants like every read: a caller sees the events
//! of organisations where it holds `user.read` (an instance-wide grant sees
//! all).

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use userstate::{FeedEvent, FeedQuery, OrgId, Timestamp, UserId, MAX_PAGE_SIZE};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::body::{self, JsonBody};
use crate::error::HttpError;
use crate::management::payload;
use crate::openapi::{ErrorResponses, OrgParams, Uint};
use crate::AppState;

/// The OpenAPI tag of these endpoints.
const TAG: &str = "Event API";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(stream))
}

/// `POST /admin/v1/events/_search`'s body, as ZITADEL's `ListEvents`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = EventSearchArguments)]
#[schema(example = json!({"sequence": "0", "limit": 100, "asc": true, "eventTypes": ["user.locked"]}))]
struct SearchArguments {
    /// The position to start after.
    #[serde(default, deserialize_with = "body::uint")]
    #[schema(value_type = Option<Uint>)]
    sequence: Option<u64>,
    /// 0 or absent: 100; at most 1000.
    #[serde(default, deserialize_with = "body::uint")]
    #[schema(value_type = Option<Uint>)]
    limit: Option<u64>,
    /// Only ascending order (`true` or absent) is supported.
    asc: Option<bool>,
    /// Only this user's events.
    aggregate_id: Option<String>,
    /// The only aggregate type is `user`.
    #[serde(default)]
    aggregate_types: Vec<String>,
    /// Only events of these types (`user.locked`, ...).
    #[serde(default)]
    event_types: Vec<String>,
    /// Only events of this organisation.
    resource_owner: Option<String>,
}

/// One event in the Event API's shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApiEvent {
    editor: Editor,
    aggregate: Aggregate,
    /// The feed position, as proto3 JSON writes 64-bit integers.
    #[schema(pattern = "^[0-9]+$")]
    sequence: String,
    #[schema(value_type = String, format = DateTime)]
    creation_date: Timestamp,
    /// What the event carries beyond its type.
    #[schema(value_type = Object)]
    payload: Value,
    #[serde(rename = "type")]
    event_type: EventType,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Editor {
    #[schema(value_type = String)]
    user_id: UserId,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Aggregate {
    #[schema(value_type = String)]
    id: UserId,
    /// Always `user`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "user")]
    aggregate_type: &'static str,
    #[schema(value_type = String)]
    resource_owner: OrgId,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiEventType)]
struct EventType {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "user.locked")]
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

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventSearchReply)]
struct SearchReply {
    events: Vec<ApiEvent>,
}

/// `POST /admin/v1/events/_search`: up to `limit` (default 100, at most
/// 1000) events after position `sequence`, oldest first, of the user
/// `aggregateId`, of the types `eventTypes`, of the organisation
/// `resourceOwner`. A position past the end is an empty list.
#[utoipa::path(post, operation_id = "searchEvents", path = "/admin/v1/events/_search", tag = TAG,
    params(OrgParams),
    request_body(content = Option<SearchArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The events", body = SearchReply), ErrorResponses))]
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StreamArguments {
    /// The position to start after (default 0: from the first event).
    #[serde(default)]
    after: u64,
}

/// `GET /admin/v1/events/_stream?after=N`: every event after position `N`
/// the caller may see, then each new one as it commits, one server-sent
/// event each (`id` the position, `data` the event as the search shows
/// it). Closing the connection ends it and frees what it held.
#[utoipa::path(get, operation_id = "streamEvents", path = "/admin/v1/events/_stream", tag = TAG,
    params(StreamArguments, OrgParams),
    responses(
        (status = 200, description = "Server-sent events that never end on their own: \
            `event: event` with `id` the position and `data` an event as the search \
            shows it; `event: error` with `data` an error body; comments as keep-alives",
         content_type = "text/event-stream", body = String),
        ErrorResponses))]
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
