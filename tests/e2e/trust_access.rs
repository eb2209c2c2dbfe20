//! Trust boundaries of stored content: a blob or manifest ferry stored for
//! one repository is served under another only when that repository
//! references it or its upstream confirms it has it (as a registry decides
//! access per repository); a request by digest creates no repository the
//! upstream does not have; and a `Range` reader of a blob still arriving
//! never receives a complete answer before the blob is verified.
//!
//! Real upstreams (docker-registry), real clients (skopeo); the corrupting
//! upstream is the fake FakeFaultProxy.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::images::{self, Image};
use crate::support::inspect::has_blob;
use crate::support::pulp_api::{
    field_of, results, sorted_strings, DISTRIBUTIONS, REMOTES, REPOSITORIES,
};
use crate::support::*;

const SECRET: &str = "team/secretapp";

/// Creates, through the API, a private distribution `base_path` of `upstream`.
async fn create_private_distribution(ferry: &Ferry, base_path: &str, upstream: &str) {
    let api = PulpApi::admin(ferry);
    let remote = api
        .post(REMOTES, json!({"name": base_path, "url": upstream}))
        .await
        .success_json("POST remote");
    let body = json!({
        "name": base_path,
        "base_path": base_path,
        "remote": remote["pulp_href"],
        "private": true,
    });
    api.post(DISTRIBUTIONS, body)
        .await
        .success_json("POST distribution");
}

/// The local repositories as the admin sees them: `_catalog` and the API.
async fn repositories(ferry: &Ferry) -> (Vec<String>, Vec<String>) {
    let api = PulpApi::admin(ferry);
    let catalog = api
        .get("/v2/_catalog?n=10000")
        .await
        .success_json("GET _catalog");
    let listed = api
        .get(&format!("{REPOSITORIES}?limit=1000"))
        .await
        .success_json("GET repositories");
    let mut names = field_of(results(&listed), "name");
    names.sort();
    (sorted_strings(&catalog["repositories"]), names)
}

/// An anonymous request: status and body.
async fn anonymous(method: Method, url: &str) -> (StatusCode, bytes::Bytes) {
    let resp = http_client()
        .request(method, url)
        .header("accept", registry_client::ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.bytes().await.unwrap())
}

/// Asserts `url` answers 404 `code` to GET and 404 to HEAD, and that the
/// GET body holds nothing of `secret`.
async fn assert_unknown(url: &str, code: &str, secret: &[u8]) {
    let (status, body) = anonymous(Method::GET, url).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "GET {url}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    assert_eq!(error_code(&body), code, "GET {url}");
    assert!(
        !body
            .windows(secret.len().min(64))
            .any(|w| secret.starts_with(w)),
        "GET {url}: the body carries private bytes"
    );
    let (status, _) = anonymous(Method::HEAD, url).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "HEAD {url}");
}

/// A private distribution's layer and manifest are stored; no public path
/// (another cache, another repository, `?ns=`) serves them or says they are
/// stored, while the public cache still serves its own content.
#[tokio::test]
async fn private_content_is_not_served_through_public_paths() {
    let (public_upstream, busybox) = upstream_with_busybox().await;
    let private_upstream = Upstream::start(UpstreamAuth::None).await;
    let secret = images::multi_layer("secretapp");
    RegistryClient::new(&private_upstream.url())
        .push_image(SECRET, "v1", &secret)
        .await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &public_upstream.url())], &[], &[]);
    create_private_distribution(&ferry, "priv", &private_upstream.url()).await;

    // The admin pulls the private image once: it is stored.
    let private_ref = image_ref(ferry.host(), &format!("priv/{SECRET}"), "v1");
    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(&private_ref, dest.path(), Some(("admin", ADMIN_PASSWORD)))
        .await
        .expect_ok("admin's skopeo copy of the private image");
    assert_dir_matches(dest.path(), &secret);
    let layer = &secret.layers()[0];
    assert!(has_blob(&ferry.data_dir(), &layer.digest));

    let base = ferry.url();
    // The private path itself asks for credentials.
    let (status, _) = anonymous(
        Method::GET,
        &format!("{base}/v2/priv/{SECRET}/blobs/{}", layer.digest),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Public paths know nothing of it: GET and HEAD alike.
    for blob in &secret.blobs {
        for repo in [BUSYBOX, SECRET, "nosuch/repo"] {
            let url = format!("{base}/v2/{CACHE}/{repo}/blobs/{}", blob.digest);
            assert_unknown(&url, "BLOB_UNKNOWN", &blob.data).await;
        }
    }
    for repo in [BUSYBOX, SECRET, "nosuch/repo"] {
        let url = format!("{base}/v2/{CACHE}/{repo}/manifests/{}", secret.digest);
        assert_unknown(&url, "MANIFEST_UNKNOWN", &secret.manifest).await;
    }
    // containerd's mirror form: `?ns=` picks the public cache.
    let ns = public_upstream.host();
    let url = format!("{base}/v2/nosuch/repo/manifests/{}?ns={ns}", secret.digest);
    assert_unknown(&url, "MANIFEST_UNKNOWN", &secret.manifest).await;
    let url = format!("{base}/v2/{BUSYBOX}/blobs/{}?ns={ns}", layer.digest);
    assert_unknown(&url, "BLOB_UNKNOWN", &layer.data).await;

    // A private artifact about the public image (an SBOM, say): the
    // public repository's referrers do not list it.
    let sbom = images::artifact(
        &busybox,
        "application/vnd.example.sbom.v1",
        "{\"private\":1}",
    );
    RegistryClient::new(&private_upstream.url())
        .push_image(SECRET, "sbom", &sbom)
        .await;
    let got = RegistryClient::new(&base)
        .with_credentials("admin", ADMIN_PASSWORD)
        .get_manifest(&format!("priv/{SECRET}"), &sbom.digest)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let url = format!("{base}/v2/{CACHE}/{BUSYBOX}/referrers/{}", busybox.digest);
    let (status, body) = anonymous(Method::GET, &url).await;
    assert_eq!(status, StatusCode::OK);
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"], json!([]), "public referrers: {index}");

    // Nothing of the above made a repository.
    let (catalog, api) = repositories(&ferry).await;
    assert_eq!(catalog, [format!("priv/{SECRET}")]);
    assert_eq!(api, catalog);

    // The public cache still serves what its upstream has, to anyone.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &busybox).await;
    // And the admin still gets the private image, now from the cache.
    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(&private_ref, dest.path(), Some(("admin", ADMIN_PASSWORD)))
        .await
        .expect_ok("admin's second copy of the private image");
    assert_dir_matches(dest.path(), &secret);
}

fn manifest_url(ferry: &Ferry, repo: &str, digest: &str) -> String {
    format!("{}/v2/{CACHE}/{repo}/manifests/{digest}", ferry.url())
}

/// A stored manifest asked for by digest under names the upstream does not
/// have creates no repository; under a name the upstream has, it does (and
/// its blobs are then served there from the cache).
#[tokio::test]
async fn digest_requests_create_only_repositories_the_upstream_has() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &proxy.url())], &[], &[]);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let pulled = format!("{CACHE}/{BUSYBOX}");
    assert_eq!(repositories(&ferry).await.0, std::slice::from_ref(&pulled));

    for i in 0..20 {
        let url = manifest_url(&ferry, &format!("made/up{i}"), &image.digest);
        assert_unknown(&url, "MANIFEST_UNKNOWN", &image.manifest).await;
    }
    let (catalog, api) = repositories(&ferry).await;
    assert_eq!(
        catalog,
        std::slice::from_ref(&pulled),
        "repositories made by digest GETs"
    );
    assert_eq!(api, catalog);

    // The same image pushed upstream under a second name: now it is real.
    let copy = "team/copy";
    RegistryClient::new(&upstream.url())
        .push_image(copy, "v1", &image)
        .await;
    let got = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{copy}"), &image.digest)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, image.manifest);
    let (catalog, api) = repositories(&ferry).await;
    assert_eq!(catalog, [pulled, format!("{CACHE}/{copy}")]);
    assert_eq!(api, catalog);

    // Its blobs are referenced there now: served from the store, with no
    // upstream request at all.
    proxy.reset_counters();
    assert_skopeo_copy_matches(&via_ferry(&ferry, copy, &image.digest), &image).await;
    let went_upstream: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(went_upstream.is_empty(), "{went_upstream:?}");
}

/// A byte range of `layer`, inclusive.
fn range_of(layer: &images::Blob, start: usize, end: usize) -> (String, String) {
    (
        format!("bytes={start}-{end}"),
        digest_of(&layer.data[start..=end]),
    )
}

/// A corrupting upstream (fake): readers of a blob still arriving, whole,
/// by a middle range or by an open-ended one, all at once, never receive a
/// complete answer; nothing is cached; once the upstream is honest the same
/// ranges are correct.
#[tokio::test]
async fn range_readers_of_a_corrupted_download_get_no_complete_answer() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let big: std::sync::Arc<Image> = images::large(16 << 20);
    RegistryClient::new(&upstream.url())
        .push_image("example/big", "v1", &big)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url())]);
    let layer = &big.layers()[0];
    let size = layer.data.len();
    let url = format!(
        "{}/v2/{CACHE}/example/big/blobs/{}",
        ferry.url(),
        layer.digest
    );
    // The fake flips the byte at size/2: the middle range holds it.
    let middle = range_of(layer, size / 2 - 1000, size / 2 + 1000);
    let open_ended = (
        format!("bytes={}-", size / 2 - 10),
        digest_of(&layer.data[size / 2 - 10..]),
    );

    proxy.set_fault(Fault::CorruptBlob);
    let mid_header = [("range", middle.0.as_str())];
    let open_header = [("range", open_ended.0.as_str())];
    let (whole, mid, open) = tokio::join!(
        get_body(&url, &[]),
        get_body(&url, &mid_header),
        get_body(&url, &open_header),
    );
    for (what, read) in [
        ("whole", whole),
        ("middle range", mid),
        ("open-ended range", open),
    ] {
        if let Ok(read) = read {
            assert!(
                !read.status.is_success() || !read.complete(),
                "{what}: a complete {} of {} bytes ({}) from a corrupted download",
                read.status,
                read.len,
                read.digest
            );
        }
    }
    // A cold middle range alone, after the others are over.
    if let Ok(read) = get_body(&url, &[("range", middle.0.as_str())]).await {
        assert!(
            !read.status.is_success() || !read.complete(),
            "cold middle range: a complete {} of {} bytes",
            read.status,
            read.len
        );
    }
    assert!(
        !has_blob(&ferry.data_dir(), &layer.digest),
        "the corrupted blob was cached"
    );

    proxy.set_fault(Fault::None);
    for (range, digest) in [middle, open_ended] {
        let read = get_body(&url, &[("range", range.as_str())]).await.unwrap();
        assert_eq!(read.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(read.complete(), "{range}: {:?}", read.error);
        assert_eq!(read.digest, digest, "{range}");
    }
    let read = get_body(&url, &[]).await.unwrap();
    assert_eq!(
        (read.status, read.digest.as_str()),
        (StatusCode::OK, layer.digest.as_str())
    );
    assert!(has_blob(&ferry.data_dir(), &layer.digest));
}
