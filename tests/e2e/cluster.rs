//! Issue 16: several ferry nodes on one object store (`[cluster]`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use sha2::Sha256;

use crate::support::*;

#[tokio::test]
async fn every_member_of_a_three_node_cluster_serves_a_pull() {
    let (upstream, image) = upstream_with_busybox().await;
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &upstream.url())], None);
    for node in &cluster.nodes {
        assert_skopeo_copy_matches(&via_ferry(node, BUSYBOX, "1.36"), &image).await;
    }
}

/// The upstream is counted by a pass-through proxy in front of it.
#[tokio::test]
async fn twenty_cold_pulls_over_three_members_fetch_each_blob_upstream_once_and_a_warm_image_none()
{
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &proxy.url())], None);
    all_alive(&cluster).await;
    let pulls = (0..20).map(|i| {
        let reference = via_ferry(&cluster.nodes[i % 3], BUSYBOX, "1.36");
        let image = &image;
        async move { assert_skopeo_copy_matches(&reference, image).await }
    });
    join_all(pulls).await;
    let (mut fetched, mut size) = (0, 0);
    for blob in image.all_blobs() {
        assert_eq!(
            proxy.blob_gets(&blob.digest),
            1,
            "upstream GETs of {} for 20 pulls over 3 members",
            blob.digest
        );
        fetched += proxy.blob_bytes_sent(&blob.digest);
        size += blob.data.len() as u64;
    }
    // The members did forward to each other (not each fetched alone).
    let mut forwarded = 0.0;
    for node in &cluster.nodes {
        assert_eq!(metric(node, "ferry_cluster_members_alive").await, 3.0);
        forwarded += metric(
            node,
            "ferry_cluster_forwarded_total{kind=\"blob\",outcome=\"ok\"}",
        )
        .await;
    }
    assert!(forwarded > 0.0, "no blob was forwarded");
    // Bytes a member streamed from another are not upstream traffic: the
    // members' counts add up to what the upstream sent.
    let mut counted = 0.0;
    for node in &cluster.nodes {
        counted += metric(node, "ferry_upstream_fetched_bytes_total").await;
    }
    assert_eq!(counted as u64, fetched + image.manifest.len() as u64);
    // For the closing note (not asserted).
    eprintln!(
        "cluster: 20 cold pulls over 3 members: {fetched} blob bytes from upstream for an image of {size} blob bytes; upstream requests: {} blob GETs, {} blob HEADs, {} manifest GETs, {} manifest HEADs",
        proxy.count("GET", PathKind::Blob),
        proxy.count("HEAD", PathKind::Blob),
        proxy.count("GET", PathKind::Manifest),
        proxy.count("HEAD", PathKind::Manifest),
    );

    // Pulled through the first member, then through the third: the third
    // reads the store (and asks the member responsible for the tag).
    let other = images::multi_layer("cluster-warm");
    RegistryClient::new(&upstream.url())
        .push_image("team/app", "v1", &other)
        .await;
    assert_skopeo_copy_matches(&via_ferry(&cluster.nodes[0], "team/app", "v1"), &other).await;
    let before = proxy.count("GET", PathKind::Blob);
    assert_skopeo_copy_matches(&via_ferry(&cluster.nodes[2], "team/app", "v1"), &other).await;
    assert_eq!(
        proxy.count("GET", PathKind::Blob),
        before,
        "the image pulled through another member caused upstream blob GETs"
    );
}

/// A slow upstream (rate shaping in the proxy) keeps the large layer's
/// download under way long enough to kill its owner in the middle of it.
#[tokio::test]
async fn killing_the_member_responsible_mid_download_leaves_the_others_pulling_until_it_returns() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::large(32 << 20);
    RegistryClient::new(&upstream.url())
        .push_image("big/layer", "1", &image)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &proxy.url())], None);
    all_alive(&cluster).await;
    let layer = &image.layers()[0];
    let owner = cluster.owner(&layer.digest);
    let (via, third) = ((owner + 1) % 3, (owner + 2) % 3);
    proxy.set_fault(Fault::SlowBlob {
        piece: 256 << 10,
        pause_ms: 25,
    });
    let reference = via_ferry(&cluster.nodes[via], "big/layer", "1");
    let first = tokio::spawn(async move {
        let dest = tempfile::tempdir().unwrap();
        skopeo_copy(&reference, dest.path(), None).await
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.blob_bytes_sent(&layer.digest) < 4 << 20 {
        assert!(
            Instant::now() < deadline,
            "the layer's download never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut cluster = cluster;
    let sent = proxy.blob_bytes_sent(&layer.digest);
    cluster.nodes[owner].kill();
    assert!(
        sent < layer.data.len() as u64,
        "killed after the download ended"
    );
    proxy.set_fault(Fault::None);
    // Cut off with its source, or served whole: either is a fair answer.
    let _ = first.await;
    // The probes notice too (the retries below do not wait for them).
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&cluster.nodes[third], "ferry_cluster_members_alive").await != 2.0 {
        assert!(
            Instant::now() < deadline,
            "the dead member still counts as alive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in [via, third] {
        let reference = via_ferry(&cluster.nodes[node], "big/layer", "1");
        assert_skopeo_copy_matches(&reference, &image).await;
    }
    // It comes back: the others count it again, with no restart, and it
    // serves what they stored meanwhile.
    cluster.nodes[owner].start_again();
    all_alive(&cluster).await;
    let reference = via_ferry(&cluster.nodes[owner], "big/layer", "1");
    assert_skopeo_copy_matches(&reference, &image).await;
}

/// Waits (bounded) until every member counts every member alive: the
/// members start one after another, and a probe before a member listened
/// marked it down until the next probe.
async fn all_alive(cluster: &TestCluster) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &cluster.nodes {
        while metric(node, "ferry_cluster_members_alive").await != cluster.nodes.len() as f64 {
            assert!(Instant::now() < deadline, "members not all alive");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The sum of the samples of `name` (a metric, with labels if given) in
/// the node's `/metrics`; 0 when there is none.
async fn metric(node: &Ferry, name: &str) -> f64 {
    let answer = RegistryClient::new(&node.url())
        .fetch(Method::GET, "/metrics", &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    String::from_utf8_lossy(&answer.body)
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_member_dropped_from_the_list_on_sighup_is_no_longer_asked() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &upstream.url())], None);
    all_alive(&cluster).await;
    // A repository whose tags the second member is responsible for while
    // all three are listed.
    let repo = (0..200)
        .map(|i| format!("sighup/app{i}"))
        .find(|r| cluster.owner(&format!("{CACHE}/{r}")) == 1)
        .expect("some repository lands on the second member");
    let image = images::busybox(Flavor::Docker, "sighup");
    RegistryClient::new(&upstream.url())
        .push_image(&repo, "1", &image)
        .await;
    let path = cluster.nodes[0].config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    let without = config.replace(&format!("{:?}, ", cluster.urls[1]), "");
    assert_ne!(config, without, "the member list as written: {config}");
    std::fs::write(&path, without).unwrap();
    cluster.nodes[0].signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.nodes[0].log().contains("cluster members reloaded") {
        assert!(Instant::now() < deadline, "SIGHUP not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_skopeo_copy_matches(&via_ferry(&cluster.nodes[0], &repo, "1"), &image).await;
    let asked = cluster.nodes[1].log();
    assert!(
        !asked.contains(&repo),
        "the dropped member was asked for {repo}"
    );
    for blob in image.all_blobs() {
        assert!(
            !asked.contains(&blob.digest),
            "the dropped member was asked for {}",
            blob.digest
        );
    }
}

#[tokio::test]
async fn an_outsiders_forged_or_stale_cluster_signature_opens_nothing_private() {
    let (upstream, image) = upstream_with_busybox().await;
    let cache = CacheSpec::new(CACHE, &upstream.url()).toml("private = true");
    let cluster = TestCluster::start(3, &[cache], None);
    let path = format!("/v2/{CACHE}/{BUSYBOX}/manifests/1.36");
    let client = RegistryClient::new(&cluster.nodes[0].url());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // As a member signs (src/cluster/): HMAC-SHA256 of the request and
    // the time, keyed here with the object store's secret (no `secret` set).
    let sign = |t: u64| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(seaweed::shared().secret_key().as_bytes()).unwrap();
        mac.update(format!("ferry-cluster/1\nGET\n{path}\n{t}").as_bytes());
        format!("t={t},sig={}", hex::encode(mac.finalize().into_bytes()))
    };
    let forged = format!("t={now},sig={}", "ab".repeat(32));
    let replayed = sign(now - 3600);
    for (what, header) in [
        ("no signature", None),
        ("a forged signature", Some(forged.as_str())),
        ("a signature an hour old", Some(replayed.as_str())),
    ] {
        let mut headers = vec![("accept", image.media_type.as_str())];
        headers.extend(header.map(|h| ("ferry-cluster", h)));
        let answer = client.fetch(Method::GET, &path, &headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(!answer.body.starts_with(&image.manifest), "{what}");
    }
    // The same request signed as a member is: the 401s above were the
    // signature's doing.
    let member = sign(now);
    let answer = client
        .fetch(
            Method::GET,
            &path,
            &[("accept", &image.media_type), ("ferry-cluster", &member)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("docker-content-digest"),
        Some(image.digest.as_str())
    );
}
