//! The `Range` header of blob requests (a single byte range).

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No range, or one ferry does not honour (several ranges): whole blob.
    Full,
    /// Inclusive bounds within the blob.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

pub(crate) fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let bounds = match (first.parse::<u64>(), last.parse::<u64>()) {
        // bytes=-N: the last N bytes.
        (Err(_), Ok(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                return RangeRequest::Unsatisfiable;
            }
            (size.saturating_sub(n), size - 1)
        }
        (Ok(start), Err(_)) if last.is_empty() => (start, size.saturating_sub(1)),
        (Ok(start), Ok(end)) if end >= start => (start, end.min(size.saturating_sub(1))),
        _ => return RangeRequest::Full,
    };
    if bounds.0 >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start: bounds.0,
        end: bounds.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=2-4"), 10), Partial { start: 2, end: 4 });
        assert_eq!(parse(Some("bytes=2-"), 10), Partial { start: 2, end: 9 });
        assert_eq!(parse(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(parse(Some("bytes=5-100"), 10), Partial { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse(Some("items=0-1"), 10), Full);
    }
}
