//! The registry API surface as raw HTTP: ranges, listings, error bodies,
//! read-only refusals, and robustness of the plain-HTTP listener.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn blob_range_requests() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let layer = &image.layers()[0];
    let size = layer.data.len();
    let url = format!(
        "{}/v2/{CACHE}/{BUSYBOX}/blobs/{}",
        ferry.url(),
        layer.digest
    );
    let http = http_client();

    // First ranged GET is cold (ferry has nothing yet), the second is warm.
    for round in ["cold", "warm"] {
        let resp = http
            .get(&url)
            .header("range", "bytes=10-99")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{round}");
        let content_range = resp.headers()["content-range"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_range, format!("bytes 10-99/{size}"), "{round}");
        assert_eq!(
            resp.bytes().await.unwrap(),
            layer.data.slice(10..100),
            "{round}"
        );
        let full = get_body(&url, &[]).await.unwrap();
        assert_eq!(
            (full.status, full.digest.as_str()),
            (StatusCode::OK, layer.digest.as_str()),
            "{round}"
        );
    }

    let beyond = format!("bytes={}-{}", size + 10, size + 20);
    let resp = http.get(&url).header("range", beyond).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn tags_list_is_sorted_and_paginated() {
    let (upstream, image) = upstream_with_busybox().await;
    let client = RegistryClient::new(&upstream.url());
    for tag in ["latest", "1.37", "1.35-musl", "1.35"] {
        client
            .push_manifest(BUSYBOX, tag, &image.media_type, &image.manifest)
            .await;
    }
    let ferry = Ferry::start_simple(&upstream.url());
    let via = RegistryClient::new(&ferry.url());
    assert_eq!(
        tags(&via, "").await,
        ["1.35", "1.35-musl", "1.36", "1.37", "latest"]
    );
    assert_eq!(tags(&via, "?n=2").await, ["1.35", "1.35-musl"]);
    assert_eq!(tags(&via, "?n=2&last=1.35-musl").await, ["1.36", "1.37"]);
}

async fn tags(via: &RegistryClient, query: &str) -> Vec<String> {
    let got = via
        .fetch(
            Method::GET,
            &format!("/v2/{CACHE}/{BUSYBOX}/tags/list{query}"),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "tags/list{query}");
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn catalog_lists_the_cached_repository() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let got = RegistryClient::new(&ferry.url())
        .fetch(Method::GET, "/v2/_catalog", &[])
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let repos: Vec<&str> = v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        repos.contains(&format!("{CACHE}/{BUSYBOX}").as_str()),
        "catalog: {repos:?}"
    );
}

#[tokio::test]
async fn error_responses_use_oci_error_codes() {
    let (upstream, _image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let via = RegistryClient::new(&ferry.url());
    let absent = format!("sha256:{}", "0".repeat(64));
    let cases: &[(Method, String, StatusCode, &str)] = &[
        (
            Method::GET,
            format!("/v2/{CACHE}/{BUSYBOX}/manifests/no-such-tag"),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            Method::GET,
            "/v2/no-such-base/some/repo/manifests/latest".into(),
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            Method::GET,
            format!("/v2/{CACHE}/{BUSYBOX}/blobs/sha256:not-a-digest"),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            format!("/v2/{CACHE}/{BUSYBOX}/blobs/{absent}"),
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        ),
    ];
    for (method, path, status, code) in cases {
        let got = via.fetch(method.clone(), path, &[]).await;
        assert_eq!(
            got.status,
            *status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert_eq!(error_code(&got.body), *code, "{method} {path}");
    }
}

/// ferry is a read-only cache: every push or delete is refused the same way.
#[tokio::test]
async fn push_and_delete_are_refused_as_unsupported() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let via = RegistryClient::new(&ferry.url());
    let layer = &image.layers()[0].digest;
    let cases: &[(Method, String, &str)] = &[
        (Method::POST, format!("/v2/{CACHE}/x/blobs/uploads/"), ""),
        (
            Method::PUT,
            format!("/v2/{CACHE}/x/manifests/latest"),
            image.media_type.as_str(),
        ),
        (
            Method::DELETE,
            format!("/v2/{CACHE}/{BUSYBOX}/manifests/{}", image.digest),
            "",
        ),
        (
            Method::DELETE,
            format!("/v2/{CACHE}/{BUSYBOX}/blobs/{layer}"),
            "",
        ),
    ];
    for (method, path, content_type) in cases {
        let headers: Vec<(&str, &str)> = if content_type.is_empty() {
            vec![]
        } else {
            vec![("content-type", content_type)]
        };
        let resp = via
            .send(method.clone(), path, &headers, Some(image.manifest.clone()))
            .await;
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(error_code(&body), "UNSUPPORTED", "{method} {path}");
    }
    // Nothing was deleted upstream or in the cache.
    let still = via
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), &image.digest)
        .await;
    assert_eq!(still.status, StatusCode::OK);
}

/// Clients with `--tls-verify=false` try TLS first: a ClientHello on the
/// plain-HTTP port must get a prompt answer, never a hang (otherwise every
/// skopeo/podman pull would wait for a timeout). The answer is a plain HTTP
/// 400 and a close, which is what makes the client say "server gave HTTP
/// response to HTTPS client" and fall back to HTTP.
#[tokio::test]
async fn tls_client_hello_on_plain_port_is_answered_or_closed() {
    let (upstream, _image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let mut stream = tokio::net::TcpStream::connect(ferry.host()).await.unwrap();
    stream.write_all(&client_hello()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("ferry neither answered nor closed within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok() && answer.starts_with("HTTP/1.1 400 "),
        "a TLS ClientHello on the plain port got {read:?}: {answer:?}, not an HTTP 400 and a close"
    );
}

/// A syntactically valid TLS 1.2 ClientHello record (one cipher suite, no
/// extensions).
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // client_version TLS 1.2
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id length
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // compression methods: null
    body.extend_from_slice(&[0x00, 0x00]); // no extensions
    let mut handshake = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend(handshake);
    record
}
