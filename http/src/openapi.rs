//! The OpenAPI 3.1 document of every endpoint, generated from the handlers'
//! types as the routes are registered (`utoipa-axum`), and served, without
//! authentication, at `GET /openapi.json`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use userstate::wire::{ErrorBody, ErrorDetail};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::auth::ORG_HEADER;
use crate::error::ConnectError;

/// The path the document is served at.
pub(crate) const PATH: &str = "/openapi.json";

/// The bearer scheme's name in the document.
const BEARER: &str = "bearer";

/// The document's frame: title, version, the bearer scheme required by
/// every operation that does not say otherwise, and the error schemas the
/// shared error responses refer to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "userstate HTTP API",
        description = "The seeds' HTTP API of userstate: the Management API v1, the \
            Resources API v3alpha, ZITADEL's v2 User service in Connect's JSON form, \
            lockout policies and the Event API with its stream."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    components(schemas(ErrorBody, ErrorDetail, ConnectError))
)]
pub(crate) struct ApiDoc;

/// Adds the bearer security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`; without a known token every \
                         request but `GET /openapi.json` is answered 401.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Whether a request is served without authentication: only the document.
pub(crate) fn is_public(method: &Method, path: &str) -> bool {
    path == PATH && (method == Method::GET || method == Method::HEAD)
}

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    crate::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
});

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get, operation_id = "openapiDocument",
    path = "/openapi.json",
    tag = "openapi",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API",
         content_type = "application/json", body = Object),
    )
)]
pub(crate) async fn document() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

/// An unsigned 64-bit integer as a JSON number or a decimal string (proto3
/// JSON writes 64-bit integers as strings); both are accepted.
pub(crate) struct Uint;

impl PartialSchema for Uint {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(u64::MAX as f64)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^\+?[0-9]{1,19}$")),
            )
            .description(Some("An unsigned integer, as a number or a decimal string"))
            .into()
    }
}

impl ToSchema for Uint {}

/// The user states as the API names them.
#[derive(ToSchema)]
#[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
pub(crate) enum UserStateName {
    /// Created, not yet active.
    USER_STATE_INITIAL,
    /// Active.
    USER_STATE_ACTIVE,
    /// Locked.
    USER_STATE_LOCKED,
    /// Deactivated.
    USER_STATE_INACTIVE,
    /// Removed.
    USER_STATE_DELETED,
}

fn org_header() -> Parameter {
    ParameterBuilder::new()
        .name(ORG_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The organisation the request targets; by default the caller's own.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .min_length(Some(1)),
        ))
        .build()
}

/// The optional org header.
pub(crate) struct OrgParams;

impl IntoParams for OrgParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![org_header()]
    }
}

/// The `{id}` of a user path, and the optional org header.
pub(crate) struct UserParams;

impl IntoParams for UserParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let id = ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The user's id."))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::String))
                    .min_length(Some(1))
                    .examples(["69629012906488334"]),
            ))
            .build();
        vec![id, org_header()]
    }
}

/// The statuses an error body is answered with, and `default` for any other.
const ERROR_STATUSES: [(&str, &str); 11] = [
    ("400", "Invalid argument or failed precondition"),
    ("401", "No known bearer token"),
    ("403", "Permission denied"),
    ("404", "No such user (or one of another organisation)"),
    ("408", "The request body did not arrive in time"),
    ("409", "Already exists, or a concurrent change"),
    ("413", "The request body is too large"),
    ("415", "The request body is not JSON"),
    ("500", "Internal error"),
    ("503", "Unavailable"),
    ("default", "An error"),
];

fn error_responses(
    statuses: &[(&str, &str)],
    schema: &str,
) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build();
            ((*status).to_owned(), RefOr::T(response))
        })
        .collect()
}

/// The error responses of the seeds' endpoints: the seeds' error body.
pub(crate) struct ErrorResponses;

impl IntoResponses for ErrorResponses {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&ERROR_STATUSES, "ErrorBody")
    }
}

/// The error responses of the Connect endpoints: Connect's error body, with
/// Connect's status for each code.
pub(crate) struct ConnectErrorResponses;

impl IntoResponses for ConnectErrorResponses {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(
            &[
                ("400", "invalid_argument, failed_precondition, out_of_range"),
                ("401", "unauthenticated"),
                ("403", "permission_denied"),
                ("404", "not_found"),
                ("409", "already_exists, aborted"),
                ("429", "resource_exhausted (the request body is too large)"),
                ("500", "internal"),
                ("501", "unimplemented"),
                ("503", "unavailable"),
                (
                    "504",
                    "deadline_exceeded (the request body did not arrive in time)",
                ),
                ("default", "An error in Connect's form"),
            ],
            "ConnectError",
        )
    }
}
