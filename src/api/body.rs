//! Reading an API request's body: JSON only, whole, within a limit, whether
//! it comes with a `Content-Length` or chunked.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use warp::http::{header, HeaderMap, Method, StatusCode};

use super::http::ApiError;

/// Whether the request says a body follows.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Whether `Content-Type` is JSON (`application/json`, parameters allowed).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Whether `Content-Type` is a browser form's (`application/x-www-form-urlencoded`).
pub(super) fn is_form(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// The body of a write, read whole. Reads (`GET`, `DELETE`...) have none:
/// theirs is not read. A body that is not JSON is refused (415) before it
/// is read: a browser form from another site can send `text/plain`, never
/// `application/json`, without asking first. `form_ok`: a form is taken too
/// (the dashboard's export download, proven to come from ferry's own page).
pub(super) async fn read<S, B>(
    method: &Method,
    headers: &HeaderMap,
    stream: S,
    limit: u64,
    form_ok: bool,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) || !has_body(headers) {
        return Ok(Bytes::new());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let accepted = is_json(&content_type) || (form_ok && is_form(&content_type));
    if !accepted {
        return Err(ApiError::unsupported_media_type(&content_type));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = BytesMut::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "detail": format!("The request body could not be read: {e}") }),
        })?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::too_large(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            body.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), HeaderValue::from_static(v)))
            .collect()
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn reads_chunked_json_within_the_limit() {
        let h = headers(&[
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::TRANSFER_ENCODING, "chunked"),
        ]);
        let body = read(&Method::POST, &h, chunks(&[b"{\"a\":", b"1}"]), 100, false).await;
        assert_eq!(body.unwrap(), Bytes::from_static(b"{\"a\":1}"));
        let err = read(&Method::POST, &h, chunks(&[b"{\"a\":", b"12345"]), 8, false)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn refuses_other_types_and_declared_oversize() {
        let text = headers(&[
            (header::CONTENT_TYPE, "text/plain"),
            (header::CONTENT_LENGTH, "2"),
        ]);
        let err = read(&Method::POST, &text, chunks(&[b"{}"]), 100, false)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let big = headers(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_LENGTH, "101"),
        ]);
        let err = read(&Method::PATCH, &big, chunks(&[]), 100, false)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Reads and bodiless writes need no type.
        assert!(read(&Method::GET, &text, chunks(&[b"{}"]), 100, false)
            .await
            .unwrap()
            .is_empty());
        // A form only where the caller allows it (the export download).
        let form = headers(&[
            (header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            (header::CONTENT_LENGTH, "2"),
        ]);
        let err = read(&Method::POST, &form, chunks(&[b"a="]), 100, false)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(read(&Method::POST, &form, chunks(&[b"a="]), 100, true)
            .await
            .is_ok());
        let none = headers(&[]);
        assert!(read(&Method::POST, &none, chunks(&[]), 100, false)
            .await
            .unwrap()
            .is_empty());
    }
}
