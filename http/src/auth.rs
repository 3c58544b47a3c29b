//! Who is calling: the [`Authenticate`] trait a host implements, a table of
//! bearer tokens that implements it, the org header that picks the
//! organisation a request targets, and the layer that authenticates every
//! request before it is routed.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use userstate::{Caller, Grants, InMemoryAuthorizer, OrgId, Permission, UserId};

use crate::error::HttpError;
use crate::AppState;

/// How a host tells who is calling: from a request's head (method, path,
/// headers) to the [`Caller`], in its own organisation (the router applies
/// [`ORG_HEADER`] after), or the error to answer: typically
/// [`HttpError::unauthenticated`] (401).
///
/// ```
/// use async_trait::async_trait;
/// use axum::http::request::Parts;
/// use userstate::{Caller, OrgId, UserId};
/// use userstate_http::{Authenticate, HttpError};
///
/// /// Trusts the user a front proxy has authenticated.
/// struct FromProxy;
///
/// #[async_trait]
/// impl Authenticate for FromProxy {
///     async fn authenticate(&self, parts: &Parts) -> Result<Caller, HttpError> {
///         let user = parts.headers.get("x-authenticated-user").and_then(|v| v.to_str().ok());
///         let user = user.ok_or_else(|| HttpError::unauthenticated("no authenticated user"))?;
///         Ok(Caller::new(UserId::new(user)?, OrgId::new("acme")?))
///     }
/// }
/// ```
#[async_trait]
pub trait Authenticate: Send + Sync + 'static {
    /// The caller of the request whose head is `parts`.
    ///
    /// # Errors
    /// The answer to give instead: 401 for missing or unknown credentials.
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, HttpError>;
}

/// The header naming the organisation a request targets (the seeds' org
/// header); without it, a request targets the caller's own organisation.
pub const ORG_HEADER: &str = "x-zitadel-orgid";

/// The bearer tokens the server accepts: each maps to a [`Caller`] (acting
/// user and its organisation) and the grants of that user.
///
/// The JSON form (`--tokens FILE`) is an object keyed by token:
///
/// ```json
/// {
///   "s3cret-acme-admin": {
///     "userId": "acme-admin",
///     "orgId": "acme",
///     "grants": {"acme": ["user.read", "user.write", "user.delete"]}
///   },
///   "s3cret-root": {"userId": "root", "orgId": "acme",
///                   "instanceGrants": ["user.read", "user.write", "user.delete"]}
/// }
/// ```
///
/// `grants` (per organisation) and `instanceGrants` (every organisation) are
/// both optional; unknown fields and permissions are refused. Grants belong
/// to the user, not the token: two tokens of one user share the union of
/// their grants.
///
/// ```
/// use userstate_http::Tokens;
/// let tokens = Tokens::from_json(r#"{"t1": {"userId": "u1", "orgId": "acme"}}"#).unwrap();
/// assert_eq!(tokens.caller("t1").unwrap().user_id.as_str(), "u1");
/// assert!(tokens.caller("t2").is_none());
/// ```
#[derive(Clone, Default)]
pub struct Tokens {
    callers: HashMap<String, Caller>,
    grants: HashMap<UserId, Grants>,
}

/// Shows how many tokens there are, never the tokens themselves (they are
/// secrets, and `AppState` may end up in a log).
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("tokens", &self.callers.len())
            .field("users", &self.grants.len())
            .finish()
    }
}

/// One entry of the JSON form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenEntry {
    user_id: UserId,
    org_id: OrgId,
    #[serde(default)]
    grants: HashMap<OrgId, BTreeSet<Permission>>,
    #[serde(default)]
    instance_grants: BTreeSet<Permission>,
}

impl Tokens {
    /// An empty table: every request is unauthenticated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the JSON form described on [`Tokens`].
    ///
    /// # Errors
    /// A message naming what is wrong: not JSON, an unknown field or
    /// permission, an invalid id, or an unusable token.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let entries: HashMap<String, TokenEntry> =
            serde_json::from_str(text).map_err(|e| format!("token table: {e}"))?;
        let mut tokens = Tokens::new();
        for (token, entry) in entries {
            let caller = Caller::new(entry.user_id, entry.org_id);
            let grants = Grants {
                orgs: entry.grants,
                instance: entry.instance_grants,
            };
            tokens.insert(token, caller, grants)?;
        }
        Ok(tokens)
    }

    /// Reads and parses a token file.
    ///
    /// # Errors
    /// The file cannot be read, or see [`Tokens::from_json`].
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds `token` for `caller`, whose user gains `grants`.
    ///
    /// # Errors
    /// An empty token, or one with characters other than visible ASCII
    /// (it could not be sent in an `Authorization` header).
    pub fn insert(
        &mut self,
        token: impl Into<String>,
        caller: Caller,
        grants: Grants,
    ) -> Result<(), String> {
        let token = token.into();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "token {token:?} must be non-empty visible ASCII without spaces"
            ));
        }
        self.add_grants(caller.user_id.clone(), grants);
        self.callers.insert(token, caller);
        Ok(())
    }

    /// Adds every token of `other`; a token in both takes `other`'s caller.
    pub fn extend(&mut self, other: Tokens) {
        self.callers.extend(other.callers);
        for (user, grants) in other.grants {
            self.add_grants(user, grants);
        }
    }

    fn add_grants(&mut self, user: UserId, grants: Grants) {
        let held = self.grants.entry(user).or_default();
        for (org, permissions) in grants.orgs {
            held.orgs.entry(org).or_default().extend(permissions);
        }
        held.instance.extend(grants.instance);
    }

    /// The caller a token stands for. Every known token is compared with
    /// `token` in constant time, so how long this takes tells nothing of
    /// how much of a token was right (only, at most, of its length).
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        let mut found = None;
        for (known, caller) in &self.callers {
            if bool::from(known.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(caller);
            }
        }
        found
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.callers.len()
    }

    /// True when no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }

    /// An authoriser granting what the tokens' users were granted.
    pub fn authorizer(&self) -> InMemoryAuthorizer {
        let authorizer = InMemoryAuthorizer::new();
        for (user, grants) in &self.grants {
            authorizer.set(user, grants.clone());
        }
        authorizer
    }
}

/// Accepts `Authorization: Bearer <token>` for the tokens of the table.
#[async_trait]
impl Authenticate for Tokens {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, HttpError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            HttpError::unauthenticated("Authorization with a bearer token is required")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| HttpError::unauthenticated("Authorization must be Bearer <token>"))?;
        self.caller(token)
            .cloned()
            .ok_or_else(|| HttpError::unauthenticated("Bearer token is not valid"))
    }
}

/// The caller of a request, targeting the organisation of the org header,
/// as [`authenticate_every_request`] found it.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| HttpError::unauthenticated("Authorization is required"))
    }
}

/// The layer in front of every route, the fallbacks included: a request is
/// authenticated before it is routed, so a caller without credentials
/// learns nothing, not even which paths exist.
pub(crate) async fn authenticate_every_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // The OpenAPI document, and nothing else, is public.
    if crate::openapi::is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let caller = match state.auth.authenticate(&parts).await {
        Ok(caller) => in_target_org(caller, &parts.headers),
        Err(refused) => Err(refused),
    };
    match caller {
        Ok(caller) => {
            parts.extensions.insert(Authenticated(caller));
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refused) if crate::connect::is_connect_path(parts.uri.path()) => refused.into_connect(),
        Err(refused) => refused.into_response(),
    }
}

/// `caller`, targeting the organisation the org header names.
///
/// # Errors
/// 400 for an org header that is not a valid organisation id.
fn in_target_org(caller: Caller, headers: &HeaderMap) -> Result<Caller, HttpError> {
    match headers.get(ORG_HEADER) {
        None => Ok(caller),
        Some(value) => {
            // Organisation ids are UTF-8 text; `to_str` would refuse all but ASCII.
            let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                HttpError::invalid(
                    userstate::ids::INVALID_ORG_ID,
                    format!("the {ORG_HEADER} header must be UTF-8 text"),
                )
            })?;
            Ok(caller.in_org(OrgId::new(text)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_refuse_unknown_fields_permissions_and_bad_ids() {
        let bad = [
            r#"{"t": {"userId": "u", "orgId": "o", "role": "admin"}}"#,
            r#"{"t": {"userId": "u", "orgId": "o", "grants": {"o": ["user.admin"]}}}"#,
            r#"{"t": {"userId": "", "orgId": "o"}}"#,
            r#"{"t": {"orgId": "o"}}"#,
            r#"{"has space": {"userId": "u", "orgId": "o"}}"#,
            r#"{"": {"userId": "u", "orgId": "o"}}"#,
            r#"["t"]"#,
        ];
        for text in bad {
            assert!(Tokens::from_json(text).is_err(), "{text}");
        }
    }

    #[test]
    fn grants_of_one_user_are_merged_across_tokens() {
        let tokens = Tokens::from_json(
            r#"{
                "a": {"userId": "u", "orgId": "acme", "grants": {"acme": ["user.read"]}},
                "b": {"userId": "u", "orgId": "acme", "grants": {"acme": ["user.write"]},
                      "instanceGrants": ["user.delete"]}
            }"#,
        )
        .unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(format!("{tokens:?}"), "Tokens { tokens: 2, users: 1 }");
        let grants = &tokens.grants[&UserId::new("u").unwrap()];
        let acme = OrgId::new("acme").unwrap();
        assert!(grants.allows(&acme, Permission::Read));
        assert!(grants.allows(&acme, Permission::Write));
        assert!(grants.allows(&OrgId::new("globex").unwrap(), Permission::Delete));
    }
}
