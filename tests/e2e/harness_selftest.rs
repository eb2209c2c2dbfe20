//! Checks of the harness itself against docker-registry directly (no
//! ferry): when a ferry test fails, these tell whether the harness or ferry
//! is at fault.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::images::{self, Flavor};
use crate::support::*;

#[tokio::test]
async fn selftest_images_round_trip_through_docker_registry_with_skopeo() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let busybox_oci = images::busybox(Flavor::Oci, "oci");
    let multi = images::multi_layer("multi");
    let index = images::multi_arch(Flavor::Oci, "idx");
    let list = images::multi_arch(Flavor::Docker, "list");
    let artifact = images::artifact(
        &busybox_oci,
        "application/vnd.example.sbom",
        "{\"sbom\":true}",
    );
    let cases = [
        ("busybox", "oci", &busybox_oci),
        ("multi", "v1", &multi),
        ("artifact", "sig", &artifact),
    ];
    for (repo, tag, image) in cases {
        client.push_image(repo, tag, image).await;
        let dest = tempfile::tempdir().unwrap();
        skopeo_copy(
            &format!("{}/{repo}:{tag}", upstream.host()),
            dest.path(),
            None,
        )
        .await
        .expect_ok("skopeo copy");
        assert_dir_matches(dest.path(), image);
    }
    for (repo, image) in [("index", &index), ("list", &list)] {
        client.push_image(repo, "multi", image).await;
        let raw = skopeo_inspect_raw(&format!("{}/{repo}:multi", upstream.host()), None)
            .await
            .expect_ok("inspect");
        assert_eq!(raw.stdout.as_bytes(), &image.manifest[..]);
        let child = client
            .get_manifest(repo, &image.child("arm64").digest)
            .await;
        assert_eq!(child.body, image.child("arm64").manifest);
    }
    // docker-registry 2.8 has no referrers API: clients fall back to tags.
    let referrers = client
        .fetch(
            Method::GET,
            &format!("/v2/artifact/referrers/{}", busybox_oci.digest),
            &[],
        )
        .await;
    assert_eq!(referrers.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn selftest_podman_pulls_from_docker_registry() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let busybox = images::busybox(Flavor::Docker, "1.36");
    let index = images::multi_arch(Flavor::Oci, "podman");
    client.push_image(BUSYBOX, "1.36", &busybox).await;
    client.push_image(BUSYBOX, "multi", &index).await;
    let podman = Podman::new();

    let image = format!("{}/{BUSYBOX}:1.36", upstream.host());
    podman
        .pull(&image, None, None)
        .await
        .expect_ok("podman pull");
    let (id, digest) = podman.image_id_and_digest(&image).await;
    assert_eq!(digest, busybox.digest);
    assert_eq!(format!("sha256:{id}"), busybox.config().digest);

    for arch in ["amd64", "arm64"] {
        let image = format!("{}/{BUSYBOX}:multi", upstream.host());
        podman
            .pull(&image, Some(arch), None)
            .await
            .expect_ok("podman pull --arch");
        let (id, _) = podman.image_id_and_digest(&image).await;
        assert_eq!(
            format!("sha256:{id}"),
            index.child(arch).config().digest,
            "{arch}"
        );
    }
}

#[tokio::test]
async fn selftest_basic_auth_upstream() {
    let upstream = Upstream::start(UpstreamAuth::Basic).await;
    let anonymous = RegistryClient::new(&upstream.url())
        .get_manifest(BUSYBOX, "1.36")
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));

    let client = RegistryClient::new(&upstream.url()).with_credentials(USER, PASSWORD);
    let image = images::busybox(Flavor::Docker, "1.36");
    client.push_image(BUSYBOX, "1.36", &image).await;
    let dest = tempfile::tempdir().unwrap();
    let src = format!("{}/{BUSYBOX}:1.36", upstream.host());
    skopeo_copy(&src, dest.path(), Some((USER, PASSWORD)))
        .await
        .expect_ok("skopeo copy");
    assert_dir_matches(dest.path(), &image);
}

#[tokio::test]
async fn selftest_token_auth_upstream() {
    let issuer = TokenIssuer::start(Some((USER, PASSWORD))).await;
    let upstream = Upstream::start(UpstreamAuth::Token(&issuer)).await;
    let anonymous = RegistryClient::new(&upstream.url())
        .get_manifest(BUSYBOX, "1.36")
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let challenge = anonymous.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(&issuer.realm),
        "{challenge}"
    );

    // Without credentials the issuer refuses, so the pull stays 401.
    let before = issuer.requests();
    let no_creds = RegistryClient::new(&upstream.url())
        .get_manifest(BUSYBOX, "1.36")
        .await;
    assert_eq!(no_creds.status, StatusCode::UNAUTHORIZED);
    assert!(issuer.requests() > before);

    let client = RegistryClient::new(&upstream.url()).with_credentials(USER, PASSWORD);
    let image = images::busybox(Flavor::Docker, "1.36");
    client.push_image(BUSYBOX, "1.36", &image).await;
    let got = client.get_manifest(BUSYBOX, "1.36").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, image.manifest);

    let dest = tempfile::tempdir().unwrap();
    let src = format!("{}/{BUSYBOX}:1.36", upstream.host());
    skopeo_copy(&src, dest.path(), Some((USER, PASSWORD)))
        .await
        .expect_ok("skopeo copy");
    assert_dir_matches(dest.path(), &image);
}

#[tokio::test]
async fn selftest_fake_proxy_passes_through_counts_and_breaks() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let client = RegistryClient::new(&proxy.url());
    let layer = &image.layers()[0];

    let m = client.get_manifest(BUSYBOX, "1.36").await;
    assert_eq!((m.status, &m.body), (StatusCode::OK, &image.manifest));
    assert_eq!(
        m.header("docker-content-digest"),
        Some(image.digest.as_str())
    );
    let b = client.get_blob(BUSYBOX, &layer.digest).await;
    assert_eq!(digest_of(&b.body), layer.digest);
    assert_eq!(proxy.count("GET", PathKind::Manifest), 1);
    assert_eq!(proxy.blob_gets(&layer.digest), 1);
    assert_eq!(
        proxy.blob_bytes_sent(&layer.digest),
        layer.data.len() as u64
    );

    // Cut: the body ends early and reading it fails.
    proxy.set_fault(Fault::CutBlobAfter(1000));
    let resp = http_client()
        .get(format!(
            "{}/v2/{BUSYBOX}/blobs/{}",
            proxy.url(),
            layer.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.content_length(), Some(layer.data.len() as u64));
    assert!(resp.bytes().await.is_err(), "cut body must fail to read");

    // Corrupt: full length, wrong bytes.
    proxy.set_fault(Fault::CorruptBlob);
    let b = client.get_blob(BUSYBOX, &layer.digest).await;
    assert_eq!(b.body.len(), layer.data.len());
    assert_ne!(digest_of(&b.body), layer.digest);

    proxy.set_fault(Fault::TooManyRequests);
    let r = client.get_manifest(BUSYBOX, "1.36").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(String::from_utf8_lossy(&r.body).contains("TOOMANYREQUESTS"));

    proxy.set_fault(Fault::Unavailable);
    assert_eq!(
        client.get_manifest(BUSYBOX, "1.36").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Stall: headers arrive, the body never does.
    proxy.set_fault(Fault::Stall);
    let mut resp = http_client()
        .get(format!(
            "{}/v2/{BUSYBOX}/blobs/{}",
            proxy.url(),
            layer.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let stalled = tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await;
    assert!(stalled.is_err(), "stalled body must not deliver data");

    proxy.set_fault(Fault::None);
    let b = client.get_blob(BUSYBOX, &layer.digest).await;
    assert_eq!(digest_of(&b.body), layer.digest);
}

#[tokio::test]
async fn selftest_large_image_and_restart() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let image = images::large(48 << 20);
    client.push_image("big/random", "v1", &image).await;
    upstream.stop();
    upstream.start_again().await;
    let blob = &image.layers()[0];
    let got = client.get_blob("big/random", &blob.digest).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(digest_of(&got.body), blob.digest);
    assert!(
        upstream.access_log().contains(&blob.digest),
        "access log records requests"
    );
}

/// The range expectations of the ferry tests are what docker-registry does.
#[tokio::test]
async fn selftest_docker_registry_range_semantics() {
    let (upstream, image) = upstream_with_busybox().await;
    let layer = &image.layers()[0];
    let url = format!("{}/v2/{BUSYBOX}/blobs/{}", upstream.url(), layer.digest);
    let resp = http_client()
        .get(&url)
        .header("range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 10-99/{}", layer.data.len()).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap(), layer.data.slice(10..100));
    let beyond = format!("bytes={}-", layer.data.len() + 10);
    let resp = http_client()
        .get(&url)
        .header("range", beyond)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}
