//! The point of a cache: what was pulled once stays pullable while the
//! upstream is down, also across a ferry restart.

use crate::support::*;

/// Default TTL: the tag is fresh, ferry needs no upstream at all.
#[tokio::test]
async fn cached_image_is_served_while_upstream_is_down() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    upstream.stop();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
}

/// TTL 0: the tag is always stale, so ferry tries the upstream, fails to
/// connect, and must fall back to what it has; also after a restart of
/// ferry itself (the cache is on disk, not in memory).
#[tokio::test]
async fn stale_tag_falls_back_to_cache_and_survives_restart() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_with_ttl(&upstream.url(), 0);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    upstream.stop();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;

    ferry.restart();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
    let podman = Podman::new();
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    podman
        .pull(&reference, None, None)
        .await
        .expect_ok("podman pull with upstream down");
    assert_eq!(podman.image_id_and_digest(&reference).await.1, image.digest);

    // And when the upstream comes back, pulls keep working.
    upstream.start_again().await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
}
