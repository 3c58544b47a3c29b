//! Validated identifiers and free text: once constructed, a value is known to be
//! within the limits, so storage and wire code never see bad input.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};

/// Maximum length of a user or organisation id, in bytes.
pub const MAX_ID_BYTES: usize = 200;
/// Maximum length of a lock reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The rules every release applied to ids: what an id read from storage
/// must meet.
fn check_stored_id(value: &str, what: &str, error_id: &'static str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(
            error_id,
            format!("{what} must not be empty"),
        ));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            error_id,
            format!("{what} must be at most {MAX_ID_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            error_id,
            format!("{what} must not contain control characters"),
        ));
    }
    Ok(())
}

/// The rules for a new id: those of [`check_stored_id`], and nothing that
/// hides or fakes what an administrator reads.
fn check_id(value: &str, what: &str, error_id: &'static str) -> Result<()> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    check_stored_id(value, what, error_id)?;
    let refuse = |rule: &str| Err(Error::invalid(error_id, format!("{what} {rule}")));
    if value.trim() != value {
        return refuse("must not start or end with whitespace");
    }
    let invisible = value.chars().any(|c| {
        matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
    });
    if invisible {
        return refuse(
            "must not contain control, format (such as U+200B or U+202E) or line and \
             paragraph separator characters",
        );
    }
    if !value.chars().eq(value.nfc()) {
        return refuse("must be in Unicode normalisation form C (NFC)");
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $error_id:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id: non-empty, at most
            /// [`MAX_ID_BYTES`] bytes, no leading or trailing whitespace,
            /// no control, format (Cc, Cf) or line and paragraph separator
            /// (Zl, Zp) characters, and in Unicode normalisation form C.
            /// Ids are compared byte for byte, never normalised: an id in
            /// another form is refused, so two spellings of one name cannot
            /// be two users.
            ///
            /// # Errors
            /// InvalidArgument naming the field and the rule it breaks
            /// (never the value).
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                check_id(&value, $what, $error_id)?;
                Ok($name(value))
            }

            /// Wraps an id read from storage, by the rules every release
            /// applied (non-empty, at most [`MAX_ID_BYTES`] bytes, no
            /// control characters), so ids stored before the stricter
            /// rules of [`Self::new`] stay readable. For storage adapters.
            ///
            /// # Errors
            /// InvalidArgument when the value breaks one of those rules.
            pub fn from_stored(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                check_stored_id(&value, $what, $error_id)?;
                Ok($name(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                $name::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                $name::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// The id of a user. Ids are global: one id names one user in one
    /// organisation, and is never reused after removal.
    UserId,
    "user id",
    ids::INVALID_USER_ID
);

id_type!(
    /// The id of an organisation (tenant) that owns users.
    OrgId,
    "organisation id",
    ids::INVALID_ORG_ID
);

/// Why a command was given (a lock, unlock, deactivation, reactivation or
/// removal): free text of 1 to [`MAX_REASON_CHARS`] characters, not only
/// whitespace; line breaks and tabs are allowed, other control characters
/// are not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    /// Validates and wraps a reason.
    ///
    /// # Errors
    /// InvalidArgument when empty, longer than [`MAX_REASON_CHARS`] characters,
    /// or containing control characters other than `\n`, `\r` and `\t`.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if value.trim().is_empty() {
            return Err(Error::invalid(
                ids::INVALID_REASON,
                "reason must not be empty or only whitespace",
            ));
        }
        if value.chars().nth(MAX_REASON_CHARS).is_some() {
            return Err(Error::invalid(
                ids::INVALID_REASON,
                format!("reason must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Error::invalid(
                ids::INVALID_REASON,
                "reason must not contain control characters",
            ));
        }
        Ok(Reason(value))
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Reason {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Reason::new(value)
    }
}

impl From<Reason> for String {
    fn from(value: Reason) -> String {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn ids_reject_empty_long_and_control_characters() {
        for bad in ["", "a\0b", "tab\there", "line\nbreak"] {
            let err = UserId::new(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            assert_eq!(err.id(), ids::INVALID_USER_ID);
        }
        assert!(OrgId::new("x".repeat(MAX_ID_BYTES)).is_ok());
        let err = OrgId::new("x".repeat(MAX_ID_BYTES + 1)).unwrap_err();
        assert_eq!(err.id(), ids::INVALID_ORG_ID);
        // Multi-byte characters count in bytes.
        assert!(UserId::new("é".repeat(MAX_ID_BYTES / 2 + 1)).is_err());
    }

    #[test]
    fn sql_looking_ids_are_plain_text() {
        let id = UserId::new("'; DROP TABLE users; --").unwrap();
        assert_eq!(id.as_str(), "'; DROP TABLE users; --");
    }

    #[test]
    fn reasons_are_limited_in_characters_not_bytes() {
        assert!(Reason::new("é".repeat(MAX_REASON_CHARS)).is_ok());
        assert!(Reason::new("x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert!(Reason::new("").is_err());
        assert!(Reason::new("two\nlines").is_ok());
        assert!(Reason::new("bell\u{7}").is_err());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<UserId>("\"u1\"").unwrap().as_str(),
            "u1"
        );
    }
}
