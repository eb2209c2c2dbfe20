//! Issue 16: the optional local read cache (`[storage] local_cache`). An
//! edge node keeps serving the images it holds while the object store (a
//! real SeaweedFS of the test's own) is stopped; what it does not hold is a
//! 503 in the OCI format, and everything pulls again once the store is back,
//! without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::images::{self, Image};
use crate::support::inspect::{metrics, wait_until};
use crate::support::seaweed::Seaweed;
use crate::support::*;

const LOCAL_CACHE: &str = "local_cache = \"64MiB\"\n";
const COLD: &str = "example/cold";

/// Where the local read cache keeps its copy of `digest`.
fn local_copy(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    data_dir
        .join("local-cache/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
}

/// Whether the node holds the image's manifest and every blob locally.
fn holds(data_dir: &Path, image: &Image) -> bool {
    local_copy(data_dir, &image.digest).is_file()
        && image
            .all_blobs()
            .iter()
            .all(|blob| local_copy(data_dir, &blob.digest).is_file())
}

async fn readyz(ferry: &Ferry) -> (StatusCode, String) {
    let resp = http_client()
        .get(format!("{}/readyz", ferry.url()))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn with_a_local_cache_a_hot_image_pulls_while_the_object_store_is_stopped() {
    let weed = Seaweed::start();
    let (upstream, image) = upstream_with_busybox().await;
    let cold = images::multi_layer("cold");
    RegistryClient::new(&upstream.url())
        .push_image(COLD, "v1", &cold)
        .await;
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &upstream.url())],
        &FerryOptions {
            storage_toml: Some(format!("{}{LOCAL_CACHE}", weed.storage_toml("edge/"))),
            ..Default::default()
        },
    );
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    // Kept locally as it was committed (and uploaded).
    assert!(holds(&ferry.data_dir(), &image));

    weed.stop();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
    // Counted as the node's own reads, and the bytes it holds.
    let seen = metrics(&ferry.url()).await;
    assert!(seen.sum("ferry_local_cache_reads_total", &[("outcome", "hit")]) >= 2.0);
    let held: u64 = image.all_blobs().iter().map(|b| b.data.len() as u64).sum();
    assert!(seen.sum("ferry_local_cache_bytes", &[]) >= held as f64);

    // Content the node does not hold needs the store: a 503, in OCI terms.
    let layer = &cold.layers()[0];
    let url = format!("{}/v2/{CACHE}/{COLD}/blobs/{}", ferry.url(), layer.digest);
    let down = http_client().get(&url).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = down.bytes().await.unwrap();
    assert_eq!(error_code(&body), "UNAVAILABLE");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("object store"), "{text}");
    // Ready (a load balancer keeps sending pulls it can serve), and says why.
    let (status, why) = readyz(&ferry).await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert!(why.starts_with("ready, degraded:"), "{why}");
    assert!(
        why.contains("object store") && why.contains("local read cache"),
        "{why}"
    );

    weed.restart();
    assert_skopeo_copy_matches(&via_ferry(&ferry, COLD, "v1"), &cold).await;
    let back = get_body(&url, &[]).await.unwrap();
    assert_eq!(
        (back.status, back.digest.as_str()),
        (StatusCode::OK, layer.digest.as_str())
    );
    assert_eq!(readyz(&ferry).await, (StatusCode::OK, "ready\n".into()));
}

#[tokio::test]
async fn every_member_serves_its_hot_image_from_its_local_cache_while_the_store_is_stopped() {
    let weed = Seaweed::start();
    let (upstream, image) = upstream_with_busybox().await;
    let cluster = TestCluster::start_on_with_storage(
        &weed,
        3,
        &[CacheSpec::new(CACHE, &upstream.url())],
        None,
        LOCAL_CACHE,
    );
    for node in &cluster.nodes {
        assert_skopeo_copy_matches(&via_ferry(node, BUSYBOX, "1.36"), &image).await;
    }
    // A member that read a blob another stored copies it in the background.
    for node in &cluster.nodes {
        wait_until(
            "every member holds the image locally",
            Duration::from_secs(30),
            || holds(&node.data_dir(), &image),
        )
        .await;
    }

    weed.stop();
    for node in &cluster.nodes {
        assert_skopeo_copy_matches(&via_ferry(node, BUSYBOX, "1.36"), &image).await;
        let (status, why) = readyz(node).await;
        assert_eq!(status, StatusCode::OK, "{why}");
    }
}
