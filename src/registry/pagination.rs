//! Pages of the catalog and tag lists (`?n=` and `?last=`), and the `Link`
//! header to the next one.

use warp::http::{header, HeaderValue};
use warp::reply::Response as Reply;

/// The page after `last` of a sorted list, at most `n` long, and the
/// page's last item when more follow (for the `Link` header).
pub(super) fn paginate(
    mut items: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
) -> (Vec<String>, Option<String>) {
    items.sort();
    if let Some(last) = last {
        items.retain(|i| i.as_str() > last);
    }
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            let last = items.last().cloned();
            (items, last)
        }
        _ => (items, None),
    }
}

/// `Link: <path?n=N&last=LAST>; rel="next"` when a further page exists.
pub(super) fn add_next_link(
    resp: &mut Reply,
    path: &str,
    n: Option<usize>,
    next_after: Option<String>,
) {
    let (Some(n), Some(last)) = (n, next_after) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")) {
        resp.headers_mut().insert(header::LINK, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginates_sorted() {
        let items = vec!["c".to_string(), "a".into(), "b".into()];
        assert_eq!(
            paginate(items.clone(), Some(2), None),
            (vec!["a".into(), "b".into()], Some("b".into()))
        );
        assert_eq!(
            paginate(items.clone(), Some(2), Some("b")),
            (vec!["c".into()], None)
        );
        assert_eq!(paginate(items, Some(0), None), (vec![], None));
    }
}
