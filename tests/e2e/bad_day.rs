//! A bad day at an edge site: the uplink black-holes (accepts and never
//! answers), a name does not resolve, a port is closed, the upstream wants
//! credentials ferry lacks. What a user must see: cached images pull
//! without waiting on the dead link, uncached ones fail at once once ferry
//! knows the upstream is down, and podman and skopeo print the cause; an
//! anonymous client learns the cache's base path, never the upstream's
//! address; status says what ferry knows (and "unknown" before it knows).

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

/// `errors[0].message` of an OCI error body.
fn message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    v["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The `status/` entry of the cache at `base_path`, as anyone sees it.
async fn upstream_status(ferry: &Ferry, base_path: &str) -> Value {
    PulpApi::anonymous(ferry).upstream_status(base_path).await
}

/// The uplink dies after an image was cached: pulls of the cached tag past
/// its TTL complete while ferry's revalidation of it still waits on the
/// black hole (the fake holds it, open and unanswered), and concurrent
/// pulls share that one revalidation.
#[tokio::test]
async fn cached_pull_completes_while_the_black_hole_has_not_answered() {
    let (upstream, image) = upstream_with_busybox().await;
    let hole = FakeBlackHole::relay(&upstream.host());
    // Long upstream timeouts: the revalidation cannot end before the test.
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &hole.url())
        .tag_ttl(0)
        .timeouts(120, 120)
        .revalidate_timeout_ms(300)]);
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    assert_skopeo_copy_matches(&reference, &image).await;

    hole.black_hole();
    assert_skopeo_copy_matches(&reference, &image).await;
    let check = format!("HEAD /v2/{BUSYBOX}/manifests/1.36 ");
    assert_eq!(
        hole.waiting(&check),
        1,
        "the pull completed, so ferry's check of the tag must still be waiting on the black hole; swallowed: {:?}",
        hole.requests()
    );

    // Another client while that check is under way: served from the cache,
    // no second check sent into the hole.
    let podman = Podman::new();
    podman
        .pull(&reference, None, None)
        .await
        .expect_ok("podman pull of a cached image with the uplink black-holed");
    assert_eq!(podman.image_id_and_digest(&reference).await.1, image.digest);
    assert_eq!(hole.swallowed(&check), 1, "{:?}", hole.requests());
    assert_eq!(hole.waiting(&check), 1, "{:?}", hole.requests());
}

/// No image cached: the first pull waits out the (short) request timeout
/// and says so; after that the upstream is known down, and the next
/// uncached pull fails at once, 503 naming the cause, without a request
/// into the black hole.
#[tokio::test]
async fn uncached_pull_fails_at_once_after_the_breaker_opened() {
    let hole = FakeBlackHole::start();
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &hole.url()).timeouts(1, 1)]);
    let before = upstream_status(&ferry, CACHE).await;
    assert_eq!(before["state"], "unknown", "never contacted: {before}");
    assert_eq!(before["reachable"], false, "{before}");

    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{BUSYBOX}");
    let first = client.get_manifest(&repo, "1.36").await;
    assert_eq!(first.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        message(&first.body),
        format!("upstream of cache {CACHE} did not answer in time")
    );
    let down = upstream_status(&ferry, CACHE).await;
    assert_eq!(down["state"], "down", "{down}");
    assert!(
        down["cause"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{down}"
    );

    let manifests = format!("GET /v2/{BUSYBOX}/manifests/");
    let sent = hole.swallowed(&manifests);
    assert_eq!(sent, 1, "{:?}", hole.requests());
    let second = client.get_manifest(&repo, "1.37").await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&second.body), "UNKNOWN");
    let text = message(&second.body);
    assert!(
        text.starts_with(&format!("upstream of cache {CACHE} is down since "))
            && text.contains("(did not answer in time)"),
        "{text}"
    );
    assert!(
        !text.contains(&hole.host()),
        "upstream address leaked: {text}"
    );
    assert!(second.header("retry-after").is_some());
    assert_eq!(
        hole.swallowed(&manifests),
        sent,
        "ferry sent a request into the hole although it knew the upstream down: {:?}",
        hole.requests()
    );
}

/// An upstream that sends a manifest's headers and then stalls: the
/// request timeout ends it, and that trips the breaker like no answer at
/// all (the probe, whose body stalls too, does not close it again).
#[tokio::test]
async fn manifest_body_stall_trips_the_breaker() {
    let (upstream, _image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url()).timeouts(1, 1)]);
    proxy.set_fault(Fault::Stall);
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{BUSYBOX}");
    let first = client.get_manifest(&repo, "1.36").await;
    assert_eq!(first.status, StatusCode::GATEWAY_TIMEOUT);
    let gets = proxy.count("GET", PathKind::Manifest);
    assert_eq!(gets, 1);

    let second = client.get_manifest(&repo, "1.36").await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        message(&second.body).contains("did not answer in time"),
        "{}",
        message(&second.body)
    );
    assert_eq!(proxy.count("GET", PathKind::Manifest), gets);
}

/// What podman and skopeo print for each way an upstream fails: the cause,
/// in the status line they show, and no upstream address.
#[tokio::test]
async fn podman_and_skopeo_print_the_cause() {
    let auth_upstream = Upstream::start(UpstreamAuth::Basic).await;
    let hole = FakeBlackHole::start();
    let closed = format!("127.0.0.1:{}", util::free_port());
    let cases = [
        (
            "dns-cache",
            "http://nonexistent.invalid".to_string(),
            "could not be resolved (DNS)",
        ),
        (
            "refused-cache",
            format!("http://{closed}"),
            "refused the connection",
        ),
        ("hole-cache", hole.url(), "did not answer in time"),
        ("auth-cache", auth_upstream.url(), "refused the credentials"),
    ];
    let specs: Vec<CacheSpec> = cases
        .iter()
        .map(|(name, url, _)| CacheSpec::new(name, url).timeouts(1, 1))
        .collect();
    let ferry = Ferry::start(&specs);
    for (name, url, cause) in &cases {
        let reference = format!("{}/{name}/{BUSYBOX}:1.36", ferry.host());
        // skopeo first (the upstream is tried), then podman (for the three
        // that give no answer, the upstream is known down by then).
        let skopeo = skopeo_inspect_raw(&reference, None).await;
        let podman = Podman::new().pull(&reference, None, None).await;
        for (client, out) in [("skopeo", skopeo), ("podman", podman)] {
            assert!(!out.success, "{client} pull through {name} succeeded");
            let said = &out.stderr;
            assert!(
                said.contains(&format!("upstream of cache {name} ")) && said.contains(cause),
                "{client} does not tell that {name}'s upstream {cause}:\n{said}"
            );
            let host = url.trim_start_matches("http://");
            assert!(
                !said.contains(host),
                "{client} shows the upstream's address:\n{said}"
            );
        }
    }
}

/// The admin (and the log) learn the upstream's address; anyone else the
/// cache's base path only.
#[tokio::test]
async fn error_bodies_name_the_upstream_to_the_admin_only() {
    let closed = format!("127.0.0.1:{}", util::free_port());
    let ferry = Ferry::start_with(
        &[CacheSpec::new("private-net", &format!("http://{closed}"))],
        &[],
        &[],
    );
    let path = format!("/v2/private-net/{BUSYBOX}/manifests/1.36");
    let anonymous = PulpApi::anonymous(&ferry).get(&path).await;
    assert_eq!(anonymous.status, StatusCode::GATEWAY_TIMEOUT);
    let text = message(anonymous.text.as_bytes());
    assert_eq!(text, "upstream of cache private-net refused the connection");

    let admin = PulpApi::admin(&ferry).get(&path).await;
    assert_eq!(admin.status, StatusCode::SERVICE_UNAVAILABLE);
    let text = message(admin.text.as_bytes());
    assert!(
        text.starts_with(&format!(
            "upstream {closed} of cache private-net is down since"
        )) && text.contains("Connection refused"),
        "{text}"
    );
    assert!(ferry.log().contains(&closed), "the log names the upstream");
}

/// Two caches of one upstream share what ferry knows of it; status says
/// "unknown" before the first contact and since when the counters count.
#[tokio::test]
async fn status_is_unknown_until_contact_and_one_per_upstream() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start(&[
        CacheSpec::new("hub-a", &upstream.url()),
        CacheSpec::new("hub-b", &upstream.url()),
    ]);
    for cache in ["hub-a", "hub-b"] {
        assert_eq!(upstream_status(&ferry, cache).await["state"], "unknown");
    }
    let status = PulpApi::anonymous(&ferry).status().await;
    let started = status["started_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(humantime::parse_rfc3339(&started).is_ok(), "{status}");
    let start_secs = humantime::parse_rfc3339(&started)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let scraped = inspect::metrics(&ferry.url()).await;
    assert_eq!(
        scraped.sum("ferry_start_time_seconds", &[]),
        start_secs as f64,
        "{}",
        scraped.text
    );

    let a = format!("{}/hub-a/{BUSYBOX}:1.36", ferry.host());
    assert_skopeo_copy_matches(&a, &image).await;
    for cache in ["hub-a", "hub-b"] {
        let s = upstream_status(&ferry, cache).await;
        assert_eq!(s["state"], "reachable", "{cache}: {s}");
        assert_eq!(s["reachable"], true, "{cache}: {s}");
    }

    upstream.stop();
    let b = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("hub-b/{BUSYBOX}"), "1.36")
        .await;
    assert_eq!(b.status, StatusCode::GATEWAY_TIMEOUT);
    let (sa, sb) = (
        upstream_status(&ferry, "hub-a").await,
        upstream_status(&ferry, "hub-b").await,
    );
    assert_eq!(sa["state"], "down", "{sa}");
    assert_eq!(sa["cause"], sb["cause"], "the caches disagree");
    // hub-a's image is still served from the cache.
    assert_skopeo_copy_matches(&a, &image).await;
}
