//! Error responses: every failure becomes the seeds' error body with the
//! status of its kind, or, on the Connect endpoints, Connect's JSON error.

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use userstate::wire::ErrorBody;
use userstate::{Error, ErrorKind};

/// The stable ids of errors the HTTP layer adds to the library's
/// ([`userstate::ids`]). They never change meaning once released.
pub mod ids {
    /// No `Authorization: Bearer` header, or a token the server does not know (401, code 16).
    pub const UNAUTHENTICATED: &str = "USER-UNAUTHENTICATED";
    /// The body is not JSON, or not the JSON this endpoint takes (400, code 3).
    pub const INVALID_BODY: &str = "USER-ARG-BODY";
    /// The body is larger than [`crate::MAX_BODY_BYTES`] (413, code 8).
    pub const BODY_TOO_LARGE: &str = "USER-ARG-BODY-SIZE";
    /// The body did not arrive within the server's body timeout (408, code 4).
    pub const BODY_TIMEOUT: &str = "USER-BODY-TIMEOUT";
    /// The body's `Content-Type` is not JSON (415, code 3).
    pub const CONTENT_TYPE: &str = "USER-ARG-CONTENT-TYPE";
    /// A path segment cannot be decoded (400, code 3).
    pub const INVALID_PATH: &str = "USER-ARG-PATH";
    /// No endpoint at this path (404, code 5).
    pub const ROUTE_NOT_FOUND: &str = "USER-ROUTE-NOT-FOUND";
    /// The endpoint exists but not for this HTTP method (405, code 12).
    pub const METHOD_NOT_ALLOWED: &str = "USER-METHOD-NOT-ALLOWED";
    /// The Connect service has no such method (code 12, Connect `unimplemented`).
    pub const UNIMPLEMENTED: &str = "USER-UNIMPLEMENTED";
}

/// gRPC codes the library's [`ErrorKind`]s do not cover.
const DEADLINE_EXCEEDED: u16 = 4;
const RESOURCE_EXHAUSTED: u16 = 8;
const UNIMPLEMENTED: u16 = 12;
const UNAUTHENTICATED: u16 = 16;

/// A failed request: an HTTP status and the seeds' error body
/// `{"code":9,"message":"...","details":[...]}`.
///
/// Converts from every [`userstate::Error`], with the status of
/// [`ErrorKind::http_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    status: StatusCode,
    body: ErrorBody,
}

impl HttpError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error body of the answer.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// 400, code 3: malformed input the library never saw.
    pub(crate) fn invalid(id: &'static str, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, id, message.into()).into()
    }

    /// 401, code 16: no caller could be established (for a host's
    /// [`Authenticate`](crate::Authenticate)).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::with_code(
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            ids::UNAUTHENTICATED,
            message,
        )
    }

    /// 413, code 8 (gRPC answers an oversized message with RESOURCE_EXHAUSTED).
    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self::with_code(
            StatusCode::PAYLOAD_TOO_LARGE,
            RESOURCE_EXHAUSTED,
            ids::BODY_TOO_LARGE,
            format!("request body must be at most {limit} bytes"),
        )
    }

    /// 408, code 4 (DEADLINE_EXCEEDED): the body did not arrive in time.
    pub(crate) fn body_timeout() -> Self {
        Self::with_code(
            StatusCode::REQUEST_TIMEOUT,
            DEADLINE_EXCEEDED,
            ids::BODY_TIMEOUT,
            "the request body was not received in time",
        )
    }

    /// 415, code 3.
    pub(crate) fn unsupported_content_type() -> Self {
        Self::invalid(ids::CONTENT_TYPE, "Content-Type must be application/json")
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
    }

    /// 404, code 5: no endpoint here.
    pub(crate) fn route_not_found() -> Self {
        Error::new(
            ErrorKind::NotFound,
            ids::ROUTE_NOT_FOUND,
            "No such endpoint",
        )
        .into()
    }

    /// 405, code 12: the path exists, the method does not.
    pub(crate) fn method_not_allowed() -> Self {
        Self::with_code(
            StatusCode::METHOD_NOT_ALLOWED,
            UNIMPLEMENTED,
            ids::METHOD_NOT_ALLOWED,
            "Method not allowed on this endpoint",
        )
    }

    /// Code 12 for an unknown Connect method (Connect answers it with 501).
    pub(crate) fn unimplemented(message: String) -> Self {
        Self::with_code(
            StatusCode::NOT_IMPLEMENTED,
            UNIMPLEMENTED,
            ids::UNIMPLEMENTED,
            message,
        )
    }

    /// 500, code 13, for a handler that panicked (the panic is logged, not shown).
    pub(crate) fn panicked() -> Self {
        Error::internal("The request could not be completed").into()
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A body for a gRPC code outside [`ErrorKind`]: the library formats
    /// message and detail, only the code differs.
    fn with_code(
        status: StatusCode,
        code: u16,
        id: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let mut body = Error::new(ErrorKind::InvalidArgument, id, message.into()).body();
        body.code = code;
        HttpError { status, body }
    }

    /// The answer in Connect's JSON error form,
    /// `{"code":"failed_precondition","message":"User is not locked (USER-NOT-LOCKED)"}`,
    /// with the HTTP status Connect's protocol assigns to the code.
    pub(crate) fn into_connect(self) -> Response {
        let (code, status) = connect_code(self.body.code);
        let body = ConnectError {
            code,
            message: self.body.message,
        };
        with_challenge(status, (status, Json(body)).into_response())
    }
}

impl From<Error> for HttpError {
    fn from(error: Error) -> Self {
        let status = StatusCode::from_u16(error.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // The body hides the cause; the log keeps it.
            tracing::error!(error = ?error, "request failed");
        }
        HttpError {
            status,
            body: error.body(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        with_challenge(self.status, (self.status, Json(self.body)).into_response())
    }
}

/// A 401 names the scheme the client should use.
fn with_challenge(status: StatusCode, mut response: Response) -> Response {
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Connect's JSON error body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"code": "failed_precondition", "message": "User is not locked (USER-NOT-LOCKED)"}))]
pub(crate) struct ConnectError {
    /// Connect's name of the code.
    #[schema(value_type = String, example = "failed_precondition")]
    code: &'static str,
    /// The message, with the error id in parentheses.
    message: String,
}

/// Connect's name and HTTP status of a gRPC code (connectrpc.com/docs/protocol,
/// "Error Codes").
fn connect_code(code: u16) -> (&'static str, StatusCode) {
    match code {
        1 => (
            "canceled",
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        ),
        3 => ("invalid_argument", StatusCode::BAD_REQUEST),
        4 => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        5 => ("not_found", StatusCode::NOT_FOUND),
        6 => ("already_exists", StatusCode::CONFLICT),
        7 => ("permission_denied", StatusCode::FORBIDDEN),
        8 => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        9 => ("failed_precondition", StatusCode::BAD_REQUEST),
        10 => ("aborted", StatusCode::CONFLICT),
        11 => ("out_of_range", StatusCode::BAD_REQUEST),
        12 => ("unimplemented", StatusCode::NOT_IMPLEMENTED),
        13 => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        14 => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        15 => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        16 => ("unauthenticated", StatusCode::UNAUTHORIZED),
        _ => ("unknown", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_kind_has_a_connect_code_with_the_protocols_status() {
        let kinds = [
            (ErrorKind::InvalidArgument, "invalid_argument", 400),
            (ErrorKind::NotFound, "not_found", 404),
            (ErrorKind::AlreadyExists, "already_exists", 409),
            (ErrorKind::PermissionDenied, "permission_denied", 403),
            (ErrorKind::FailedPrecondition, "failed_precondition", 400),
            (ErrorKind::Aborted, "aborted", 409),
            (ErrorKind::Unavailable, "unavailable", 503),
            (ErrorKind::Internal, "internal", 500),
        ];
        for (kind, name, status) in kinds {
            assert_eq!(
                connect_code(kind.grpc_code()),
                (name, StatusCode::from_u16(status).unwrap()),
                "{kind:?}"
            );
        }
        assert_eq!(
            connect_code(16),
            ("unauthenticated", StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn codes_outside_the_library_keep_its_message_format() {
        let error = HttpError::unauthenticated("Bearer token is not valid");
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error.body().code, 16);
        assert_eq!(
            error.body().message,
            "Bearer token is not valid (USER-UNAUTHENTICATED)"
        );
        assert_eq!(error.body().details[0].id, ids::UNAUTHENTICATED);
    }
}
