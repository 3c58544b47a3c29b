//! Request bodies: JSON of at most [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES)
//! bytes, where an empty body counts as `{}`, and every failure is an error
//! body rather than axum's plain-text rejections.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::error::{ids, HttpError};
use crate::MAX_BODY_BYTES;

/// A JSON request body deserialised into `T`.
///
/// Rejects with 415 for a `Content-Type` that is not JSON (a missing one is
/// accepted), 413 for a body over the limit, and 400 for anything that is
/// not the JSON `T` expects.
#[derive(Debug, Clone)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(request).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Reads a request's body after checking its content type.
///
/// # Errors
/// 415 for a content type other than JSON; 413 over the limit (set by the
/// router's `DefaultBodyLimit`); 400 when the body cannot be read.
pub(crate) async fn read(request: Request) -> Result<Bytes, HttpError> {
    if !is_json(request.headers()) {
        return Err(HttpError::unsupported_content_type());
    }
    Bytes::from_request(request, &())
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => HttpError::body_too_large(MAX_BODY_BYTES),
            _ if timed_out(&rejection) => HttpError::body_timeout(),
            _ => HttpError::invalid(ids::INVALID_BODY, rejection.body_text()),
        })
}

/// Whether reading the body failed because the client did not send it
/// within [`ServeOptions::request_body_timeout`](crate::ServeOptions).
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Parses a body as `T`; an empty (or all-whitespace) body counts as `{}`.
///
/// # Errors
/// 400 with serde's description of what does not fit.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let json: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(json).map_err(|e| {
        HttpError::invalid(
            ids::INVALID_BODY,
            format!("request body is not valid for this call: {e}"),
        )
    })
}

/// `application/json`, `application/<anything>+json`, or no content type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises an optional unsigned integer given as a JSON number or as a
/// decimal string (proto3 JSON writes 64-bit integers as strings).
pub(crate) fn uint<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Uint;

    impl Visitor<'_> for Uint {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned integer, as a number or a decimal string")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            u64::try_from(value)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            value
                .parse()
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(Uint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Window {
        #[serde(default, deserialize_with = "uint")]
        limit: Option<u64>,
    }

    #[test]
    fn integers_come_as_numbers_or_strings() {
        let parsed = |text: &str| parse::<Window>(text.as_bytes()).map(|w| w.limit);
        assert_eq!(parsed(r#"{"limit": 7}"#), Ok(Some(7)));
        assert_eq!(parsed(r#"{"limit": "7"}"#), Ok(Some(7)));
        assert_eq!(parsed(r#"{"limit": null}"#), Ok(None));
        assert_eq!(parsed(""), Ok(None));
        assert_eq!(parsed(" \n"), Ok(None));
        for bad in [
            r#"{"limit": -1}"#,
            r#"{"limit": "x"}"#,
            r#"{"limit": 1.5}"#,
            "{",
            "[]x",
        ] {
            let error = parsed(bad).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(error.body().details[0].id, ids::INVALID_BODY);
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(is_json(&HeaderMap::new()));
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
    }
}
