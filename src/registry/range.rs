//! The `Range` and `If-Range` headers of blob requests (RFC 9110 §14):
//! one byte range or several.
//!
//! What ferry answers, where RFC 9110 leaves a choice:
//! - A header ferry cannot parse, or with a unit other than `bytes`, is
//!   ignored: the whole blob (§14.2 says to ignore an invalid Range).
//! - Ranges that overlap are coalesced into one (§14.6 allows it): the
//!   answer never holds a byte twice, so it is never larger than the blob
//!   plus the part headers. A merged range keeps the place of its earliest
//!   member in the request; the parts otherwise come in the order asked.
//!   Ranges that only touch are NOT merged, although §14.6 allows that
//!   too: containers/image matches parts to the chunks it asked for by
//!   position (and fails on a different count), and containers/storage
//!   asks for touching ranges when neighbouring files' chunks are missing;
//!   merging them broke podman's partial pulls (checksum mismatch, then a
//!   full download). It never asks for overlapping ones.
//! - More than `MAX_RANGES` ranges: the whole blob, 200. A 416 would fail a
//!   pull (containers/storage no longer falls back to a full download when
//!   a registry refuses), while the whole blob costs ferry no more than a
//!   plain GET any client may send; 10,000 tiny parts would cost a read and
//!   a part header each.

use std::ops::Range;

/// Most ranges answered as such in one request: twice what
/// containers/storage asks for at most (it merges its chunks down to 1024).
pub(crate) const MAX_RANGES: usize = 2048;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No range, one ferry ignores, or too many: the whole blob.
    Full,
    /// One range (after coalescing), end exclusive: a plain 206.
    Single(Range<u64>),
    /// Several disjoint ranges, in the order to send: a multipart 206.
    Multi(Vec<Range<u64>>),
    /// No range overlaps the blob: 416.
    Unsatisfiable,
}

/// The ranges of a `Range` header for a blob of `size` bytes.
pub(crate) fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some((unit, specs)) = header.and_then(|h| h.split_once('=')) else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Full;
    }
    let mut ranges = Vec::new();
    let mut unsatisfiable = false;
    // Empty list elements are allowed (RFC 9110 §5.6.1) and skipped.
    for (count, spec) in specs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        if count == MAX_RANGES {
            return RangeRequest::Full;
        }
        match parse_one(spec, size) {
            Spec::Invalid => return RangeRequest::Full,
            Spec::Unsatisfiable => unsatisfiable = true,
            Spec::Range(r) => ranges.push(r),
        }
    }
    let mut ranges = coalesce(ranges);
    match ranges.len() {
        0 if unsatisfiable => RangeRequest::Unsatisfiable,
        0 => RangeRequest::Full,
        1 => RangeRequest::Single(ranges.remove(0)),
        _ => RangeRequest::Multi(ranges),
    }
}

/// Whether an `If-Range` header lets the ranges apply to a blob whose
/// (strong) entity tag is `etag`. Only a strong entity tag can match
/// (§13.1.5); a date cannot, as blobs have no Last-Modified.
pub(crate) fn if_range_matches(if_range: Option<&str>, etag: &str) -> bool {
    if_range.is_none_or(|v| v.trim() == etag)
}

enum Spec {
    Invalid,
    Unsatisfiable,
    Range(Range<u64>),
}

fn parse_one(spec: &str, size: u64) -> Spec {
    let Some((first, last)) = spec.split_once('-') else {
        return Spec::Invalid;
    };
    let (first, last) = (number(first.trim()), number(last.trim()));
    match (first, last) {
        // -N: the last N bytes.
        (Some(None), Some(Some(n))) => {
            if n == 0 || size == 0 {
                Spec::Unsatisfiable
            } else {
                Spec::Range(size.saturating_sub(n)..size)
            }
        }
        (Some(Some(start)), Some(last)) => {
            if last.is_some_and(|last| last < start) {
                return Spec::Invalid;
            }
            if start >= size {
                return Spec::Unsatisfiable;
            }
            let end = last.map_or(size, |last| last.min(size - 1) + 1);
            Spec::Range(start..end)
        }
        _ => Spec::Invalid,
    }
}

/// `Some(None)` for an empty string, `Some(Some(n))` for digits only
/// (`u64::from_str` would take a sign), `None` otherwise.
fn number(s: &str) -> Option<Option<u64>> {
    if s.is_empty() {
        return Some(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().map(Some)
}

/// Merges ranges that overlap (share a byte); each merged range takes the
/// place of its earliest member in the request.
fn coalesce(ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    let mut by_start: Vec<(usize, Range<u64>)> = ranges.into_iter().enumerate().collect();
    by_start.sort_by_key(|(_, r)| r.start);
    let mut merged: Vec<(usize, Range<u64>)> = Vec::with_capacity(by_start.len());
    for (place, r) in by_start {
        match merged.last_mut() {
            Some((first_place, last)) if r.start < last.end => {
                last.end = last.end.max(r.end);
                *first_place = (*first_place).min(place);
            }
            _ => merged.push((place, r)),
        }
    }
    merged.sort_by_key(|(place, _)| *place);
    merged.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=2-4"), 10), Single(2..5));
        assert_eq!(parse(Some("bytes=2-"), 10), Single(2..10));
        assert_eq!(parse(Some("bytes=-3"), 10), Single(7..10));
        assert_eq!(parse(Some("bytes=-30"), 10), Single(0..10));
        assert_eq!(parse(Some("bytes=5-100"), 10), Single(5..10));
        assert_eq!(parse(Some("bytes=0-0"), 10), Single(0..1));
        assert_eq!(parse(Some(" Bytes = 1-2 "), 10), Single(1..3));
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for h in [
            "items=0-1",
            "bytes",
            "bytes=abc",
            "bytes=4-2",
            "bytes=+1-2",
            "bytes=0-1,x",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=",
            "bytes=,,",
        ] {
            assert_eq!(parse(Some(h), 10), Full, "{h}");
        }
    }

    #[test]
    fn several_ranges_keep_their_order() {
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Multi(vec![0..2, 4..6]));
        assert_eq!(
            parse(Some("bytes=4-5, ,0-1,-2"), 10),
            Multi(vec![4..6, 0..2, 8..10])
        );
        // Unsatisfiable ones are dropped; one left is a plain range.
        assert_eq!(parse(Some("bytes=0-1,30-40"), 10), Single(0..2));
        assert_eq!(parse(Some("bytes=30-40,50-"), 10), Unsatisfiable);
    }

    #[test]
    fn overlapping_ranges_merge_in_place_of_the_first() {
        assert_eq!(parse(Some("bytes=0-3,2-5"), 10), Single(0..6));
        assert_eq!(parse(Some("bytes=0-,0-,0-"), 10), Single(0..10));
        assert_eq!(
            parse(Some("bytes=8-9,4-5,0-1,5-6"), 10),
            Multi(vec![8..10, 4..7, 0..2])
        );
        assert_eq!(
            parse(Some("bytes=8-9,0-1,4-5,1-2"), 10),
            Multi(vec![8..10, 0..3, 4..6])
        );
    }

    #[test]
    fn touching_ranges_stay_apart() {
        assert_eq!(parse(Some("bytes=0-1,2-3"), 10), Multi(vec![0..2, 2..4]));
        assert_eq!(parse(Some("bytes=2-3,0-1"), 10), Multi(vec![2..4, 0..2]));
    }

    #[test]
    fn too_many_ranges_get_the_whole_blob() {
        let ranges = |n: u64| {
            let specs: Vec<String> = (0..n).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
            format!("bytes={}", specs.join(","))
        };
        let at_cap = parse(Some(&ranges(MAX_RANGES as u64)), 1 << 20);
        assert!(matches!(at_cap, Multi(r) if r.len() == MAX_RANGES));
        assert_eq!(parse(Some(&ranges(MAX_RANGES as u64 + 1)), 1 << 20), Full);
    }

    #[test]
    fn if_range_needs_the_strong_etag() {
        let etag = "\"sha256:ab\"";
        assert!(if_range_matches(None, etag));
        assert!(if_range_matches(Some("\"sha256:ab\""), etag));
        assert!(!if_range_matches(Some("W/\"sha256:ab\""), etag));
        assert!(!if_range_matches(Some("\"sha256:cd\""), etag));
        assert!(!if_range_matches(
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            etag
        ));
    }
}
