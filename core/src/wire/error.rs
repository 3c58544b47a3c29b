//! The error body of the seeds' servers, and the gRPC code and HTTP status
//! each error kind answers with.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

impl ErrorKind {
    /// The gRPC status code the seeds' servers answer with.
    pub fn grpc_code(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 3,
            ErrorKind::NotFound => 5,
            ErrorKind::AlreadyExists => 6,
            ErrorKind::PermissionDenied => 7,
            ErrorKind::FailedPrecondition => 9,
            ErrorKind::Aborted | ErrorKind::Conflict => 10,
            ErrorKind::Internal => 13,
            ErrorKind::Unavailable => 14,
        }
    }

    /// The HTTP status the seeds' servers answer with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition => 400,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::Aborted | ErrorKind::Conflict => 409,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }
}

impl Error {
    /// The error body of the seeds' servers.
    pub fn body(&self) -> ErrorBody {
        let attempts = self.attempts();
        ErrorBody {
            code: self.kind().grpc_code(),
            message: self.to_string(),
            details: vec![ErrorDetail {
                type_url: ERROR_DETAIL_TYPE.to_owned(),
                id: self.id().to_owned(),
                message: self.message().to_owned(),
                failed_attempts: attempts.map(|a| a.failed),
                remaining_attempts: attempts.and_then(|a| a.remaining),
            }],
        }
    }
}

/// The `@type` of [`ErrorDetail`].
pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/userstate.v1.ErrorDetail";

/// The error body: `{"code":9,"message":"User is not locked (USER-NOT-LOCKED)","details":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "code": 9,
    "message": "User is not locked (USER-NOT-LOCKED)",
    "details": [{
        "@type": "type.googleapis.com/userstate.v1.ErrorDetail",
        "id": "USER-NOT-LOCKED",
        "message": "User is not locked"
    }]
})))]
pub struct ErrorBody {
    /// gRPC status code.
    pub code: u16,
    /// English message followed by the id in parentheses.
    pub message: String,
    /// One [`ErrorDetail`].
    pub details: Vec<ErrorDetail>,
}

/// The detail of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Always [`ERROR_DETAIL_TYPE`].
    #[serde(rename = "@type")]
    pub type_url: String,
    /// The stable error id.
    pub id: String,
    /// The English message without the id.
    pub message: String,
    /// Consecutive failed checks, on a failed authentication check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// Checks left before the lockout, on a failed authentication check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_attempts: Option<u32>,
}
