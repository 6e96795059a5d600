//! Ranged reads as the network backends answer them (the object stores, the file trees, B2):
//! exactly `length` bytes from `offset` (Kopia's GetBlob with an offset and length,
//! repo/blob/storage.go), else [`Error::TruncatedBlob`] with how long the blob turned out to
//! be: a reader of a pack must never take a shorter answer for the content it asked for.

use std::ops::Range;

use crate::error::{Error, Result};

/// How a store's ranged read failed, as far as the store's answer tells.
pub(crate) enum RangeFailure {
    /// Perhaps a range past the end: refused (416) or answered short (which OpenDAL reports as
    /// an unexpected error). The blob's size decides; if it is long enough, `Error` stands.
    PerhapsPastEnd(Error),
    /// The store said so: the range starts past the end (B2's 416).
    PastEnd,
    /// Nothing to do with the range (not found, denied): passed on as it is.
    Failed(Error),
}

/// Reads `length` bytes of blob `blob_id` from `offset` with `read` (given the byte range, end
/// exclusive), asking `size` for the blob's length only where an answer leaves it open.
pub(crate) fn read_range(
    blob_id: &str,
    offset: u64,
    length: u64,
    size: impl Fn() -> Result<u64>,
    read: impl FnOnce(Range<u64>) -> std::result::Result<Vec<u8>, RangeFailure>,
) -> Result<Vec<u8>> {
    let truncated = |actual| Error::TruncatedBlob {
        blob_id: blob_id.to_string(),
        offset,
        wanted: length,
        actual,
    };
    if length == 0 {
        // An empty range cannot be asked for; the blob must still exist and reach `offset`.
        let size = size()?;
        return if size < offset {
            Err(truncated(size))
        } else {
            Ok(Vec::new())
        };
    }
    let end = offset.saturating_add(length);
    match read(offset..end) {
        Ok(data) if data.len() as u64 >= length => Ok(data),
        Ok(data) => Err(truncated(offset + data.len() as u64)),
        Err(RangeFailure::PastEnd) => Err(truncated(size()?)),
        Err(RangeFailure::PerhapsPastEnd(error)) => {
            let size = size()?;
            Err(if size < end { truncated(size) } else { error })
        }
        Err(RangeFailure::Failed(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &[u8] = b"0123456789";

    /// A store holding [`BLOB`] that answers a range past the end with `past_end`.
    fn read(offset: u64, length: u64, past_end: fn() -> RangeFailure) -> Result<Vec<u8>> {
        let size = || Ok(BLOB.len() as u64);
        read_range("xb", offset, length, size, |range| {
            let (start, end) = (range.start as usize, range.end as usize);
            if start >= BLOB.len() {
                return Err(past_end());
            }
            Ok(BLOB[start..end.min(BLOB.len())].to_vec())
        })
    }

    fn actual(result: Result<Vec<u8>>) -> u64 {
        match result {
            Err(Error::TruncatedBlob { actual, .. }) => actual,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn perhaps() -> RangeFailure {
        RangeFailure::PerhapsPastEnd(Error::StorageRequest {
            storage: "s".into(),
            operation: "get xb".into(),
            reason: "416".into(),
        })
    }

    #[test]
    fn exact_ranges_are_read_and_short_ones_say_how_long_the_blob_is() {
        for past_end in [perhaps as fn() -> RangeFailure, || RangeFailure::PastEnd] {
            assert_eq!(read(2, 3, past_end).unwrap(), b"234");
            assert_eq!(read(10, 0, past_end).unwrap(), b"");
            assert_eq!(actual(read(11, 0, past_end)), 10);
            assert_eq!(actual(read(8, 5, past_end)), 10);
            assert_eq!(actual(read(12, 1, past_end)), 10);
        }
    }

    #[test]
    fn a_refusal_of_a_range_inside_the_blob_and_other_failures_stand() {
        let refused = read_range("xb", 0, 4, || Ok(10), |_| Err(perhaps()));
        assert!(
            matches!(refused, Err(Error::StorageRequest { .. })),
            "{refused:?}"
        );
        let missing = read_range(
            "xb",
            0,
            4,
            || panic!("no size asked"),
            |_| {
                Err(RangeFailure::Failed(Error::BlobNotFound {
                    blob_id: "xb".into(),
                    storage: "s".into(),
                }))
            },
        );
        assert!(
            matches!(missing, Err(Error::BlobNotFound { .. })),
            "{missing:?}"
        );
    }
}
