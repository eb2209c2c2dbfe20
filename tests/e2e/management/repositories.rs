//! Repositories and their content: deleting one frees its disk space but
//! keeps shared blobs; tags are removed (Pulp's `remove/`) and refreshed;
//! the listing sorts and filters as the dashboard pages it.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images;
use crate::support::pulp_api::{
    field_of, href_of, OPENAPI, REPOSITORIES, REPO_DISTRIBUTIONS, TAGS,
};
use crate::support::*;

/// Deleting a repository frees its disk space, not shared blobs.
#[tokio::test]
async fn repository_delete_frees_disk_space_but_keeps_shared_blobs() {
    const LAYER: usize = 6 << 20;
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::large(LAYER);
    RegistryClient::new(&upstream.url())
        .push_image("example/large", "v1", &image)
        .await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let remote = api.remote_href("up", &upstream.url()).await;
    api.create_distribution("cache-a", "cache-a", &remote, false)
        .await;
    api.create_distribution("cache-b", "cache-b", &remote, false)
        .await;
    let blobs = ferry.data_dir().join("blobs");
    let layer_size = image.layers()[0].data.len() as u64;
    let in_a = image_ref(ferry.host(), "cache-a/example/large", "v1");
    let in_b = image_ref(ferry.host(), "cache-b/example/large", "v1");

    let empty = dir_bytes(&blobs);
    assert_skopeo_copy_matches(&in_a, &image).await;
    let full = dir_bytes(&blobs);
    assert!(
        full >= empty + layer_size,
        "{empty} → {full} bytes after the pull"
    );
    let repo = api
        .repository("cache-a/example/large")
        .await
        .expect("repository");
    let repo_href = href_of(&repo);
    api.task(api.delete(&repo_href).await, "DELETE repository")
        .await;
    let after = dir_bytes(&blobs);
    assert!(
        after + layer_size <= full,
        "deleting the repository freed {} bytes of {full}; the layer alone is {layer_size}",
        full - after
    );
    assert_eq!(api.get(&repo_href).await.status, StatusCode::NOT_FOUND);
    assert!(api.repository("cache-a/example/large").await.is_none());
    assert_eq!(api.ok(REPO_DISTRIBUTIONS).await["count"], 0);

    // Through both distributions, then delete one repository: the other
    // keeps every blob and serves the image with the upstream gone.
    assert_skopeo_copy_matches(&in_a, &image).await;
    assert_skopeo_copy_matches(&in_b, &image).await;
    let both = dir_bytes(&blobs);
    let repo = api
        .repository("cache-a/example/large")
        .await
        .expect("repository");
    api.task(
        api.delete(repo["pulp_href"].as_str().unwrap()).await,
        "DELETE shared repository",
    )
    .await;
    let kept = dir_bytes(&blobs);
    assert!(
        kept + layer_size > both,
        "deleting one of two repositories freed {} bytes: the shared layer went",
        both - kept
    );
    assert!(api.repository("cache-b/example/large").await.is_some());
    upstream.stop();
    assert_skopeo_copy_matches(&in_b, &image).await;
}

/// Removing a tag (Pulp's `remove/`), checking a tag upstream now, and the
/// listing additions the dashboard pages with.
#[tokio::test]
async fn tags_are_removed_and_refreshed_and_repositories_sort_by_size() {
    const LAYER: usize = 3 << 20;
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let (big, small, moved) = (
        images::large(LAYER),
        images::large(1 << 10),
        images::large(2 << 10),
    );
    client.push_image("example/big", "v1", &big).await;
    client.push_image("example/small", "v1", &small).await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let cached = |repo: &str| image_ref(ferry.host(), &format!("{CACHE}/example/{repo}"), "v1");
    assert_skopeo_copy_matches(&cached("big"), &big).await;
    assert_skopeo_copy_matches(&cached("small"), &small).await;

    // Listed by size (smallest first: not the name order), then biggest
    // first, with ferry's fields; `cache=` filters.
    let names = |repos: &[Value]| field_of(repos, "name");
    let (big_name, small_name) = (
        format!("{CACHE}/example/big"),
        format!("{CACHE}/example/small"),
    );
    let ascending = api
        .list(&format!("{REPOSITORIES}?cache={CACHE}&ordering=size"))
        .await;
    assert_eq!(names(&ascending), [small_name.clone(), big_name.clone()]);
    let repos = api
        .list(&format!("{REPOSITORIES}?cache={CACHE}&ordering=-size"))
        .await;
    assert_eq!(names(&repos), [big_name, small_name]);
    assert!(
        repos[0]["size"].as_u64().unwrap() >= LAYER as u64,
        "{}",
        repos[0]
    );
    assert_eq!(repos[0]["tag_count"], 1);
    assert_eq!(repos[0]["cache"], CACHE);
    assert!(repos[0]["last_pulled"].is_string(), "{}", repos[0]);
    assert_eq!(
        api.ok(&format!("{REPOSITORIES}?cache=no-such-cache")).await["count"],
        0
    );
    let bad = api.get(&format!("{REPOSITORIES}?ordering=colour")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.json()["ordering"].is_array(), "{}", bad.text);

    // The tag, with its size; refreshed after it moved upstream (within
    // its TTL a pull would still get the old digest).
    let big_repo = &repos[0];
    let version = big_repo["latest_version_href"].as_str().unwrap();
    let tags = api
        .list(&format!("{TAGS}?repository_version={version}"))
        .await;
    assert_eq!(tags.len(), 1);
    let tag_href = href_of(&tags[0]);
    assert_eq!(tags[0]["digest"], big.digest.as_str());
    assert!(
        tags[0]["size"].as_u64().unwrap() >= LAYER as u64,
        "{}",
        tags[0]
    );
    client.push_image("example/big", "v1", &moved).await;
    let refreshed = api.post(&format!("{tag_href}refresh/"), json!({})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    assert_eq!(refreshed.json()["digest"], moved.digest.as_str());
    assert_skopeo_copy_matches(&cached("big"), &moved).await;

    // With the upstream gone a refresh says so (and keeps the tag).
    upstream.stop();
    let down = api.post(&format!("{tag_href}refresh/"), json!({})).await;
    assert!(
        down.status.is_server_error(),
        "{}: {}",
        down.status,
        down.text
    );
    assert!(
        down.json()["detail"].as_str().unwrap().contains("upstream"),
        "{}",
        down.text
    );
    assert_eq!(api.ok(&tag_href).await["digest"], moved.digest.as_str());

    // Pulp's remove/: only this repository's tags; then the tag is gone and
    // the repository has a new version without it.
    let other_tag = format!(
        "{TAGS}{}:v1/",
        repos[1]["pulp_href"]
            .as_str()
            .unwrap()
            .split('/')
            .rev()
            .nth(1)
            .unwrap()
    );
    let href = big_repo["pulp_href"].as_str().unwrap();
    let refused = api
        .post(
            &format!("{href}remove/"),
            json!({"content_units": [other_tag]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    api.task(
        api.post(
            &format!("{href}remove/"),
            json!({"content_units": [tag_href]}),
        )
        .await,
        "remove tag",
    )
    .await;
    assert_eq!(api.get(&tag_href).await.status, StatusCode::NOT_FOUND);
    let after = api.ok(href).await;
    assert_eq!(after["tag_count"], 0, "{after}");
    assert_ne!(
        after["latest_version_href"],
        big_repo["latest_version_href"]
    );
    // The small image is untouched and still served offline.
    assert_skopeo_copy_matches(&cached("small"), &small).await;

    // Big JSON answers are gzipped for a client that asks.
    let gz = reqwest::Client::new()
        .get(format!("{}{OPENAPI}", ferry.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
}

/// Total bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
