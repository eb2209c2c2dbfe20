//! A cache's upstream budget: its cap on connections and on bandwidth, and
//! the upstream's own rate budget. docker-registry sends no `RateLimit`
//! headers, so the FAKE fault proxy adds Docker Hub's to its manifest
//! answers; everything else is the real upstream.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images;
use crate::support::inspect::{metrics, wait_until};
use crate::support::pulp_api::{href_of, PulpApi};
use crate::support::*;

/// Docker Hub's headers with its 6-hour window.
fn hub(remaining: u64) -> Option<RateLimitHeaders> {
    Some(RateLimitHeaders {
        limit: 100,
        remaining,
        window_secs: 21600,
    })
}

/// `ferry_upstream_ratelimit_{limit,remaining}` of the cache.
async fn ratelimit_gauges(ferry: &Ferry) -> (f64, f64) {
    let scraped = metrics(&ferry.url()).await;
    let labels = [("cache", CACHE)];
    (
        scraped.sum("ferry_upstream_ratelimit_limit", &labels),
        scraped.sum("ferry_upstream_ratelimit_remaining", &labels),
    )
}

async fn upstream_status(ferry: &Ferry) -> Value {
    PulpApi::anonymous(ferry).upstream_status(CACHE).await
}

/// With the budget spent, pulls of a cached tag past its TTL (0 here) are
/// answered with no request upstream at all; an uncached tag still goes
/// upstream, and when its answer reports budget again, revalidation
/// resumes.
#[tokio::test]
async fn spent_rate_budget_serves_cached_tags_without_asking_upstream() {
    let (upstream, image) = upstream_with_busybox().await;
    RegistryClient::new(&upstream.url())
        .push_image(BUSYBOX, "1.37", &image)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    proxy.set_ratelimit(hub(5));
    // The pull waits for its revalidation: each answer's headers are read
    // before the pull is answered.
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url())
        .tag_ttl(0)
        .revalidate_timeout_ms(60_000)]);
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{BUSYBOX}");
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_eq!(ratelimit_gauges(&ferry).await, (100.0, 5.0));
    let status = upstream_status(&ferry).await;
    assert_eq!(status["ratelimit_remaining"], 5, "{status}");
    assert_eq!(status["rate_budget_spent"], false, "{status}");

    // The revalidation that reads "0 left".
    proxy.set_ratelimit(hub(0));
    let got = client.get_manifest(&repo, "1.36").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, image.manifest);
    assert_eq!(ratelimit_gauges(&ferry).await, (100.0, 0.0));
    let status = upstream_status(&ferry).await;
    assert_eq!(status["ratelimit_limit"], 100, "{status}");
    assert_eq!(status["ratelimit_remaining"], 0, "{status}");
    assert_eq!(status["rate_budget_spent"], true, "{status}");

    proxy.reset_counters();
    for _ in 0..3 {
        let got = client.get_manifest(&repo, "1.36").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, image.manifest);
    }
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert!(
        proxy.requests().is_empty(),
        "cached tags went upstream with the budget spent: {:?}",
        proxy.requests()
    );
    let log = ferry.log();
    assert_eq!(
        log.matches("upstream rate budget spent").count(),
        1,
        "the spent budget is logged once"
    );

    // A tag ferry never saw still goes upstream; the answer says the
    // window has reset.
    proxy.set_ratelimit(hub(7));
    let got = client.get_manifest(&repo, "1.37").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, image.manifest);
    assert!(proxy.count("GET", PathKind::Manifest) >= 1);
    assert_eq!(ratelimit_gauges(&ferry).await, (100.0, 7.0));
    assert_eq!(upstream_status(&ferry).await["rate_budget_spent"], false);
    assert_eq!(
        ferry.log().matches("upstream rate budget back").count(),
        1,
        "the budget's return is logged once"
    );

    proxy.reset_counters();
    let got = client.get_manifest(&repo, "1.36").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        proxy.count("HEAD", PathKind::Manifest),
        1,
        "the stale tag is revalidated again: {:?}",
        proxy.requests()
    );
}

/// `max_upstream_connections = 1`: while one blob download holds the only
/// connection (the fake holds its GET), a second cold blob sends nothing
/// upstream; once the first is released, both arrive byte-exact.
#[tokio::test]
async fn with_one_connection_a_second_cold_blob_waits_for_the_first() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry =
        Ferry::start(&[CacheSpec::new(CACHE, &proxy.url()).toml("max_upstream_connections = 1")]);
    proxy.set_fault(Fault::HoldBlobGets);
    let blob_url = |digest: &str| format!("{}/v2/{CACHE}/{BUSYBOX}/blobs/{digest}", ferry.url());
    let (layer, config) = (&image.layers()[0], image.config());

    let url = blob_url(&layer.digest);
    let first = tokio::spawn(async move { get_body(&url, &[]).await });
    wait_until(
        "the first blob GET is held upstream",
        Duration::from_secs(30),
        || proxy.held() == 1,
    )
    .await;
    let url = blob_url(&config.digest);
    let second = tokio::spawn(async move { get_body(&url, &[]).await });
    wait_until(
        "ferry's log says a request waits for an upstream connection",
        Duration::from_secs(30),
        || {
            ferry.log().contains(
                "waiting for a free one of the upstream connections (max_upstream_connections)",
            )
        },
    )
    .await;
    let second_upstream: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&config.digest))
        .collect();
    assert!(
        second_upstream.is_empty(),
        "the second blob reached the upstream while the only connection was held: {second_upstream:?}"
    );
    assert_eq!(proxy.held(), 1);

    proxy.release_held();
    for (read, blob) in [(first, layer), (second, config)] {
        let read = read.await.unwrap().unwrap();
        assert_eq!(read.status, StatusCode::OK, "{}", blob.digest);
        assert!(read.complete(), "{}: {:?}", blob.digest, read.error);
        assert_eq!(read.digest, blob.digest);
    }
    assert_eq!(proxy.blob_gets(&config.digest), 1);
    assert_eq!(proxy.blob_gets(&layer.digest), 1);
}

/// A cache capped at 1 MiB/s (and 2 connections) still delivers every
/// byte: skopeo's copy matches the image pushed upstream.
#[tokio::test]
async fn a_bandwidth_capped_cache_delivers_exact_bytes() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &upstream.url())
        .toml("max_upstream_bandwidth = \"1MiB\"")
        .toml("max_upstream_connections = 2")]);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    // And again from the store, where no cap applies.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
}

/// What a client sees when the cap stays full: a slow download (1 KiB/s,
/// 256 KiB) holds the only connection, and a pull of an uncached manifest
/// waits as long as a request may take (connect + read timeout, 2 s here)
/// for it, then gets a 503 naming the cap, with a Retry-After.
#[tokio::test]
async fn a_full_connection_cap_answers_503_naming_it() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::large(256 * 1024);
    RegistryClient::new(&upstream.url())
        .push_image(BUSYBOX, "big", &image)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url())
        .timeouts(1, 1)
        .toml("max_upstream_connections = 1")
        .toml("max_upstream_bandwidth = \"1KiB\"")]);
    let layer = &image.layers()[0];
    let url = format!(
        "{}/v2/{CACHE}/{BUSYBOX}/blobs/{}",
        ferry.url(),
        layer.digest
    );
    let slow = tokio::spawn(async move { get_body(&url, &[]).await });
    wait_until(
        "ferry's blob GET reached the upstream",
        Duration::from_secs(30),
        || proxy.blob_gets(&layer.digest) == 1,
    )
    .await;

    let got = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "big")
        .await;
    got.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNKNOWN",
        "a manifest behind a full cap",
    );
    let body = String::from_utf8_lossy(&got.body);
    assert!(
        body.contains(
            "upstream connections for this cache stayed busy for 2 s (max_upstream_connections)"
        ),
        "{body}"
    );
    assert_eq!(got.header("retry-after"), Some("5"));
    assert_eq!(proxy.count("GET", PathKind::Manifest), 0);
    let busy = metrics(&ferry.url())
        .await
        .sum("ferry_upstream_errors_total", &[("kind", "busy")]);
    assert_eq!(busy, 1.0, "the refusal is counted");
    slow.abort();
}

/// `download_concurrency` is bounded the same way: with its one slot held
/// by a slow download (1 KiB/s), a second cold blob waits as long as a
/// request may take (2 s here), then gets a 503 naming the setting, without
/// a request for it upstream.
#[tokio::test]
async fn a_full_download_concurrency_answers_503_naming_it() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let big = images::large(256 * 1024);
    let small = images::multi_layer("downloads");
    let client = RegistryClient::new(&upstream.url());
    client.push_image(BUSYBOX, "big", &big).await;
    client.push_image(BUSYBOX, "small", &small).await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url())
        .timeouts(1, 1)
        .toml("download_concurrency = 1")
        .toml("max_upstream_bandwidth = \"1KiB\"")]);
    let repo = format!("{CACHE}/{BUSYBOX}");
    let slow_layer = big.layers()[0].digest.clone();
    let url = format!("{}/v2/{repo}/blobs/{slow_layer}", ferry.url());
    let slow = tokio::spawn(async move { get_body(&url, &[]).await });
    wait_until(
        "ferry's download of the big layer reached the upstream",
        Duration::from_secs(30),
        || proxy.blob_gets(&slow_layer) == 1,
    )
    .await;

    let second = &small.layers()[0].digest;
    let got = RegistryClient::new(&ferry.url())
        .get_blob(&repo, second)
        .await;
    got.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNKNOWN",
        "a blob behind a full download_concurrency",
    );
    let body = String::from_utf8_lossy(&got.body);
    assert!(
        body.contains(
            "blob download slots for this cache stayed busy for 2 s (download_concurrency)"
        ),
        "{body}"
    );
    assert_eq!(got.header("retry-after"), Some("5"));
    assert_eq!(proxy.blob_gets(second), 0, "no request for it upstream");
    slow.abort();
}

/// A cache deleted through the API takes its rate-limit gauges with it: a
/// dashboard over `/metrics` must not show a budget for a cache that is gone.
#[tokio::test]
async fn a_deleted_cache_leaves_no_rate_limit_gauges() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    proxy.set_ratelimit(hub(42));
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let remote = api
        .create_remote(json!({"name": "limited", "url": proxy.url()}))
        .await;
    let remote = href_of(&remote);
    let distribution = api
        .create_distribution("limited", CACHE, &remote, false)
        .await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_eq!(ratelimit_gauges(&ferry).await, (100.0, 42.0));

    let deleted = api.delete(&distribution).await;
    api.task(deleted, "delete distribution").await;
    let scraped = metrics(&ferry.url()).await;
    for name in [
        "ferry_upstream_ratelimit_limit",
        "ferry_upstream_ratelimit_remaining",
    ] {
        assert!(
            scraped.series(name).is_empty(),
            "{name} kept for a deleted cache:\n{}",
            scraped.text
        );
    }
}
