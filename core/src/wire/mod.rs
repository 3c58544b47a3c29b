//! The wire shapes of the seeds' identity server, grouped apart from the
//! service API: details in the Management API v1 and Resources API v3alpha
//! shapes, the error body, the gRPC code and HTTP status of each error
//! kind, and the API's enum names. Hosts that serve those APIs use them;
//! nothing else in the library depends on them.
//!
//! ```
//! use userstate::wire::{ErrorBody, V1Details};
//! use userstate::{Details, Error, ErrorKind, OrgId, Timestamp, UserId, UserState};
//!
//! # fn main() -> userstate::Result<()> {
//! let at = Timestamp::parse_rfc3339("2024-06-13T06:44:37.424Z")?;
//! let details = Details {
//!     id: UserId::new("69629012906488334")?,
//!     sequence: 2,
//!     creation_date: at,
//!     change_date: at,
//!     resource_owner: OrgId::new("69629023906488334")?,
//! };
//! let body: V1Details = details.to_v1().details;
//! assert_eq!(
//!     serde_json::to_string(&details.to_v1()).unwrap(),
//!     r#"{"details":{"sequence":"2","creationDate":"2024-06-13T06:44:37.424Z","changeDate":"2024-06-13T06:44:37.424Z","resourceOwner":"69629023906488334"}}"#
//! );
//! # let _ = body;
//! let err = Error::new(ErrorKind::FailedPrecondition, "USER-NOT-LOCKED", "User is not locked");
//! let body: ErrorBody = err.body();
//! assert_eq!((body.code, err.kind().http_status()), (9, 400));
//! assert_eq!(UserState::Locked.api_name(), "USER_STATE_LOCKED");
//! # Ok(()) }
//! ```

mod details;
mod error;
mod names;

pub use details::{DetailsBody, Owner, OwnerType, V1Details, V3Details};
pub use error::{ErrorBody, ErrorDetail, ERROR_DETAIL_TYPE};
