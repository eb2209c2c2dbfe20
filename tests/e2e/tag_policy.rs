//! Tag policies and the stale-serving policy of a cache. What a user must
//! see: a tag matching an immutable pattern is answered from the cache for
//! ever (not one upstream request), `latest` still follows the upstream
//! after its TTL, and when the upstream refuses (401) or no longer has a
//! cached tag (404) the cache serves it or answers the registry's error as
//! the cache's `stale_if` says, logged and counted.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::images::busybox;
use crate::support::inspect::metrics;
use crate::support::pulp_api::{DISTRIBUTIONS, REMOTES};
use crate::support::*;

/// The manifest answer of `reference` through ferry's cache `base`.
async fn pull(ferry: &Ferry, base: &str, reference: &str) -> registry_client::Fetched {
    RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{base}/{BUSYBOX}"), reference)
        .await
}

/// Asserts a pull answered 200 with `image`'s manifest.
fn assert_serves(got: &registry_client::Fetched, image: &Image, what: &str) {
    assert_eq!(
        got.status,
        StatusCode::OK,
        "{what}: {}",
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(
        got.header("docker-content-digest"),
        Some(image.digest.as_str()),
        "{what}: wrong manifest"
    );
    assert_eq!(got.body, image.manifest, "{what}: wrong manifest bytes");
}

/// Requests ferry sent upstream for the manifest `reference` of busybox.
fn manifest_requests(proxy: &FakeFaultProxy, reference: &str) -> Vec<String> {
    let suffix = format!("/{BUSYBOX}/manifests/{reference}");
    proxy
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&suffix))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn stale_served(ferry: &Ferry, cache: &str, reason: &str) -> f64 {
    metrics(&ferry.url()).await.sum(
        "ferry_stale_served_total",
        &[("cache", cache), ("reason", reason)],
    )
}

/// The cache revalidates every tag (TTL 0) except those its patterns
/// trust longer: `v*.*.*` never, `stable` for an hour. Everything moves
/// upstream; only `latest` (the cache's TTL) follows. Set in the config file.
#[tokio::test]
async fn immutable_tags_are_never_revalidated_and_latest_follows_after_its_ttl() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let (old, new) = (
        busybox(Flavor::Docker, "old"),
        busybox(Flavor::Docker, "new"),
    );
    for tag in ["latest", "v1.2.3", "stable"] {
        direct.push_image(BUSYBOX, tag, &old).await;
    }
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url())
        .tag_ttl(0)
        .toml(r#"tag_policies = [{ pattern = "v*.*.*", ttl = "never" }, { pattern = "stable", ttl = 3600 }]"#)]);
    for tag in ["latest", "v1.2.3", "stable"] {
        assert_serves(&pull(&ferry, CACHE, tag).await, &old, tag);
    }

    for tag in ["latest", "v1.2.3", "stable"] {
        direct.push_image(BUSYBOX, tag, &new).await;
    }
    proxy.reset_counters();
    assert_serves(
        &pull(&ferry, CACHE, "latest").await,
        &new,
        "latest, moved upstream, past its TTL",
    );
    for round in 0..3 {
        assert_serves(
            &pull(&ferry, CACHE, "v1.2.3").await,
            &old,
            &format!("immutable v1.2.3, pull {round}"),
        );
        assert_serves(
            &pull(&ferry, CACHE, "stable").await,
            &old,
            &format!("stable within its hour, pull {round}"),
        );
    }
    // A real client pulls the whole immutable image from the cache.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "v1.2.3"), &old).await;

    assert_eq!(manifest_requests(&proxy, "v1.2.3"), Vec::<String>::new());
    assert_eq!(manifest_requests(&proxy, "stable"), Vec::<String>::new());
    let latest = manifest_requests(&proxy, "latest");
    assert!(
        latest.iter().any(|r| r.starts_with("HEAD ")),
        "latest was not revalidated: {latest:?}"
    );
}

/// Two caches of one upstream: `open` keeps the default `stale_if`
/// (error, unauthorized), `strict` serves nothing unconfirmed. The fake
/// proxy then refuses every request with 401, then fails them with 503.
#[tokio::test]
async fn refused_or_failing_upstream_serves_cached_tags_only_where_stale_if_allows() {
    const SECRET: &str = "tag-policy-e2e-password";
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[
        CacheSpec::new("open", &proxy.url())
            .tag_ttl(0)
            .credentials(USER, SECRET),
        CacheSpec::new("strict", &proxy.url())
            .tag_ttl(0)
            .credentials(USER, SECRET)
            .toml("stale_if = []"),
    ]);
    // Whole images cached: a manifest without its layers would help no one.
    for cache in ["open", "strict"] {
        assert_skopeo_copy_matches(
            &image_ref(ferry.host(), &format!("{cache}/{BUSYBOX}"), "1.36"),
            &image,
        )
        .await;
    }

    proxy.set_fault(Fault::Unauthorized);
    assert_serves(
        &pull(&ferry, "open", "1.36").await,
        &image,
        "open cache, upstream answers 401",
    );
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("open/{BUSYBOX}"), "1.36"),
        &image,
    )
    .await;
    let refused = pull(&ferry, "strict", "1.36").await;
    // The upstream refused ferry, not the client: a gateway error, never a
    // 401 that would send the client looking for its own credentials.
    refused.assert_error(
        StatusCode::BAD_GATEWAY,
        "UNKNOWN",
        "strict cache, upstream answers 401",
    );
    let message = String::from_utf8_lossy(&refused.body);
    assert!(
        message.contains("upstream of cache strict refused the credentials"),
        "{message}"
    );
    assert!(stale_served(&ferry, "open", "unauthorized").await >= 1.0);
    assert_eq!(stale_served(&ferry, "strict", "unauthorized").await, 0.0);

    proxy.set_fault(Fault::Unavailable);
    assert_serves(
        &pull(&ferry, "open", "1.36").await,
        &image,
        "open cache, upstream answers 503",
    );
    let failed = pull(&ferry, "strict", "1.36").await;
    assert!(
        failed.status.is_server_error(),
        "strict cache, upstream answers 503: {} {}",
        failed.status,
        String::from_utf8_lossy(&failed.body)
    );
    assert!(stale_served(&ferry, "open", "error").await >= 1.0);

    let log = ferry.log();
    assert!(
        log.lines()
            .any(|l| l.contains("serving the cached tag (stale_if)")
                && l.contains("reason=\"unauthorized\"")
                && l.contains("open/library/busybox")
                && l.contains("1.36")),
        "no warning names the repository, tag and reason of the stale answer"
    );
    assert!(
        !log.contains(SECRET),
        "ferry's log holds the upstream password"
    );
}

/// A tag deleted upstream (docker-registry's own DELETE of its manifest):
/// the cache `keep` (stale_if with not_found, set through the API) goes on
/// serving it, the cache `follow` (the default) answers 404 as the
/// upstream does.
#[tokio::test]
async fn tag_deleted_upstream_is_served_only_with_stale_if_not_found() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[], &["--tag-ttl-secs", "0"], &[]);
    let admin = PulpApi::admin(&ferry);
    for (name, stale_if) in [
        ("keep", json!(["error", "not_found"])),
        ("follow", Value::Null),
    ] {
        let mut body = json!({"name": name, "url": upstream.url()});
        if !stale_if.is_null() {
            body["stale_if"] = stale_if;
        }
        let remote = admin.create_remote(body).await;
        let answer = admin
            .post(
                DISTRIBUTIONS,
                json!({"name": name, "base_path": name, "remote": remote["pulp_href"]}),
            )
            .await;
        admin
            .task(answer, &format!("create distribution {name}"))
            .await;
    }
    let remotes = admin.list(REMOTES).await;
    let keep = remotes.iter().find(|r| r["name"] == "keep").unwrap();
    assert_eq!(keep["stale_if"], json!(["error", "not_found"]), "{keep}");
    for cache in ["keep", "follow"] {
        assert_serves(&pull(&ferry, cache, "1.36").await, &image, cache);
    }

    let deleted = RegistryClient::new(&upstream.url())
        .fetch(
            Method::DELETE,
            &format!("/v2/{BUSYBOX}/manifests/{}", image.digest),
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "delete upstream");
    let upstream_now = RegistryClient::new(&upstream.url())
        .get_manifest(BUSYBOX, "1.36")
        .await;
    assert_eq!(
        upstream_now.status,
        StatusCode::NOT_FOUND,
        "tag still upstream"
    );

    assert_serves(
        &pull(&ferry, "keep", "1.36").await,
        &image,
        "keep: tag deleted upstream",
    );
    pull(&ferry, "follow", "1.36").await.assert_error(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "follow: tag deleted upstream",
    );
    assert_eq!(stale_served(&ferry, "keep", "not_found").await, 1.0);
    assert_eq!(stale_served(&ferry, "follow", "not_found").await, 0.0);
}
