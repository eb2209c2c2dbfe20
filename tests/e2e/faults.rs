//! Upstream misbehaviour, injected by the fake proxy between ferry and the
//! real upstream. What a user must see: errors rather than wrong bytes,
//! nothing bad left in the cache, and cached content served when the
//! upstream refuses or hangs.

use reqwest::StatusCode;

use crate::support::*;

struct Setup {
    _upstream: Upstream,
    proxy: FakeFaultProxy,
    ferry: Ferry,
    image: Image,
}

async fn setup(cache: impl FnOnce(&str) -> CacheSpec) -> Setup {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[cache(&proxy.url())]);
    Setup {
        _upstream: upstream,
        proxy,
        ferry,
        image,
    }
}

fn layer_url(s: &Setup) -> String {
    format!(
        "{}/v2/{CACHE}/{BUSYBOX}/blobs/{}",
        s.ferry.url(),
        s.image.layers()[0].digest
    )
}

/// The client must not end up holding a complete 200 body: either the
/// status says error or the body breaks off.
fn assert_not_delivered(read: &Result<BodyRead, String>, what: &str) {
    if let Ok(r) = read {
        assert!(
            r.status != StatusCode::OK || !r.complete(),
            "{what}: client received a complete 200 body ({} bytes, {})",
            r.len,
            r.digest
        );
    }
}

async fn assert_layer_now_correct(s: &Setup) {
    let read = get_body(&layer_url(s), &[]).await.unwrap();
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.digest, s.image.layers()[0].digest);
    assert_skopeo_copy_matches(&via_ferry(&s.ferry, BUSYBOX, "1.36"), &s.image).await;
}

#[tokio::test]
async fn cut_blob_body_fails_the_pull_and_is_not_cached() {
    let s = setup(|u| CacheSpec::new(CACHE, u)).await;
    s.proxy.set_fault(Fault::CutBlobAfter(64 * 1024));
    let dest = tempfile::tempdir().unwrap();
    let copy = skopeo_copy(&via_ferry(&s.ferry, BUSYBOX, "1.36"), dest.path(), None).await;
    assert!(
        !copy.success,
        "skopeo copy succeeded although the upstream cut the layer"
    );
    assert_not_delivered(&get_body(&layer_url(&s), &[]).await, "cut upstream body");

    s.proxy.set_fault(Fault::None);
    assert_layer_now_correct(&s).await;
}

#[tokio::test]
async fn corrupted_blob_body_is_aborted_and_not_cached() {
    let s = setup(|u| CacheSpec::new(CACHE, u)).await;
    s.proxy.set_fault(Fault::CorruptBlob);
    assert_not_delivered(
        &get_body(&layer_url(&s), &[]).await,
        "corrupted upstream body",
    );
    let dest = tempfile::tempdir().unwrap();
    let copy = skopeo_copy(&via_ferry(&s.ferry, BUSYBOX, "1.36"), dest.path(), None).await;
    assert!(
        !copy.success,
        "skopeo copy succeeded although the upstream corrupted the layer"
    );

    s.proxy.set_fault(Fault::None);
    assert_layer_now_correct(&s).await;
}

#[tokio::test]
async fn rate_limit_on_uncached_manifest_reaches_the_client() {
    let s = setup(|u| CacheSpec::new(CACHE, u)).await;
    s.proxy.set_fault(Fault::TooManyRequests);
    let got = RegistryClient::new(&s.ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
        .await;
    assert_eq!(
        got.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(error_code(&got.body), "TOOMANYREQUESTS");
}

/// TTL 0 makes ferry ask upstream on every tag pull; a refusing upstream
/// must not stop it from serving what it has.
#[tokio::test]
async fn cached_tag_is_served_when_upstream_refuses() {
    let s = setup(|u| CacheSpec::new(CACHE, u).tag_ttl(0)).await;
    assert_skopeo_copy_matches(&via_ferry(&s.ferry, BUSYBOX, "1.36"), &s.image).await;
    let via = RegistryClient::new(&s.ferry.url());
    for fault in [Fault::TooManyRequests, Fault::Unavailable] {
        s.proxy.set_fault(fault);
        let got = via
            .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
            .await;
        assert_eq!(got.status, StatusCode::OK, "{fault:?}");
        assert_eq!(got.body, s.image.manifest, "{fault:?}");
        assert_skopeo_copy_matches(&via_ferry(&s.ferry, BUSYBOX, "1.36"), &s.image).await;
    }
}

/// An upstream that hangs before its headers (the fake holds the request
/// unanswered): ferry's check of the stale tag is a HEAD that gets no
/// answer, and its upstream timeouts (120 s) cannot end it during the test.
/// Only the revalidation deadline (300 ms) lets ferry serve the cached tag,
/// while its check is still waiting upstream.
#[tokio::test]
async fn cached_tag_is_served_when_upstream_stalls() {
    let s = setup(|u| {
        CacheSpec::new(CACHE, u)
            .tag_ttl(0)
            .timeouts(120, 120)
            .revalidate_timeout_ms(300)
    })
    .await;
    assert_skopeo_copy_matches(&via_ferry(&s.ferry, BUSYBOX, "1.36"), &s.image).await;
    s.proxy.set_fault(Fault::StallBeforeHeaders);
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        RegistryClient::new(&s.ferry.url()).get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36"),
    )
    .await
    .expect("the pull of a cached tag waited on the stalled upstream for 60 s: the revalidation did not time out");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, s.image.manifest);
    assert_eq!(
        s.proxy.held(),
        1,
        "ferry's check of the tag must still be waiting on the stalled upstream: {:?}",
        s.proxy.requests()
    );
    assert!(
        s.ferry
            .log()
            .contains("upstream slow to confirm the tag: serving it from cache"),
        "no line in ferry's log says the cached tag was served after the deadline"
    );
}
