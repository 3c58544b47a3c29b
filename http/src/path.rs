//! The user id in a request path, validated as a [`UserId`] (at most
//! [`userstate::MAX_ID_BYTES`] bytes, no control characters).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use userstate::UserId;

use crate::error::{ids, HttpError};

/// The `{id}` segment of the path.
///
/// Rejects with 400: `USER-ARG-USER-ID` for an empty, over-long or
/// control-character id, `USER-ARG-PATH` for a segment that is not
/// percent-encoded UTF-8.
#[derive(Debug, Clone)]
pub(crate) struct UserPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| HttpError::invalid(ids::INVALID_PATH, rejection.body_text()))?;
        Ok(UserPath(UserId::new(id)?))
    }
}
