//! The upstream client's transport options against real programs: an HTTPS
//! upstream (docker-registry with a certificate from a test CA) trusted via
//! `ca_file`/`ca_cert`, refused without them, accepted with
//! `tls_validation = false`; and a real forward proxy (tinyproxy) reached
//! via `proxy_url` (with and without credentials) or `HTTPS_PROXY`, with
//! `NO_PROXY` bypassing it.

use reqwest::StatusCode;

use crate::support::images;
use crate::support::inspect::{blob_files, tmp_files};
use crate::support::proxy::Tinyproxy;
use crate::support::tls::TestCa;
use crate::support::*;

/// An HTTPS docker-registry whose certificate (IP:127.0.0.1, DNS:localhost)
/// is signed by `ca`, holding `library/busybox:1.36`.
struct HttpsUpstream {
    ca: TestCa,
    upstream: Upstream,
    image: Image,
}

impl HttpsUpstream {
    async fn start() -> HttpsUpstream {
        let ca = TestCa::new("ferry e2e upstream CA").await;
        let (cert, key) = ca.issue_server_cert().await;
        let upstream = Upstream::start_tls(&cert, &key).await;
        let image = images::busybox(Flavor::Docker, "1.36");
        RegistryClient::new(&upstream.url())
            .with_http(ca.http_client())
            .push_image(BUSYBOX, "1.36", &image)
            .await;
        HttpsUpstream {
            ca,
            upstream,
            image,
        }
    }

    fn port(&self) -> u16 {
        port_of(&self.upstream.host())
    }
}

fn port_of(host: &str) -> u16 {
    host.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// `errors[0].message` of an OCI error body.
fn error_message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .into()
}

/// skopeo pulls `busybox:1.36` through `ferry` and gets exactly `image`.
async fn assert_pull_through(ferry: &Ferry, image: &Image) {
    assert_skopeo_copy_matches(&via_ferry(ferry, BUSYBOX, "1.36"), image).await;
}

// ------------------------------------------------------- HTTPS upstream ---

#[tokio::test]
async fn https_upstream_trusted_via_ca_file_pulls_identical_image() {
    let up = HttpsUpstream::start().await;
    assert!(up.upstream.url().starts_with("https://"));
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &up.upstream.url()).ca_file(&up.ca.cert)]);
    assert_pull_through(&ferry, &up.image).await;
}

#[tokio::test]
async fn https_upstream_trusted_via_inline_ca_cert_pulls_identical_image() {
    let up = HttpsUpstream::start().await;
    let ferry =
        Ferry::start(&[CacheSpec::new(CACHE, &up.upstream.url()).ca_cert(&up.ca.cert_pem())]);
    assert_pull_through(&ferry, &up.image).await;
}

#[tokio::test]
async fn https_upstream_with_untrusted_certificate_fails_with_oci_error_and_caches_nothing() {
    let up = HttpsUpstream::start().await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &up.upstream.url())]);
    let repo = format!("{CACHE}/{BUSYBOX}");
    let client = RegistryClient::new(&ferry.url());

    // What a client sees: the upstream answered with a certificate ferry
    // refuses, a bad answer: 502 with an OCI error naming the cause.
    let got = client.get_manifest(&repo, "1.36").await;
    assert_eq!(
        got.status,
        StatusCode::BAD_GATEWAY,
        "manifest through ferry without the CA: {}",
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(error_code(&got.body), "UNKNOWN");
    let message = error_message(&got.body);
    assert!(
        message.contains("certificate"),
        "the error does not say the upstream's certificate was refused: {message}"
    );

    // A blob by digest fails the same way.
    let blob = client.get_blob(&repo, &up.image.config().digest).await;
    assert!(
        blob.status.is_server_error(),
        "blob through ferry without the CA: {} {}",
        blob.status,
        String::from_utf8_lossy(&blob.body)
    );
    assert_eq!(error_code(&blob.body), "UNKNOWN");

    // And skopeo, as a user runs it, fails.
    let dest = tempfile::tempdir().unwrap();
    let out = skopeo_copy(&via_ferry(&ferry, BUSYBOX, "1.36"), dest.path(), None).await;
    assert!(
        !out.success,
        "skopeo pulled through ferry from an untrusted HTTPS upstream"
    );

    assert!(
        blob_files(&ferry.data_dir()).is_empty(),
        "ferry stored something from an upstream it must not trust: {:?}",
        blob_files(&ferry.data_dir())
    );
    assert!(tmp_files(&ferry.data_dir()).is_empty());
}

#[tokio::test]
async fn https_upstream_with_tls_validation_off_pulls_without_ca() {
    let up = HttpsUpstream::start().await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &up.upstream.url()).tls_validation(false)]);
    assert_pull_through(&ferry, &up.image).await;
}

// -------------------------------------------------------- forward proxy ---

#[tokio::test]
async fn proxy_url_tunnels_https_upstream_through_tinyproxy() {
    let up = HttpsUpstream::start().await;
    let proxy = Tinyproxy::start(&[up.port()], None).await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &up.upstream.url())
        .ca_file(&up.ca.cert)
        .proxy_url(&proxy.url())]);
    assert_pull_through(&ferry, &up.image).await;
    let connect = format!("CONNECT {} HTTP/1.1", up.upstream.host());
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r == &connect),
        "tinyproxy saw no `{connect}`; its requests: {requests:?}"
    );
}

#[tokio::test]
async fn proxy_url_forwards_plain_http_upstream_requests_through_tinyproxy() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = Tinyproxy::start(&[], None).await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &upstream.url()).proxy_url(&proxy.url())]);
    assert_pull_through(&ferry, &image).await;
    // Every upstream request is an absolute-URI request to the proxy.
    let requests = proxy.requests();
    let base = format!("{}/v2/{BUSYBOX}", upstream.url());
    let manifest = format!("GET {base}/manifests/1.36 HTTP/1.1");
    assert!(
        requests.iter().any(|r| r == &manifest),
        "tinyproxy saw no `{manifest}`; its requests: {requests:?}"
    );
    for blob in image.all_blobs() {
        let get = format!("GET {base}/blobs/{} HTTP/1.1", blob.digest);
        assert!(
            requests.iter().any(|r| r == &get),
            "tinyproxy saw no `{get}`; its requests: {requests:?}"
        );
    }
}

#[tokio::test]
async fn proxy_credentials_authenticate_https_tunnel_to_tinyproxy() {
    let up = HttpsUpstream::start().await;
    let proxy = Tinyproxy::start(&[up.port()], Some(("proxyuser", "proxy-pw-9"))).await;
    let spec = CacheSpec::new(CACHE, &up.upstream.url())
        .ca_file(&up.ca.cert)
        .proxy_url(&proxy.url());

    // Wrong password: the proxy refuses the tunnel, ferry answers 5xx and
    // stores nothing.
    let refused = Ferry::start(&[spec.clone().proxy_credentials("proxyuser", "wrong")]);
    let got = RegistryClient::new(&refused.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
        .await;
    assert!(
        got.status.is_server_error(),
        "manifest through a proxy refusing ferry's credentials: {} {}",
        got.status,
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(error_code(&got.body), "UNKNOWN");
    assert!(blob_files(&refused.data_dir()).is_empty());

    // Right password: the pull goes through the tunnel.
    let before = proxy.requests().len();
    let ferry = Ferry::start(&[spec.proxy_credentials("proxyuser", "proxy-pw-9")]);
    assert_pull_through(&ferry, &up.image).await;
    let connect = format!("CONNECT {} HTTP/1.1", up.upstream.host());
    let requests = proxy.requests();
    assert!(
        requests[before..].iter().any(|r| r == &connect),
        "tinyproxy saw no `{connect}` from the ferry with the right password; \
         its requests: {requests:?}"
    );
}

#[tokio::test]
async fn https_proxy_env_routes_through_tinyproxy_and_no_proxy_bypasses_it() {
    let up = HttpsUpstream::start().await;
    let proxy = Tinyproxy::start(&[up.port()], None).await;
    let spec = CacheSpec::new(CACHE, &up.upstream.url()).ca_file(&up.ca.cert);
    let connect = format!("CONNECT {} HTTP/1.1", up.upstream.host());

    // HTTPS_PROXY alone: ferry tunnels through the proxy.
    let ferry = Ferry::start_with(
        std::slice::from_ref(&spec),
        &[],
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "")],
    );
    assert_pull_through(&ferry, &up.image).await;
    let via_env = proxy.requests();
    assert!(
        via_env.iter().any(|r| r == &connect),
        "with HTTPS_PROXY tinyproxy saw no `{connect}`; its requests: {via_env:?}"
    );
    drop(ferry);

    // NO_PROXY naming the upstream's host: ferry goes direct.
    let ferry = Ferry::start_with(
        &[spec],
        &[],
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "127.0.0.1")],
    );
    assert_pull_through(&ferry, &up.image).await;
    assert_eq!(
        proxy.requests(),
        via_env,
        "with NO_PROXY=127.0.0.1 requests still went through the proxy"
    );
}
