//! How sled's errors become the library's: I/O trouble is Unavailable (the
//! storage cannot be reached, e.g. a full disk or a database locked by
//! another process), everything else is Internal.

use userstate::Error;

/// The library error for a sled error, keeping it as the source.
pub(crate) fn from_sled(error: sled::Error) -> Error {
    match error {
        sled::Error::Io(_) => {
            Error::unavailable(format!("sled storage I/O failed: {error}")).with_source(error)
        }
        sled::Error::Corruption { .. } => {
            Error::corrupt("sled reports corrupt storage").with_source(error)
        }
        _ => Error::internal(format!("sled failed: {error}")).with_source(error),
    }
}

/// The library error for a file-system error while syncing or opening.
pub(crate) fn from_io(what: &str, error: std::io::Error) -> Error {
    Error::unavailable(format!("{what}: {error}")).with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::ErrorKind;

    #[test]
    fn io_is_unavailable_and_the_rest_internal() {
        let io = sled::Error::Io(std::io::Error::other("disk gone"));
        assert_eq!(from_sled(io).kind(), ErrorKind::Unavailable);
        let bug = sled::Error::ReportableBug("oops".into());
        assert_eq!(from_sled(bug).kind(), ErrorKind::Internal);
        let unsupported = sled::Error::Unsupported("old version".into());
        assert_eq!(from_sled(unsupported).kind(), ErrorKind::Internal);
    }
}
