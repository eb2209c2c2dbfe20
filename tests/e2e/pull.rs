//! Pulling through ferry with real clients: what arrives must be exactly
//! what the upstream holds (manifest bytes, digests, every blob).

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};

use crate::support::images::{self, Flavor};
use crate::support::inspect;
use crate::support::registry_client::ACCEPT_ALL_MANIFESTS;
use crate::support::*;

#[tokio::test]
async fn skopeo_copy_by_tag_and_by_digest_matches_upstream() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
}

#[tokio::test]
async fn skopeo_copy_of_oci_and_multi_layer_images_matches_upstream() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let oci = images::busybox(Flavor::Oci, "oci");
    let multi = images::multi_layer("three");
    client.push_image("example/oci", "v1", &oci).await;
    client.push_image("example/multi", "v1", &multi).await;
    let ferry = Ferry::start_simple(&upstream.url());
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/oci", "v1"), &oci).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/multi", "v1"), &multi).await;
}

#[tokio::test]
async fn podman_pull_through_ferry_gets_upstream_digest() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let podman = Podman::new();
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    podman
        .pull(&reference, None, None)
        .await
        .expect_ok("podman pull via ferry");
    let (id, digest) = podman.image_id_and_digest(&reference).await;
    assert_eq!(digest, image.digest);
    assert_eq!(format!("sha256:{id}"), image.config().digest);
}

/// podman picks a platform from the index; each pick must yield that
/// platform's child manifest as the upstream lists it.
#[tokio::test]
async fn podman_pulls_each_platform_of_an_index() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let oci_index = images::multi_arch(Flavor::Oci, "oci-index");
    let docker_list = images::multi_arch(Flavor::Docker, "docker-list");
    client
        .push_image("example/multiarch", "oci", &oci_index)
        .await;
    client
        .push_image("example/multiarch", "docker", &docker_list)
        .await;
    let ferry = Ferry::start_simple(&upstream.url());
    let podman = Podman::new();

    for tag in ["oci", "docker"] {
        let raw = skopeo_inspect_raw(&image_ref(&upstream.host(), "example/multiarch", tag), None)
            .await
            .expect_ok("inspect");
        let index: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
        let through_ferry = skopeo_inspect_raw(&via_ferry(&ferry, "example/multiarch", tag), None)
            .await
            .expect_ok("inspect");
        assert_eq!(
            through_ferry.stdout, raw.stdout,
            "index bytes through ferry"
        );
        for arch in ["amd64", "arm64"] {
            let child = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["platform"]["architecture"] == arch)
                .unwrap();
            let child_digest = child["digest"].as_str().unwrap();
            let reference = via_ferry(&ferry, "example/multiarch", tag);
            podman
                .pull(&reference, Some(arch), None)
                .await
                .expect_ok(&format!("podman pull --arch {arch}"));
            let repo_digests = podman.inspect(&reference, "{{json .RepoDigests}}").await;
            assert!(
                repo_digests.contains(child_digest),
                "{tag}/{arch}: {repo_digests} lacks {child_digest}"
            );
            let pushed = if tag == "oci" {
                &oci_index
            } else {
                &docker_list
            };
            let (id, _) = podman.image_id_and_digest(&reference).await;
            assert_eq!(
                format!("sha256:{id}"),
                pushed.child(arch).config().digest,
                "{tag}/{arch} config"
            );
        }
    }
}

#[tokio::test]
async fn manifest_get_and_head_carry_upstream_headers_and_bytes() {
    let (upstream, docker_image) = upstream_with_busybox().await;
    let oci_image = images::busybox(Flavor::Oci, "oci");
    let client = RegistryClient::new(&upstream.url());
    client.push_image("example/oci", "v1", &oci_image).await;
    let ferry = Ferry::start_simple(&upstream.url());
    let via = RegistryClient::new(&ferry.url());

    for (repo, tag, image) in [
        (BUSYBOX, "1.36", &docker_image),
        ("example/oci", "v1", &oci_image),
    ] {
        let repo = format!("{CACHE}/{repo}");
        for reference in [tag, image.digest.as_str()] {
            let get = via.get_manifest(&repo, reference).await;
            assert_eq!(get.status, StatusCode::OK, "GET {repo}:{reference}");
            assert_eq!(get.header("content-type"), Some(image.media_type.as_str()));
            assert_eq!(
                get.header("docker-content-digest"),
                Some(image.digest.as_str())
            );
            assert_eq!(
                get.header("content-length"),
                Some(image.manifest.len().to_string().as_str())
            );
            assert_eq!(get.body, image.manifest, "manifest bytes");

            let url = format!("/v2/{repo}/manifests/{reference}");
            let head = via
                .fetch(Method::HEAD, &url, &[("accept", ACCEPT_ALL_MANIFESTS)])
                .await;
            assert_eq!(head.status, StatusCode::OK, "HEAD {repo}:{reference}");
            assert_eq!(head.header("content-type"), Some(image.media_type.as_str()));
            assert_eq!(
                head.header("docker-content-digest"),
                Some(image.digest.as_str())
            );
            assert_eq!(
                head.header("content-length"),
                Some(image.manifest.len().to_string().as_str())
            );
            assert!(head.body.is_empty(), "HEAD has no body");
        }
    }

    let base = via.fetch(Method::GET, "/v2/", &[]).await;
    assert_eq!(base.status, StatusCode::OK);
    assert_eq!(
        base.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
}

/// skopeo and podman send Accept as one header line per media type, OCI
/// manifest first. All of them must reach the upstream: given only the
/// first, docker-registry rewrites a schema 2 manifest to schema 1 (other
/// bytes, other digest).
#[tokio::test]
async fn manifest_get_with_accept_as_repeated_header_lines() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let mut headers = reqwest::header::HeaderMap::new();
    for media_type in [
        images::OCI_MANIFEST,
        images::DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        images::DOCKER_LIST,
        images::OCI_INDEX,
    ] {
        headers.append("accept", media_type.parse().unwrap());
    }
    let url = format!("{}/v2/{CACHE}/{BUSYBOX}/manifests/1.36", ferry.url());
    let resp = http_client()
        .get(&url)
        .headers(headers)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], images::DOCKER_MANIFEST);
    assert_eq!(
        resp.headers()["docker-content-digest"],
        image.digest.as_str()
    );
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);
}

/// Docker Hub convention: `busybox` means `library/busybox`.
#[tokio::test]
async fn single_component_name_gets_library_prefix() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let via = RegistryClient::new(&ferry.url());
    let short = via.get_manifest(&format!("{CACHE}/busybox"), "1.36").await;
    assert_eq!(short.status, StatusCode::OK);
    assert_eq!(
        short.header("docker-content-digest"),
        Some(image.digest.as_str())
    );
    assert_eq!(short.body, image.manifest);
    assert_skopeo_copy_matches(&via_ferry(&ferry, "busybox", "1.36"), &image).await;
}

/// containerd-style mirror requests: no base path, the source registry in
/// `?ns=`; the answer names the namespace it used.
#[tokio::test]
async fn ns_query_routes_to_the_matching_upstream() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let ns = upstream.host();
    let http = http_client();

    let url = format!("{}/v2/{BUSYBOX}/manifests/1.36?ns={ns}", ferry.url());
    let resp = http
        .get(&url)
        .header("accept", ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let namespace = resp
        .headers()
        .get("oci-namespace")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(
        resp.headers()["docker-content-digest"],
        image.digest.as_str()
    );
    assert_eq!(resp.bytes().await.unwrap(), image.manifest);

    let layer = &image.layers()[0];
    let blob = get_body(
        &format!(
            "{}/v2/{BUSYBOX}/blobs/{}?ns={ns}",
            ferry.url(),
            layer.digest
        ),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(blob.status, StatusCode::OK);
    assert_eq!(blob.digest, layer.digest);
}

/// A second tag adds to the cache; both stay servable with the upstream gone.
#[tokio::test]
async fn second_tag_accumulates_in_the_cache() {
    let (mut upstream, v136) = upstream_with_busybox().await;
    let v137 = images::busybox(Flavor::Docker, "1.37");
    RegistryClient::new(&upstream.url())
        .push_image(BUSYBOX, "1.37", &v137)
        .await;
    let ferry = Ferry::start_simple(&upstream.url());
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &v136).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.37"), &v137).await;
    upstream.stop();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &v136).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.37"), &v137).await;
}

/// With a tag TTL of 0, a tag moved upstream is seen on the next pull.
#[tokio::test]
async fn moved_tag_is_picked_up_after_ttl() {
    let (upstream, old) = upstream_with_busybox().await;
    let ferry = Ferry::start_with_ttl(&upstream.url(), 0);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &old).await;

    let new = images::busybox(Flavor::Docker, "1.36-rebuilt");
    RegistryClient::new(&upstream.url())
        .push_image(BUSYBOX, "1.36", &new)
        .await;
    let got = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.header("docker-content-digest"),
        Some(new.digest.as_str())
    );
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &new).await;
    // The old manifest stays reachable by digest.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &old.digest), &old).await;
}

/// 20 clients asking for the same uncached 48 MiB blob at once: each gets
/// the right bytes and the upstream is read once. The fake proxy holds
/// ferry's upstream GET until all 20 requests have reached ferry (20 misses
/// in its metrics), so they really overlap: none can be a late hit on the
/// cache. Multi-threaded so the clients really read in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_blob_gets_fetch_upstream_once() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::large(48 << 20);
    RegistryClient::new(&upstream.url())
        .push_image("example/large", "v1", &image)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_simple(&proxy.url());
    let blob = &image.layers()[0];

    let url = format!(
        "{}/v2/{CACHE}/example/large/blobs/{}",
        ferry.url(),
        blob.digest
    );
    let blob_results = |m: &inspect::Metrics, result: &str| {
        m.sum(
            "ferry_cache_requests_total",
            &[("kind", "blob"), ("result", result)],
        )
    };
    proxy.set_fault(Fault::HoldBlobGets);
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get_body(&url, &[]).await })
        })
        .collect();
    // Well within ferry's upstream read timeout (30 s), which would end
    // the held GET.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = inspect::metrics(&ferry.url()).await;
        if blob_results(&m, "miss") >= 20.0 && proxy.held() >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all 20 requests reached ferry while its upstream GET was held: {} misses, {} held GETs",
            blob_results(&m, "miss"),
            proxy.held()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    proxy.release_held();
    let reads = join_all(clients).await;
    for (i, read) in reads.into_iter().enumerate() {
        let read = read.unwrap().unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(read.status, StatusCode::OK, "client {i}");
        assert!(
            read.complete(),
            "client {i}: body incomplete ({} bytes, {:?})",
            read.len,
            read.error
        );
        assert_eq!(read.digest, blob.digest, "client {i}");
    }
    let m = inspect::metrics(&ferry.url()).await;
    assert_eq!(blob_results(&m, "miss"), 20.0, "{}", m.text);
    assert_eq!(blob_results(&m, "hit"), 0.0, "{}", m.text);
    assert_eq!(
        proxy.blob_gets(&blob.digest),
        1,
        "upstream GETs of the blob: {:?}",
        proxy.requests()
    );
    let sent = proxy.blob_bytes_sent(&blob.digest);
    let size = blob.data.len() as u64;
    assert!(
        sent >= size && sent <= size + size / 50,
        "upstream sent {sent} bytes for a {size}-byte blob"
    );
}

/// An OCI 1.1 artifact (artifactType + subject) passes through unchanged;
/// the referrers endpoint answers with an image index (spec: 200 even when
/// it knows no referrers).
#[tokio::test]
async fn artifact_with_subject_and_referrers_endpoint() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let subject = images::busybox(Flavor::Oci, "subject");
    let artifact = images::artifact(
        &subject,
        "application/vnd.example.sbom.v1",
        "{\"packages\":[]}",
    );
    client.push_image("example/app", "v1", &subject).await;
    // The referrers tag schema, which clients fall back to without the API.
    let fallback_tag = subject.digest.replace(':', "-");
    client
        .push_image("example/app", &fallback_tag, &artifact)
        .await;
    let ferry = Ferry::start_simple(&upstream.url());
    let via = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/example/app");

    let got = via.get_manifest(&repo, &artifact.digest).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, artifact.manifest);
    assert_eq!(got.header("content-type"), Some(images::OCI_MANIFEST));
    let by_tag = via.get_manifest(&repo, &fallback_tag).await;
    assert_eq!(
        by_tag.header("docker-content-digest"),
        Some(artifact.digest.as_str())
    );

    let referrers = via
        .fetch(
            Method::GET,
            &format!("/v2/{repo}/referrers/{}", subject.digest),
            &[],
        )
        .await;
    assert_eq!(
        referrers.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&referrers.body)
    );
    assert!(referrers
        .header("content-type")
        .unwrap_or("")
        .starts_with(images::OCI_INDEX));
    let index: serde_json::Value = serde_json::from_slice(&referrers.body).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    // The upstream (docker-registry) has no referrers API: the one referrer
    // is the artifact ferry has cached, described as the spec says.
    assert_eq!(
        index["manifests"],
        serde_json::json!([{
            "mediaType": images::OCI_MANIFEST,
            "digest": artifact.digest,
            "size": artifact.manifest.len(),
            "artifactType": "application/vnd.example.sbom.v1",
        }]),
        "referrers of {}: {index}",
        subject.digest
    );
}

/// An upstream named by a host name, not an IP: ferry resolves it itself
/// (hickory), which is what keeps name resolution working in the static
/// binary, where glibc's NSS does not.
#[tokio::test]
async fn upstream_named_by_hostname_is_resolved() {
    let (upstream, image) = upstream_with_busybox().await;
    let by_name = upstream.url().replace("127.0.0.1", "localhost");
    assert!(by_name.contains("localhost"), "{by_name}");
    let ferry = Ferry::start_simple(&by_name);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
}
