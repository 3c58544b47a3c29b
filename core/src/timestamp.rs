//! Points in time with millisecond precision, written as UTC RFC 3339 with
//! exactly three fractional digits and `Z`, as the seeds' wire shapes use.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::error::{ids, Error, Result};

/// Earliest representable instant: 0000-01-01T00:00:00.000Z.
const MIN_MILLIS: i64 = -62_167_219_200_000;
/// Latest representable instant: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: i64 = 253_402_300_799_999;

/// A UTC instant in whole milliseconds since the Unix epoch, between the years
/// 0 and 9999 so that it always formats as RFC 3339.
///
/// Human-readable serde formats (JSON) carry it as RFC 3339 text, compact
/// binary formats as the integer of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The instant `millis` milliseconds after the Unix epoch.
    ///
    /// # Errors
    /// InvalidArgument when outside the years 0 to 9999.
    pub fn from_unix_millis(millis: i64) -> Result<Self> {
        if (MIN_MILLIS..=MAX_MILLIS).contains(&millis) {
            Ok(Timestamp(millis))
        } else {
            Err(Error::invalid(
                ids::INVALID_TIME,
                "time must lie between the years 0 and 9999",
            ))
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 text with any offset and precision (truncated to milliseconds).
    ///
    /// # Errors
    /// InvalidArgument when the text is not RFC 3339 or out of range.
    pub fn parse_rfc3339(text: &str) -> Result<Self> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            Error::invalid(ids::INVALID_TIME, "time must be RFC 3339 text").with_source(e)
        })?;
        let millis = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(millis)
            .map_err(|_| Error::invalid(ids::INVALID_TIME, "time out of range"))
            .and_then(Timestamp::from_unix_millis)
    }

    /// This instant plus `millis` milliseconds, saturating at the representable range.
    pub fn plus_millis(self, millis: i64) -> Self {
        Timestamp(self.0.saturating_add(millis).clamp(MIN_MILLIS, MAX_MILLIS))
    }

    /// Now, by the system clock.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let millis = i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(MAX_MILLIS);
        Timestamp(millis.clamp(MIN_MILLIS, MAX_MILLIS))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let nanos = i128::from(self.0) * 1_000_000;
        // The constructor keeps the value within the years 0..=9999, which
        // always converts and formats.
        let text = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(FORMAT).ok())
            .ok_or(fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Timestamp::parse_rfc3339(&text).map_err(de::Error::custom)
        } else {
            let millis = i64::deserialize(deserializer)?;
            Timestamp::from_unix_millis(millis).map_err(de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = Timestamp::parse_rfc3339("2024-06-13T06:44:37.424Z").unwrap();
        assert_eq!(t.to_string(), "2024-06-13T06:44:37.424Z");
        assert_eq!(
            Timestamp::UNIX_EPOCH.to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        let offset = Timestamp::parse_rfc3339("2024-06-13T08:44:37.4249+02:00").unwrap();
        assert_eq!(offset, t);
    }

    #[test]
    fn range_is_enforced() {
        assert!(Timestamp::from_unix_millis(MAX_MILLIS).is_ok());
        assert!(Timestamp::from_unix_millis(MAX_MILLIS + 1).is_err());
        assert!(Timestamp::from_unix_millis(i64::MIN).is_err());
        assert_eq!(
            Timestamp::from_unix_millis(MIN_MILLIS).unwrap().to_string(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(MAX_MILLIS)
                .unwrap()
                .plus_millis(i64::MAX)
                .unix_millis(),
            MAX_MILLIS
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn json_is_text() {
        let t = Timestamp::from_unix_millis(1_718_261_077_424).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2024-06-13T06:44:37.424Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }
}
