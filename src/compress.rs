//! gzip for the responses worth compressing (the dashboard's assets, the
//! API's JSON), when the client accepts it. Registry responses are never
//! compressed: manifests must keep their exact bytes and digests, and
//! layers are compressed already.

use async_compression::tokio::write::GzipEncoder;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use warp::http::{header, HeaderMap, HeaderValue};
use warp::reply::Response;

/// Bodies smaller than this gain nothing from gzip.
const MIN_BYTES: usize = 1024;

/// Whether a request's `Accept-Encoding` allows gzip.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    gzip_in(
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// Whether `Accept-Encoding` values allow gzip (`gzip` or `*`, not with
/// `q=0`).
pub(crate) fn gzip_in<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// `data` gzipped.
pub(crate) async fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzipEncoder::new(Vec::with_capacity(data.len() / 3));
    encoder.write_all(data).await?;
    encoder.shutdown().await?;
    Ok(encoder.into_inner())
}

/// A response with an in-memory body, gzipped when `gzip_ok` and worth it.
/// Marks it `Vary: Accept-Encoding` either way, so caches keep both forms.
pub(crate) async fn maybe_gzip(resp: Response, gzip_ok: bool) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts
        .headers
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let Ok(collected) = body.collect().await else {
        parts.status = warp::http::StatusCode::INTERNAL_SERVER_ERROR;
        return Response::from_parts(parts, bytes::Bytes::new().into());
    };
    let bytes = collected.to_bytes();
    if !gzip_ok || bytes.len() < MIN_BYTES || parts.headers.contains_key(header::CONTENT_ENCODING) {
        return Response::from_parts(parts, bytes.into());
    }
    match gzip(&bytes).await {
        Ok(compressed) => {
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, compressed.into())
        }
        Err(_) => Response::from_parts(parts, bytes.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        h
    }

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn gzips_large_bodies_only_when_accepted() {
        use std::io::Read;
        let text = "ferry ".repeat(1000);
        let resp = maybe_gzip(Response::new(text.clone().into()), true).await;
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        assert_eq!(resp.headers()["vary"], "accept-encoding");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, text);

        let refused = maybe_gzip(Response::new(text.clone().into()), false).await;
        assert!(!refused.headers().contains_key("content-encoding"));
        let small = maybe_gzip(Response::new("{}".into()), true).await;
        assert!(!small.headers().contains_key("content-encoding"));
    }
}
