//! Upstreams that require credentials: ferry holds them (config file), the
//! client needs none.

use reqwest::StatusCode;

use crate::support::images::{self, Flavor};
use crate::support::tls::TestCa;
use crate::support::*;

/// Docker Hub style: 401 + Bearer challenge, tokens from an issuer on
/// another origin over HTTPS that wants Basic credentials. Tokens live
/// 300 s, so repeated pulls must reuse them instead of asking the issuer
/// every time.
#[tokio::test]
async fn token_auth_upstream_with_configured_credentials() {
    let ca = TestCa::new("ferry-e2e-issuer-ca").await;
    let issuer = TokenIssuer::start_https(Some((USER, PASSWORD)), &ca).await;
    let upstream = Upstream::start(UpstreamAuth::Token(&issuer)).await;
    let image = images::busybox(Flavor::Docker, "1.36");
    RegistryClient::new(&upstream.url())
        .with_http(ca.http_client())
        .with_credentials(USER, PASSWORD)
        .push_image(BUSYBOX, "1.36", &image)
        .await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &upstream.url())
        .credentials(USER, PASSWORD)
        .ca_cert(&ca.cert_pem())
        .tag_ttl(0)]);

    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let after_first_pull = issuer.requests();
    assert!(after_first_pull >= 1, "ferry never asked the token issuer");

    // TTL 0: each pull revalidates the tag upstream, with a cached token.
    let via = RegistryClient::new(&ferry.url());
    for _ in 0..10 {
        let got = via
            .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
            .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, image.manifest);
    }
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
    let more = issuer.requests() - after_first_pull;
    assert!(
        more <= 1,
        "{more} more token requests for 11 repeated pulls: tokens are not reused"
    );
}

#[tokio::test]
async fn htpasswd_upstream_with_configured_credentials() {
    let (upstream, image) = upstream_with_busybox_behind_basic_auth().await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &upstream.url()).credentials(USER, PASSWORD)]);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
}

/// Without credentials ferry must not pretend: the pull fails.
#[tokio::test]
async fn htpasswd_upstream_without_credentials_fails_the_pull() {
    let (upstream, _image) = upstream_with_busybox_behind_basic_auth().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let got = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
        .await;
    // The upstream's 401 is ferry's missing credentials, not the client's:
    // a gateway error naming the cause, never a challenge to the client.
    assert_eq!(
        got.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(error_code(&got.body), "UNKNOWN");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        format!("upstream of cache {CACHE} refused the credentials (ferry's are missing or wrong)")
    );
    let dest = tempfile::tempdir().unwrap();
    assert!(
        !skopeo_copy(&via_ferry(&ferry, BUSYBOX, "1.36"), dest.path(), None)
            .await
            .success
    );
}
