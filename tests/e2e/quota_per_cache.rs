//! Issue 14, per-cache quota: a cache with its own `max_size` evicts its
//! own least recently pulled images, the other caches' images stay, and the
//! global `max_size` still applies across caches. Content shared by two
//! caches counts in both and leaves the disk only when neither references
//! it. Against Debian's docker-registry, pulled with skopeo; the counting
//! proxy (a fake) only counts what ferry asks upstream.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::fake_proxy::Fault;
use crate::support::images::{self, Image};
use crate::support::inspect::{
    assert_blob_tree_intact, blobs_total, has_blob, metrics, wait_until,
};
use crate::support::pulp_api::{href_of, PulpApi};
use crate::support::*;

const MIB: usize = 1 << 20;
const SMALL: &str = "small";
const BIG: &str = "big";
/// Room for one of the 8 MiB images below, not two.
const SMALL_MAX: u64 = 12 << 20;

fn through(ferry: &Ferry, cache: &str, repo: &str) -> String {
    image_ref(ferry.host(), &format!("{cache}/{repo}"), "v1")
}

fn layer_of(image: &Image) -> &str {
    &image.layers()[0].digest
}

/// Three distinct 8 MiB images, pushed upstream as `example/{a,b,c}:v1`
/// (also the images of the pin tests).
pub(crate) async fn three_images(upstream: &Upstream) -> [std::sync::Arc<Image>; 3] {
    let images = [
        images::large(8 * MIB),
        images::large(8 * MIB + 4096),
        images::large(8 * MIB + 8192),
    ];
    let client = RegistryClient::new(&upstream.url());
    for (name, image) in ["a", "b", "c"].iter().zip(&images) {
        client
            .push_image(&format!("example/{name}"), "v1", image)
            .await;
    }
    images
}

/// Eviction lines of the ferry log that name `needle`.
fn evictions(ferry: &Ferry, within: &str, needle: &str) -> Vec<String> {
    ferry
        .log()
        .lines()
        .filter(|l| l.contains(within) && l.contains(needle))
        .map(str::to_string)
        .collect()
}

const CACHE_EVICTION: &str = "evicted to stay within the cache's max_size";
const GLOBAL_EVICTION: &str = "evicted to stay within max_size";

/// The status entry of a cache and its `bytes`.
async fn cache_status(ferry: &Ferry, cache: &str) -> (Value, u64) {
    let status = PulpApi::anonymous(ferry).upstream_status(cache).await;
    let bytes = status["bytes"].as_u64().unwrap();
    (status, bytes)
}

/// The running total (metrics) agrees with the walk (status) for `cache`.
async fn assert_tally_matches_status(ferry: &Ferry, cache: &str) -> u64 {
    let (_, walked) = cache_status(ferry, cache).await;
    let m = metrics(&ferry.url()).await;
    let running = m.sum("ferry_cache_bytes", &[("cache", cache)]);
    assert_eq!(
        running, walked as f64,
        "ferry_cache_bytes{{cache={cache}}} is not what the status walk finds\n{}",
        m.text
    );
    walked
}

#[tokio::test]
async fn a_cache_over_its_max_size_evicts_its_own_oldest_image_and_the_other_cache_keeps_its_images(
) {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let [a, b, c] = three_images(&upstream).await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let mut ferry = Ferry::start(&[
        CacheSpec::new(SMALL, &proxy.url()).toml("max_size = \"12MiB\""),
        CacheSpec::new(BIG, &proxy.url()),
    ]);
    let data = ferry.data_dir();

    // `a` is in both caches (one copy on disk, counted in each), `c` in big.
    assert_skopeo_copy_matches(&through(&ferry, BIG, "example/a"), &a).await;
    assert_skopeo_copy_matches(&through(&ferry, BIG, "example/c"), &c).await;
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    assert_eq!(proxy.blob_gets(layer_of(&a)), 1, "a's layer fetched twice");
    let small = assert_tally_matches_status(&ferry, SMALL).await;
    let big = assert_tally_matches_status(&ferry, BIG).await;
    assert!(
        (8 << 20..=SMALL_MAX).contains(&small),
        "small holds {small}"
    );
    assert!(big >= 16 << 20, "big holds {big}: a and c");

    // `b` does not fit beside `a` in small: small's `a` goes, big's stay.
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/b"), &b).await;
    let evicted = evictions(&ferry, CACHE_EVICTION, "");
    assert!(
        evicted.iter().any(|l| l.contains("small/example/a")),
        "small's a not evicted: {evicted:#?}"
    );
    assert!(
        !evicted
            .iter()
            .any(|l| l.contains("big/") || l.contains("small/example/b")),
        "evicted another cache's image or the one being pulled: {evicted:#?}"
    );
    assert!(
        has_blob(&data, layer_of(&a)),
        "a's layer left the disk while big still holds it"
    );
    for blob in b.all_blobs().into_iter().chain(c.all_blobs()) {
        assert!(has_blob(&data, &blob.digest), "{} not stored", blob.digest);
    }
    let (status, small) = cache_status(&ferry, SMALL).await;
    assert_eq!(status["max_size"], json!(SMALL_MAX), "{status}");
    assert!(small <= SMALL_MAX, "small holds {small} > its max_size");
    assert_eq!(assert_tally_matches_status(&ferry, SMALL).await, small);
    let (status, big_after) = cache_status(&ferry, BIG).await;
    assert_eq!(status["max_size"], Value::Null, "{status}");
    assert_eq!(big_after, big, "big's bytes moved with small's eviction");
    assert_tally_matches_status(&ferry, BIG).await;
    let m = metrics(&ferry.url()).await;
    assert_eq!(
        m.sum("ferry_cache_max_bytes", &[("cache", SMALL)]),
        SMALL_MAX as f64
    );
    assert!(m.series("ferry_cache_max_bytes").len() == 1, "{}", m.text);
    assert!(m.sum("ferry_cache_evictions_total", &[("cache", SMALL)]) >= 1.0);
    assert_eq!(m.sum("ferry_cache_evictions_total", &[("cache", BIG)]), 0.0);

    // Big's images are still cached: pulling them asks upstream nothing.
    let before = proxy.requests().len();
    assert_skopeo_copy_matches(&through(&ferry, BIG, "example/a"), &a).await;
    assert_skopeo_copy_matches(&through(&ferry, BIG, "example/c"), &c).await;
    assert_eq!(
        proxy.requests().len(),
        before,
        "a warm pull in big went upstream"
    );

    // Small's `a` is gone from small (its tag is asked upstream again) but
    // its layer is still on disk for big: not downloaded a second time.
    // Now `b` is small's oldest and goes.
    let manifests_before = proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains("example/a/manifests/"))
        .count();
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    let manifests_after = proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains("example/a/manifests/"))
        .count();
    assert!(
        manifests_after > manifests_before,
        "small's a was not evicted"
    );
    assert_eq!(
        proxy.blob_gets(layer_of(&a)),
        1,
        "a's layer downloaded again"
    );
    assert!(
        !evictions(&ferry, CACHE_EVICTION, "small/example/b").is_empty(),
        "small's b not evicted for a"
    );
    assert!(
        !has_blob(&data, layer_of(&b)),
        "b's layer kept: nothing references it"
    );
    assert!(assert_tally_matches_status(&ferry, SMALL).await <= SMALL_MAX);
    assert_blob_tree_intact(&data);

    // A restart restores the running totals from the store (kill -9: what
    // the walk finds after it, the restored tally holds too).
    ferry.restart();
    assert!(assert_tally_matches_status(&ferry, SMALL).await > 0);
    assert_tally_matches_status(&ferry, BIG).await;
}

#[tokio::test]
async fn the_global_max_size_still_evicts_across_caches() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let [a, b, c] = three_images(&upstream).await;
    let ferry = Ferry::start_opts(
        &[
            CacheSpec::new(SMALL, &upstream.url()).toml("max_size = \"12MiB\""),
            CacheSpec::new(BIG, &upstream.url()),
        ],
        &FerryOptions {
            max_size: Some("20MiB".into()),
            ..Default::default()
        },
    );
    let data = ferry.data_dir();

    // small's `a` is the least recently pulled of all; small is within its
    // own max_size, but the store is not within the global one.
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    assert_skopeo_copy_matches(&through(&ferry, BIG, "example/c"), &c).await;
    assert_skopeo_copy_matches(&through(&ferry, BIG, "example/b"), &b).await;
    assert!(
        !evictions(&ferry, GLOBAL_EVICTION, "small/example/a").is_empty(),
        "the global max_size did not evict across caches:\n{}",
        ferry.log()
    );
    assert!(evictions(&ferry, CACHE_EVICTION, "").is_empty());
    assert!(!has_blob(&data, layer_of(&a)));
    assert!(has_blob(&data, layer_of(&b)) && has_blob(&data, layer_of(&c)));
    let total = blobs_total(&data);
    assert!(total <= 20 << 20, "blobs/ holds {total} bytes");
    assert_eq!(assert_tally_matches_status(&ferry, SMALL).await, 0);
    let m = metrics(&ferry.url()).await;
    assert!(m.sum("ferry_cache_evictions_total", &[("cache", SMALL)]) >= 1.0);
    assert_blob_tree_intact(&data);
}

#[tokio::test]
async fn a_max_size_set_through_the_api_bounds_its_cache() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let [a, b, c] = three_images(&upstream).await;
    let too_large = images::large(16 * MIB);
    RegistryClient::new(&upstream.url())
        .push_image("example/large", "v1", &too_large)
        .await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let remote = api
        .create_remote(json!({"name": "small", "url": upstream.url(), "max_size": SMALL_MAX}))
        .await;
    assert_eq!(remote["max_size"], json!(SMALL_MAX), "{remote}");
    api.create_distribution("small", SMALL, &href_of(&remote), false)
        .await;
    let data = ferry.data_dir();

    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/b"), &b).await;
    assert!(
        !evictions(&ferry, CACHE_EVICTION, "small/example/a").is_empty(),
        "a not evicted within the API-set max_size:\n{}",
        ferry.log()
    );
    assert!(!has_blob(&data, layer_of(&a)));
    let (status, bytes) = cache_status(&ferry, SMALL).await;
    assert_eq!(status["max_size"], json!(SMALL_MAX), "{status}");
    assert!(bytes <= SMALL_MAX);

    // An image whose layer alone exceeds the cache's max_size is served
    // whole but never cached, and evicts nothing for it.
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/large"), &too_large).await;
    assert!(!has_blob(&data, layer_of(&too_large)));
    assert!(
        has_blob(&data, layer_of(&b)),
        "b evicted for a layer that cannot fit"
    );
    assert_eq!(
        cache_status(&ferry, SMALL).await.1,
        assert_tally_matches_status(&ferry, SMALL).await
    );

    // Deleting the repository through the API uncharges the cache.
    let repo = api
        .repository(&format!("{SMALL}/example/b"))
        .await
        .expect("small/example/b");
    api.task(api.delete(&href_of(&repo)).await, "DELETE repository")
        .await;
    assert!(!has_blob(&data, layer_of(&b)));
    assert!(assert_tally_matches_status(&ferry, SMALL).await < 1 << 20);

    // Lifting the limit through the API: the status shows none.
    let lifted = api
        .patch(&href_of(&remote), json!({"max_size": null}))
        .await;
    assert!(lifted.status.is_success(), "{}", lifted.text);
    if lifted.status == StatusCode::ACCEPTED {
        api.task(lifted, "lift max_size").await;
    }
    let (status, _) = cache_status(&ferry, SMALL).await;
    assert_eq!(status["max_size"], Value::Null, "{status}");
    assert!(metrics(&ferry.url())
        .await
        .series("ferry_cache_max_bytes")
        .is_empty());

    // Lowering it again below what the cache holds evicts at once, not at
    // the next pull: the least recently pulled image goes.
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/c"), &c).await;
    assert!(cache_status(&ferry, SMALL).await.1 > SMALL_MAX);
    let lowered = api
        .patch(&href_of(&remote), json!({"max_size": SMALL_MAX}))
        .await;
    assert!(lowered.status.is_success(), "{}", lowered.text);
    if lowered.status == StatusCode::ACCEPTED {
        api.task(lowered, "lower max_size").await;
    }
    assert!(assert_tally_matches_status(&ferry, SMALL).await <= SMALL_MAX);
    assert!(
        !has_blob(&data, layer_of(&a)),
        "a, the least recently pulled, was not evicted"
    );
    assert!(has_blob(&data, layer_of(&c)), "c, pulled last, was evicted");
}

/// A multi-platform image is an index tag plus children pulled by digest:
/// evicting it must take the children (and their layers) too, or a cache of
/// Docker Hub images could never get under its max_size.
#[tokio::test]
async fn evicting_a_multi_platform_image_frees_its_platform_layers() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let [a, b, _] = three_images(&upstream).await;
    let multi = images::multi_arch(images::Flavor::Oci, "quota-multi");
    RegistryClient::new(&upstream.url())
        .push_image("example/multi", "v1", &multi)
        .await;
    let ferry =
        Ferry::start(&[CacheSpec::new(SMALL, &upstream.url()).toml("max_size = \"12MiB\"")]);
    let data = ferry.data_dir();
    let platform_layers: Vec<&str> = ["amd64", "arm64"]
        .iter()
        .map(|arch| layer_of(multi.child(arch)))
        .collect();

    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(&through(&ferry, SMALL, "example/multi"), dest.path(), None)
        .await
        .expect_ok("skopeo copy of the multi-platform image");
    assert!(
        platform_layers.iter().any(|l| has_blob(&data, l)),
        "no platform layer cached"
    );
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    // `b` needs room: the multi-platform image (oldest), then `a`, go.
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/b"), &b).await;
    assert!(
        !evictions(&ferry, CACHE_EVICTION, "small/example/multi").is_empty(),
        "the multi-platform image was not evicted:\n{}",
        ferry.log()
    );
    for layer in &platform_layers {
        assert!(
            !has_blob(&data, layer),
            "{layer} kept after its image was evicted"
        );
    }
    assert!(has_blob(&data, layer_of(&b)));
    assert!(assert_tally_matches_status(&ferry, SMALL).await <= SMALL_MAX);
    assert_blob_tree_intact(&data);
}

/// An upstream that sends a blob without saying its size first (chunked;
/// docker-registry always sends Content-Length, so the counting proxy, a
/// fake, drops it): the cache goes over its max_size while the blob
/// arrives, and is brought back within it right after it is stored.
#[tokio::test]
async fn a_blob_of_unannounced_size_is_evicted_for_right_after_it_is_stored() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let [a, b, _] = three_images(&upstream).await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    proxy.set_fault(Fault::BlobsWithoutLength);
    let ferry = Ferry::start(&[CacheSpec::new(SMALL, &proxy.url()).toml("max_size = \"12MiB\"")]);
    let data = ferry.data_dir();

    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/a"), &a).await;
    assert_skopeo_copy_matches(&through(&ferry, SMALL, "example/b"), &b).await;
    // The eviction follows the commit, after the client had its bytes.
    wait_until(
        "small's a evicted after b was stored",
        std::time::Duration::from_secs(30),
        || !has_blob(&data, layer_of(&a)),
    )
    .await;
    assert!(
        has_blob(&data, layer_of(&b)),
        "the image being pulled was evicted"
    );
    assert!(evictions(&ferry, CACHE_EVICTION, "small/example/b").is_empty());
    // Evicted after the commit (the size was not known before it).
    let log = ferry.log();
    let at = |needle: &str| {
        log.lines()
            .position(|l| needle.split('|').all(|part| l.contains(part)))
            .unwrap_or_else(|| panic!("no log line with {needle}:\n{log}"))
    };
    assert!(
        at(&format!("blob cached|{}", layer_of(&b)))
            < at(&format!("{CACHE_EVICTION}|small/example/a")),
        "a was evicted before b's layer was stored: its size was known"
    );
    assert!(assert_tally_matches_status(&ferry, SMALL).await <= SMALL_MAX);
    assert_blob_tree_intact(&data);
}
