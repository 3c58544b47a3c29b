//! The Management API v1 endpoints: lifecycle commands answering the seeds'
//! v1 details, reads (get, search, changes), recording authentication checks,
//! and the organisation's lockout policy.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use userstate::wire::{DetailsBody, V1Details};
use userstate::{
    Command, Error, EventPayload, Factor, FailedChecks, HistoryQuery, InitialState, ListQuery,
    LockCause, LockRequest, LockoutPolicy, OrgId, PolicyInForce, Reason, Timestamp, User, UserId,
    UserState, MAX_PAGE_SIZE,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Authenticated;
use crate::body::{self, JsonBody};
use crate::error::HttpError;
use crate::openapi::{ErrorResponses, OrgParams, Uint, UserParams, UserStateName};
use crate::path::UserPath;
use crate::AppState;

/// Handler results: a JSON body, or an error body.
type Reply<T> = Result<Json<T>, HttpError>;

/// Page size of a search that names none.
const DEFAULT_SEARCH_LIMIT: u64 = 100;

/// The OpenAPI tag of these endpoints.
const TAG: &str = "Management API v1";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(search))
        .routes(routes!(get_user, remove))
        .routes(routes!(lock))
        .routes(routes!(unlock))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(changes))
        .routes(routes!(record_check))
        .routes(routes!(get_lockout_policy, set_lockout_policy))
}

/// The body of the commands other than lock: `{}`, nothing, or
/// `{"reason": "..."}`, recorded in the event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "verified by support"}))]
pub(crate) struct ReasonArguments {
    /// Recorded in the event: not empty or only whitespace, at most 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    reason: Option<String>,
}

impl ReasonArguments {
    /// The reason, validated (not empty or only whitespace, at most 500
    /// characters).
    pub(crate) fn into_reason(self) -> Result<Option<Reason>, Error> {
        self.reason.map(Reason::new).transpose()
    }
}

/// The body of a lock: `{}`, or a reason and an RFC 3339 expiry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"reason": "suspicious activity", "until": "2030-01-01T00:00:00Z"}))]
pub(crate) struct LockArguments {
    /// Recorded in the event: not empty or only whitespace, at most 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    reason: Option<String>,
    /// When a temporary lock ends (RFC 3339); without it the lock lasts until an unlock.
    #[schema(format = DateTime)]
    until: Option<String>,
}

impl LockArguments {
    /// Validates into the library's request (reason length, RFC 3339 time).
    pub(crate) fn into_request(self) -> Result<LockRequest, Error> {
        let mut request = LockRequest::new();
        if let Some(reason) = self.reason {
            request = request.reason(Reason::new(reason)?);
        }
        if let Some(until) = self.until {
            request = request.until(Timestamp::parse_rfc3339(&until)?);
        }
        Ok(request)
    }
}

/// The body of a create: the new user's id and, optionally, its state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"userId": "69629012906488334"}))]
struct CreateArguments {
    /// The new user's id.
    #[schema(min_length = 1)]
    user_id: String,
    /// `USER_STATE_ACTIVE` (the default) or `USER_STATE_INITIAL`; the
    /// library's own names (`active`, `initial`) are accepted too.
    #[schema(value_type = Option<String>, example = "USER_STATE_INITIAL")]
    state: Option<String>,
}

/// The created user's id and details.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[schema(value_type = String)]
    user_id: UserId,
    details: V1Details,
}

/// `POST /management/v1/users`: creates a user, active unless `state` says
/// `USER_STATE_INITIAL`.
#[utoipa::path(post, operation_id = "v1CreateUser", path = "/management/v1/users", tag = TAG,
    params(OrgParams),
    request_body = CreateArguments,
    responses((status = 200, description = "The user was created", body = Created), ErrorResponses))]
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(arguments): JsonBody<CreateArguments>,
) -> Reply<Created> {
    let user = UserId::new(arguments.user_id)?;
    let initial = match arguments
        .state
        .as_deref()
        .map(UserState::parse)
        .transpose()?
    {
        None | Some(UserState::Active) => InitialState::Active,
        Some(UserState::Initial) => InitialState::Initial,
        Some(_) => {
            return Err(HttpError::invalid(
                userstate::ids::INVALID_NAME,
                "a user is created in USER_STATE_ACTIVE or USER_STATE_INITIAL",
            ))
        }
    };
    let details = state.service().create(&caller, &user, initial).await?;
    Ok(Json(Created {
        user_id: user,
        details: details.to_v1().details,
    }))
}

/// `POST /management/v1/users/{id}/_lock`: locks the user, until an unlock
/// or until `until`.
#[utoipa::path(post, operation_id = "v1LockUser", path = "/management/v1/users/{id}/_lock", tag = TAG,
    params(UserParams),
    request_body(content = Option<LockArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The user was locked", body = DetailsBody<V1Details>), ErrorResponses))]
async fn lock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<LockArguments>,
) -> Reply<DetailsBody<V1Details>> {
    let request = arguments.into_request()?;
    let details = state.service().lock(&caller, &user, request).await?;
    Ok(Json(details.to_v1()))
}

/// A command whose only argument is an optional reason (body `{}` or
/// empty), answering v1 details: `_unlock`, `_deactivate`, `_reactivate`.
async fn reasoned_command(
    state: AppState,
    caller: userstate::Caller,
    user: UserId,
    arguments: ReasonArguments,
    command: fn(Option<Reason>) -> Command,
) -> Reply<DetailsBody<V1Details>> {
    let command = command(arguments.into_reason()?);
    let details = state.service().execute(&caller, &user, command).await?;
    Ok(Json(details.to_v1()))
}

/// `POST /management/v1/users/{id}/_unlock`: unlocks a locked user.
#[utoipa::path(post, operation_id = "v1UnlockUser", path = "/management/v1/users/{id}/_unlock", tag = TAG,
    params(UserParams),
    request_body(content = Option<ReasonArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The user was unlocked", body = DetailsBody<V1Details>), ErrorResponses))]
async fn unlock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<ReasonArguments>,
) -> Reply<DetailsBody<V1Details>> {
    reasoned_command(state, caller, user, arguments, |reason| Command::Unlock {
        reason,
    })
    .await
}

/// `POST /management/v1/users/{id}/_deactivate`: deactivates the user.
#[utoipa::path(post, operation_id = "v1DeactivateUser", path = "/management/v1/users/{id}/_deactivate", tag = TAG,
    params(UserParams),
    request_body(content = Option<ReasonArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The user was deactivated", body = DetailsBody<V1Details>), ErrorResponses))]
async fn deactivate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<ReasonArguments>,
) -> Reply<DetailsBody<V1Details>> {
    reasoned_command(state, caller, user, arguments, |reason| {
        Command::Deactivate { reason }
    })
    .await
}

/// `POST /management/v1/users/{id}/_reactivate`: reactivates a deactivated user.
#[utoipa::path(post, operation_id = "v1ReactivateUser", path = "/management/v1/users/{id}/_reactivate", tag = TAG,
    params(UserParams),
    request_body(content = Option<ReasonArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The user was reactivated", body = DetailsBody<V1Details>), ErrorResponses))]
async fn reactivate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<ReasonArguments>,
) -> Reply<DetailsBody<V1Details>> {
    reasoned_command(state, caller, user, arguments, |reason| {
        Command::Reactivate { reason }
    })
    .await
}

/// `DELETE /management/v1/users/{id}`: removes the user (needs `user.delete`).
#[utoipa::path(delete, operation_id = "v1RemoveUser", path = "/management/v1/users/{id}", tag = TAG,
    params(UserParams),
    responses((status = 200, description = "The user was removed", body = DetailsBody<V1Details>), ErrorResponses))]
async fn remove(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
) -> Reply<DetailsBody<V1Details>> {
    let details = state.service().remove(&caller, &user, None).await?;
    Ok(Json(details.to_v1()))
}

/// A user as the v1 reads show it. `lock` only while locked, `failedChecks`
/// only when a factor has failures (proto3 JSON leaves out empty fields).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserView {
    #[schema(value_type = String)]
    id: UserId,
    #[schema(value_type = UserStateName)]
    state: &'static str,
    details: V1Details,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    lock: Option<LockView>,
    /// Consecutive failed checks per factor; left out when none failed.
    #[serde(skip_serializing_if = "FailedChecks::is_empty")]
    #[schema(value_type = Option<FailedChecksView>, nullable = false)]
    failed_checks: FailedChecks,
}

/// [`FailedChecks`] as it is serialised.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct FailedChecksView {
    password: u32,
    totp: u32,
    sms: u32,
    email: u32,
}

/// The lock of a locked user: why (if said), until when (if temporary),
/// since when, and whether a caller (`command`) or the lockout policy
/// (`lockout`) locked it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LockView {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false)]
    reason: Option<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime, nullable = false)]
    expires_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    locked_at: Timestamp,
    #[schema(value_type = LockCauseName)]
    cause: LockCause,
}

/// [`LockCause`] as it is serialised.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
enum LockCauseName {
    /// A caller's lock command.
    Command,
    /// The lockout policy, after too many failed checks.
    Lockout,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            state: user.state.api_name(),
            details: user.details().to_v1().details,
            lock: user.lock.map(|lock| LockView {
                reason: lock.reason,
                expires_at: lock.expires_at,
                locked_at: lock.locked_at,
                cause: lock.cause,
            }),
            failed_checks: user.failed_checks,
            id: user.id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct UserReply {
    user: UserView,
}

/// `GET /management/v1/users/{id}`.
#[utoipa::path(get, operation_id = "v1GetUser", path = "/management/v1/users/{id}", tag = TAG,
    params(UserParams),
    responses((status = 200, description = "The user", body = UserReply), ErrorResponses))]
async fn get_user(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
) -> Reply<UserReply> {
    let user = state.service().get(&caller, &user).await?;
    Ok(Json(UserReply { user: user.into() }))
}

/// `{"query":{"offset":"0","limit":100,"asc":true},"queries":[{"stateQuery":{"state":"USER_STATE_LOCKED"}}]}`
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"query": {"offset": "0", "limit": 100, "asc": true},
    "queries": [{"stateQuery": {"state": "USER_STATE_LOCKED"}}]}))]
struct SearchArguments {
    #[serde(default)]
    query: Window,
    #[serde(default)]
    queries: Vec<SearchQuery>,
}

/// Offset and limit, as numbers or decimal strings. Results are ordered by
/// user id; only ascending order exists.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Window {
    #[serde(default, deserialize_with = "body::uint")]
    #[schema(value_type = Option<Uint>)]
    offset: Option<u64>,
    /// 0 or absent: 100; at most 1000.
    #[serde(default, deserialize_with = "body::uint")]
    #[schema(value_type = Option<Uint>)]
    limit: Option<u64>,
    /// Only ascending order (`true` or absent) is supported.
    asc: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchQuery {
    state_query: StateQuery,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    /// A state's API name (`USER_STATE_LOCKED`, `USER_STATE_UNSPECIFIED`
    /// for any) or the library's name (`locked`).
    #[schema(example = "USER_STATE_LOCKED")]
    state: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ListDetails {
    /// The number of matching users, as a decimal string.
    #[schema(pattern = "^[0-9]+$")]
    total_result: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct SearchReply {
    details: ListDetails,
    result: Vec<UserView>,
}

/// `POST /management/v1/users/_search`: the target organisation's users,
/// ordered by id, optionally in one state (several state queries must all
/// hold). `limit` 0 or absent means 100, at most 1000.
///
/// `totalResult` is the library's count (from the indexes). The library
/// pages by cursor, not by offset, so the window is cut out of the pages
/// up to `offset + limit`: O(offset) per search, and pages read at
/// slightly different moments under concurrent writes.
#[utoipa::path(post, operation_id = "v1SearchUsers", path = "/management/v1/users/_search", tag = TAG,
    params(OrgParams),
    request_body(content = Option<SearchArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "A page of the users", body = SearchReply), ErrorResponses))]
async fn search(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(arguments): JsonBody<SearchArguments>,
) -> Reply<SearchReply> {
    let Window { offset, limit, asc } = arguments.query;
    if asc == Some(false) {
        return Err(HttpError::invalid(
            userstate::ids::INVALID_QUERY,
            "only ascending order (by user id) is supported",
        ));
    }
    let offset = offset.unwrap_or(0);
    let limit = match limit.unwrap_or(0) {
        0 => DEFAULT_SEARCH_LIMIT,
        n if n > u64::from(MAX_PAGE_SIZE) => {
            return Err(HttpError::invalid(
                userstate::ids::INVALID_QUERY,
                format!("limit must be at most {MAX_PAGE_SIZE}"),
            ))
        }
        n => n,
    };
    let mut states = BTreeSet::new();
    for query in arguments.queries {
        match query.state_query.state.as_str() {
            "USER_STATE_UNSPECIFIED" => {}
            name => {
                states.insert(UserState::parse(name)?);
            }
        }
    }
    let mut states = states.into_iter();
    let mut query = ListQuery {
        state: states.next(),
        after: None,
        limit: MAX_PAGE_SIZE,
    };
    if states.next().is_some() {
        // No user is in two states at once. Still authorise and validate.
        query.limit = 1;
        state.service().list(&caller, &query).await?;
        return Ok(Json(SearchReply {
            details: ListDetails {
                total_result: "0".to_owned(),
            },
            result: Vec::new(),
        }));
    }
    let total = state.service().count(&caller, &query).await?;
    let mut skipped: u64 = 0;
    let mut result = Vec::new();
    while (result.len() as u64) < limit {
        let page = state.service().list(&caller, &query).await?;
        for user in page.items {
            if skipped < offset {
                skipped += 1;
            } else if (result.len() as u64) < limit {
                result.push(UserView::from(user));
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(Json(SearchReply {
        details: ListDetails {
            total_result: total.to_string(),
        },
        result,
    }))
}

/// `{"query":{"sequence":"0","limit":100,"asc":true}}`: events after
/// `sequence`, at most `limit` (0 or absent: 1000), oldest first.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"query": {"sequence": "0", "limit": 100, "asc": true}}))]
struct ChangesArguments {
    #[serde(default)]
    query: ChangesWindow,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangesWindow {
    /// The events after this sequence.
    #[serde(default, deserialize_with = "body::uint")]
    #[schema(value_type = Option<Uint>)]
    sequence: Option<u64>,
    /// 0 or absent: 1000, the most.
    #[serde(default, deserialize_with = "body::uint")]
    #[schema(value_type = Option<Uint>)]
    limit: Option<u64>,
    /// Only ascending order (`true` or absent) is supported.
    asc: Option<bool>,
}

/// One event of a user's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Change {
    /// The event's sequence, as a decimal string.
    #[schema(pattern = "^[0-9]+$")]
    sequence: String,
    #[schema(value_type = String, format = DateTime)]
    creation_date: Timestamp,
    event_type: EventType,
    #[schema(value_type = String)]
    editor_id: UserId,
    #[schema(value_type = String)]
    resource_owner_id: OrgId,
    /// What the event carries beyond its type.
    #[schema(value_type = Object)]
    payload: Value,
}

#[derive(Debug, Serialize, ToSchema)]
struct EventType {
    #[schema(value_type = String, example = "user.locked")]
    key: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
struct ChangesReply {
    result: Vec<Change>,
}

/// `POST /management/v1/users/{id}/changes/_search`: the user's events,
/// oldest first: `{"result":[{"sequence":"1","creationDate":...,
/// "eventType":{"key":"user.added"},"editorId":...,"resourceOwnerId":...,
/// "payload":{"state":"USER_STATE_ACTIVE"}}]}`. The history of a removed
/// user stays readable.
#[utoipa::path(post, operation_id = "v1ListUserChanges", path = "/management/v1/users/{id}/changes/_search", tag = TAG,
    params(UserParams),
    request_body(content = Option<ChangesArguments>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The user's events", body = ChangesReply), ErrorResponses))]
async fn changes(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<ChangesArguments>,
) -> Reply<ChangesReply> {
    let ChangesWindow {
        sequence,
        limit,
        asc,
    } = arguments.query;
    if asc == Some(false) {
        return Err(HttpError::invalid(
            userstate::ids::INVALID_QUERY,
            "only ascending order (oldest first) is supported",
        ));
    }
    let query = HistoryQuery {
        after: sequence
            .filter(|&s| s > 0)
            .map(userstate::Cursor::after_sequence),
        // Out of range values are refused by the library's validation.
        limit: match limit.unwrap_or(0) {
            0 => MAX_PAGE_SIZE,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        },
    };
    let events = state.service().history(&caller, &user, query).await?;
    let result = events
        .items
        .into_iter()
        .map(|event| Change {
            sequence: event.sequence.to_string(),
            creation_date: event.created_at,
            event_type: EventType {
                key: event.event_type(),
            },
            payload: payload(&event.payload),
            editor_id: event.creator,
            resource_owner_id: event.org_id,
        })
        .collect();
    Ok(Json(ChangesReply { result }))
}

/// What an event carries beyond its type: the created state, a lock's
/// reason, expiry and cause, an unlock's cause and whether it reset the
/// lockout escalation, the reason of any command that gave one, a check's
/// factor.
pub(crate) fn payload(payload: &EventPayload) -> Value {
    match payload {
        EventPayload::Added { state } => {
            json!({ "state": UserState::from(*state).api_name() })
        }
        EventPayload::Locked {
            reason,
            expires_at,
            cause,
        } => {
            let mut fields = Map::new();
            if let Some(reason) = reason {
                fields.insert("reason".into(), json!(reason));
            }
            if let Some(at) = expires_at {
                fields.insert("expiresAt".into(), json!(at));
            }
            fields.insert("cause".into(), json!(cause));
            Value::Object(fields)
        }
        EventPayload::Unlocked {
            cause,
            reason,
            resets_escalation,
        } => {
            let mut fields = Map::new();
            fields.insert("cause".into(), json!(cause));
            if let Some(reason) = reason {
                fields.insert("reason".into(), json!(reason));
            }
            if *resets_escalation {
                fields.insert("resetsEscalation".into(), json!(true));
            }
            Value::Object(fields)
        }
        EventPayload::Deactivated { reason }
        | EventPayload::Reactivated { reason }
        | EventPayload::Removed { reason } => match reason {
            Some(reason) => json!({ "reason": reason }),
            None => json!({}),
        },
        EventPayload::CheckSucceeded { factor } | EventPayload::CheckFailed { factor } => {
            json!({ "factor": factor })
        }
        _ => json!({}),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"factor": "password", "succeeded": false}))]
struct CheckArguments {
    /// `password`, `totp`, `sms` or `email`.
    #[schema(example = "password")]
    factor: String,
    succeeded: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CheckReply {
    details: V1Details,
    #[schema(value_type = UserStateName)]
    state: &'static str,
    failed_attempts: u32,
    /// Left out when the policy never locks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    remaining_attempts: Option<u32>,
    locked: bool,
}

/// `POST /management/v1/users/{id}/_record_check`: records the outcome of a
/// check the host made (`factor`: `password`, `totp`, `sms`, `email`). The
/// failure that reaches the organisation's limit locks the user (`locked`:
/// true); a check on a locked user is refused with 400 `User is locked`.
/// `remainingAttempts` is left out when the policy never locks.
#[utoipa::path(post, operation_id = "v1RecordCheck", path = "/management/v1/users/{id}/_record_check", tag = TAG,
    params(UserParams),
    request_body = CheckArguments,
    responses((status = 200, description = "The check was recorded", body = CheckReply), ErrorResponses))]
async fn record_check(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    UserPath(user): UserPath,
    JsonBody(arguments): JsonBody<CheckArguments>,
) -> Reply<CheckReply> {
    let factor = Factor::parse(&arguments.factor)?;
    let record = state
        .service()
        .record_check(&caller, &user, factor, arguments.succeeded)
        .await?;
    Ok(Json(CheckReply {
        details: record.details.to_v1().details,
        state: record.state.api_name(),
        failed_attempts: record.failed_attempts,
        remaining_attempts: record.remaining_attempts,
        locked: record.locked,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PolicyReply {
    policy: PolicyView,
    details: PolicyDetails,
}

/// A lockout policy in ZITADEL's `GetLockoutPolicy` shape where its fields
/// exist (64-bit integers as strings, `showLockoutFailure`, `isDefault`);
/// the library's other fields keep their names.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PolicyView {
    #[schema(pattern = "^[0-9]+$")]
    max_password_attempts: String,
    #[schema(pattern = "^[0-9]+$")]
    max_otp_attempts: String,
    show_lockout_failure: bool,
    is_default: bool,
    #[schema(required = true)]
    lock_duration_ms: Option<u64>,
    duration_growth: u32,
    #[schema(required = true)]
    max_lock_duration_ms: Option<u64>,
    permanent_after: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false)]
    changed_by: Option<UserId>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PolicyDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime, nullable = false)]
    change_date: Option<Timestamp>,
    #[schema(value_type = String)]
    resource_owner: OrgId,
}

/// A [`LockoutPolicy`] as the PUT takes it: every field optional (missing
/// ones take their defaults), unknown ones refused.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"maxPasswordAttempts": 3, "lockDurationMs": 60000, "durationGrowth": 2}))]
#[allow(dead_code)]
pub(crate) struct LockoutPolicyBody {
    /// Failed password checks that lock the user; 0 (the default) = never lock.
    #[serde(default)]
    max_password_attempts: u32,
    /// Failed checks of one OTP factor that lock the user; 0 (the default) = never lock.
    #[serde(default)]
    max_otp_attempts: u32,
    /// Length of a lockout in milliseconds; null or absent locks until an unlock.
    lock_duration_ms: Option<u64>,
    /// Each further lockout lasts this many times longer (default 1).
    #[serde(default)]
    duration_growth: u32,
    /// Upper bound for a grown lockout duration, in milliseconds.
    max_lock_duration_ms: Option<u64>,
    /// After this many temporary lockouts the next one is permanent; 0 (the default) = never.
    #[serde(default)]
    permanent_after: u32,
    /// Whether a failed check's error carries the attempt counts (default true).
    #[serde(default)]
    show_attempts: bool,
}

impl From<PolicyInForce> for PolicyReply {
    fn from(in_force: PolicyInForce) -> Self {
        let p = in_force.policy;
        let (changed_by, change_date) = match in_force.changed {
            Some((by, at)) => (Some(by), Some(at)),
            None => (None, None),
        };
        PolicyReply {
            policy: PolicyView {
                max_password_attempts: p.max_password_attempts.to_string(),
                max_otp_attempts: p.max_otp_attempts.to_string(),
                show_lockout_failure: p.show_attempts,
                is_default: in_force.is_default,
                lock_duration_ms: p.lock_duration_ms,
                duration_growth: p.duration_growth,
                max_lock_duration_ms: p.max_lock_duration_ms,
                permanent_after: p.permanent_after,
                changed_by,
            },
            details: PolicyDetails {
                change_date,
                resource_owner: in_force.org,
            },
        }
    }
}

/// `PUT /management/v1/policies/lockout`: sets and stores the lockout
/// policy of the target organisation (the org header's, by default the
/// caller's own), in force for the next command of every process on the
/// database and after restarts; needs `policy.write` there. The body is a
/// [`LockoutPolicy`] in camelCase; missing fields take their defaults,
/// unknown ones are refused. Answers the policy now in force.
#[utoipa::path(put, operation_id = "v1SetLockoutPolicy", path = "/management/v1/policies/lockout", tag = TAG,
    params(OrgParams),
    request_body(content = Option<LockoutPolicyBody>, description = "Optional; an empty body counts as `{}`"),
    responses((status = 200, description = "The policy now in force", body = PolicyReply), ErrorResponses))]
async fn set_lockout_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(fields): JsonBody<Map<String, Value>>,
) -> Reply<PolicyReply> {
    let policy = parse_policy(fields)?;
    let in_force = state.service().set_lockout_policy(&caller, policy).await?;
    Ok(Json(in_force.into()))
}

/// `GET /management/v1/policies/lockout`: the policy in force for the target
/// organisation (its own, or the instance default, `isDefault`); needs
/// `user.read`.
#[utoipa::path(get, operation_id = "v1GetLockoutPolicy", path = "/management/v1/policies/lockout", tag = TAG,
    params(OrgParams),
    responses((status = 200, description = "The policy in force", body = PolicyReply), ErrorResponses))]
async fn get_lockout_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Reply<PolicyReply> {
    let in_force = state.service().lockout_policy(&caller).await?;
    Ok(Json(in_force.into()))
}

/// The core type fills missing fields with defaults and ignores unknown ones;
/// a misspelt limit must not silently mean "never lock", so unknown fields
/// are refused here.
fn parse_policy(fields: Map<String, Value>) -> Result<LockoutPolicy, HttpError> {
    let invalid = |message: String| HttpError::invalid(userstate::ids::INVALID_POLICY, message);
    let known = match serde_json::to_value(LockoutPolicy::default()) {
        Ok(Value::Object(known)) => known,
        _ => return Err(Error::internal("lockout policy is not a JSON object").into()),
    };
    if let Some(unknown) = fields.keys().find(|key| !known.contains_key(*key)) {
        return Err(invalid(format!("unknown lockout policy field `{unknown}`")));
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| invalid(format!("lockout policy is not valid: {e}")))
}
