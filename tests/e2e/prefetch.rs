//! Pre-warm: `POST <distribution>prefetch/` and `ferry prefetch --file`
//! fill a cache from a list before anyone pulls. What a user checks: the
//! task's progress (images and bytes done of total), the reference that
//! failed named in its error while the rest went on, and every image of the
//! list (the chosen platforms of an index) served with the upstream stopped.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images::{busybox, multi_arch};
use crate::support::inspect;
use crate::support::pulp_api::DISTRIBUTIONS;
use crate::support::*;

/// The href of the distribution of the config's cache.
async fn distribution(api: &PulpApi) -> String {
    let all = api.list(DISTRIBUTIONS).await;
    let d = all
        .iter()
        .find(|d| d["base_path"] == CACHE)
        .unwrap_or_else(|| panic!("no distribution {CACHE}: {all:?}"));
    d["pulp_href"].as_str().unwrap().to_string()
}

/// Follows a 202's task as a script does, polling until it leaves
/// `running` (bounded: a minute); returns the finished task.
async fn finished(api: &PulpApi, answer: crate::support::pulp_api::Answer) -> Value {
    assert_eq!(
        answer.status,
        StatusCode::ACCEPTED,
        "prefetch: {}",
        answer.text
    );
    let href = answer.json()["task"].as_str().unwrap().to_string();
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..600 {
        poll.tick().await;
        let task = api.ok(&href).await;
        if task["state"] != "running" {
            return task;
        }
    }
    panic!("prefetch task {href} still running after a minute");
}

/// `(total, done)` of the progress report `code`.
fn progress(task: &Value, code: &str) -> (u64, u64) {
    let r = task["progress_reports"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["code"] == code))
        .unwrap_or_else(|| panic!("no {code} in {task}"));
    (r["total"].as_u64().unwrap(), r["done"].as_u64().unwrap())
}

/// The bytes of the distinct blobs of `images`.
fn distinct_bytes(images: &[&Image]) -> u64 {
    let blobs: BTreeMap<&str, u64> = images
        .iter()
        .flat_map(|i| i.blobs.iter())
        .map(|b| (b.digest.as_str(), b.data.len() as u64))
        .collect();
    blobs.values().sum()
}

/// Asserts ferry serves `image` (manifest and every blob) under `repo`.
async fn assert_served(ferry: &Ferry, repo: &str, image: &Image, what: &str) {
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{repo}");
    let m = client.get_manifest(&repo, &image.digest).await;
    assert_eq!(m.status, StatusCode::OK, "{what}: manifest");
    assert_eq!(m.body, image.manifest, "{what}: manifest bytes");
    for blob in &image.blobs {
        let b = client.get_blob(&repo, &blob.digest).await;
        assert_eq!(b.status, StatusCode::OK, "{what}: blob {}", blob.digest);
        assert_eq!(b.body, blob.data, "{what}: blob {} bytes", blob.digest);
    }
}

/// A wildcard expands through the upstream's tag list (`v1.*`: two of
/// three tags), a reference to a repository the upstream lacks and a
/// wildcard matching no tag fail and are named, the two images are cached and then served offline; the tag
/// the wildcard left out is not.
#[tokio::test]
async fn wildcard_list_with_a_failing_reference_caches_the_rest_and_names_the_failure() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let (v10, v11, v20) = (
        busybox(Flavor::Docker, "v1.0"),
        busybox(Flavor::Docker, "v1.1"),
        busybox(Flavor::Docker, "v2.0"),
    );
    for (tag, image) in [("v1.0", &v10), ("v1.1", &v11), ("v2.0", &v20)] {
        direct.push_image(BUSYBOX, tag, image).await;
    }
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let href = distribution(&api).await;

    let answer = api
        .post(
            &format!("{href}prefetch/"),
            json!({ "references": [
                format!("{BUSYBOX}:v1.*"), "# a comment", "library/missing:1", format!("{BUSYBOX}:v9.*"),
            ] }),
        )
        .await;
    let task = finished(&api, answer).await;

    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["name"], "ferry.prefetch");
    assert_eq!(progress(&task, "ferry.prefetch.images"), (4, 2), "{task}");
    let bytes = distinct_bytes(&[&v10, &v11]);
    assert_eq!(
        progress(&task, "ferry.prefetch.bytes"),
        (bytes, bytes),
        "{task}"
    );
    let failed = task["error"]["references"]
        .as_object()
        .expect("failed references");
    assert_eq!(
        failed.keys().collect::<Vec<_>>(),
        ["library/busybox:v9.*", "library/missing:1"],
        "{task}"
    );
    assert_eq!(failed["library/busybox:v9.*"], "no tag matches", "{task}");
    let description = task["error"]["description"].as_str().unwrap();
    assert!(description.contains("library/missing:1"), "{description}");
    assert!(task["finished_at"].is_string(), "{task}");

    upstream.stop();
    assert_served(&ferry, BUSYBOX, &v10, "v1.0 offline").await;
    assert_served(&ferry, BUSYBOX, &v11, "v1.1 offline").await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "v1.1"), &v11).await;
    let left_out = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), &v20.digest)
        .await;
    assert_ne!(left_out.status, StatusCode::OK, "v2.0 was not on the list");
}

/// Platforms of a multi-arch index: one listed platform fetches that
/// child only; `all` fetches every child; a platform the index lacks is a
/// named failure; a bad platform value is refused (400) before any work.
#[tokio::test]
async fn platforms_of_an_index_are_fetched_as_asked() {
    const MULTI: &str = "library/multi";
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let (one, two) = (
        multi_arch(Flavor::Oci, "one"),
        multi_arch(Flavor::Oci, "two"),
    );
    direct.push_image(MULTI, "one", &one).await;
    direct.push_image(MULTI, "two", &two).await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let prefetch = format!("{}prefetch/", distribution(&api).await);

    // Only the admin may make ferry fetch: an anonymous POST is refused
    // (browsing is public, so the distribution itself can be read).
    let anonymous = PulpApi::anonymous(&ferry)
        .post(&prefetch, json!({ "references": [format!("{MULTI}:one")] }))
        .await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.text
    );

    let refused = api
        .post(
            &prefetch,
            json!({ "references": [format!("{MULTI}:one")], "platforms": "linux" }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert!(refused.json()["platforms"].is_array(), "{}", refused.text);

    let arm = api
        .post(
            &prefetch,
            json!({ "references": [format!("{MULTI}:one")], "platforms": ["linux/arm64"] }),
        )
        .await;
    let task = finished(&api, arm).await;
    assert_eq!(task["state"], "completed", "{task}");
    let bytes = distinct_bytes(&[one.child("arm64")]);
    assert_eq!(progress(&task, "ferry.prefetch.bytes"), (bytes, bytes));

    let all = api
        .post(
            &prefetch,
            json!({ "references": [format!("{MULTI}:two")], "platforms": "all" }),
        )
        .await;
    let task = finished(&api, all).await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(progress(&task, "ferry.prefetch.images"), (1, 1));

    let absent = api
        .post(
            &prefetch,
            json!({ "references": [format!("{MULTI}:one")], "platforms": "linux/s390x" }),
        )
        .await;
    let task = finished(&api, absent).await;
    assert_eq!(task["state"], "failed", "{task}");
    let why = task["error"]["references"][format!("{MULTI}:one")]
        .as_str()
        .unwrap_or("");
    assert!(
        why.contains("linux/arm64"),
        "the error lists what the index has: {task}"
    );

    upstream.stop();
    assert_served(&ferry, MULTI, one.child("arm64"), "one, arm64").await;
    assert_served(&ferry, MULTI, two.child("amd64"), "two, amd64").await;
    assert_served(&ferry, MULTI, two.child("arm64"), "two, arm64").await;
    let amd64 = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{MULTI}"), &one.child("amd64").digest)
        .await;
    assert_ne!(
        amd64.status,
        StatusCode::OK,
        "one's amd64 was not asked for"
    );
}

/// `ferry prefetch --file LIST`: plain progress lines when not on a
/// terminal, exit 0 when all went well; exit 1 naming the reference that
/// failed otherwise; the image is cached either way.
#[tokio::test]
async fn the_cli_prefetches_a_list_file() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.list");
    std::fs::write(&good, format!("# the base image\n{BUSYBOX}:1.36\n")).unwrap();
    let bad = dir.path().join("bad.list");
    std::fs::write(&bad, format!("{BUSYBOX}:1.36\nlibrary/missing:1\n")).unwrap();

    let ok = run_prefetch(&ferry, &good).await;
    assert!(ok.status.success(), "exit status: {ok:?}");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let bytes = distinct_bytes(&[&image]);
    assert!(
        last.starts_with("completed: images 1/1,"),
        "last line: {stdout}"
    );
    assert!(
        !stdout.contains('\r'),
        "no terminal, no rewritten line: {stdout:?}"
    );
    assert!(bytes > 0);

    let failed = run_prefetch(&ferry, &bad).await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("failed: library/missing:1:"), "{stderr}");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(stdout.contains("images 1/2"), "{stdout}");

    upstream.stop();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
}

/// `ferry prefetch --file LIST --url URL --distribution CACHE`, the admin
/// password from the environment; bounded to a minute.
async fn run_prefetch(ferry: &Ferry, list: &std::path::Path) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.arg("prefetch")
        .arg("--file")
        .arg(list)
        .args(["--url", &ferry.url(), "--distribution", CACHE])
        .env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn ferry prefetch");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ferry prefetch finished within a minute")
        .expect("ferry prefetch ran")
}

/// A pull that arrives while a prefetch downloads a blob shares that
/// download: the upstream sends each blob once. The fake proxy holds
/// ferry's blob GET (no real upstream can be paused mid-request) until the
/// pull has reached ferry too.
#[tokio::test]
async fn a_pull_during_a_prefetch_shares_its_download() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &proxy.url())], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let prefetch = format!("{}prefetch/", distribution(&api).await);
    let config = image.config().clone();
    let blob_misses = |m: &inspect::Metrics| {
        m.sum(
            "ferry_cache_requests_total",
            &[("kind", "blob"), ("result", "miss")],
        )
    };

    proxy.set_fault(Fault::HoldBlobGets);
    let answer = api
        .post(
            &prefetch,
            json!({ "references": [format!("{BUSYBOX}:1.36")] }),
        )
        .await;
    // The prefetch fetches the config first; its GET is held upstream.
    inspect::wait_until(
        "the prefetch's blob GET to be held",
        Duration::from_secs(20),
        || proxy.held() >= 1,
    )
    .await;
    let url = format!(
        "{}/v2/{CACHE}/{BUSYBOX}/blobs/{}",
        ferry.url(),
        config.digest
    );
    let pull = tokio::spawn(async move { get_body(&url, &[]).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while blob_misses(&inspect::metrics(&ferry.url()).await) < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull did not reach ferry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.release_held();

    let read = pull.await.unwrap().expect("the pull's body");
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.error.is_none(), "{:?}", read.error);
    assert_eq!(read.digest, config.digest, "the pull's bytes");
    let task = finished(&api, answer).await;
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(
        proxy.blob_gets(&config.digest),
        1,
        "one upstream GET for both"
    );
    upstream_gone_still_served(&ferry, upstream, &image).await;
}

/// Stops the upstream; ferry still serves `image` whole.
async fn upstream_gone_still_served(ferry: &Ferry, mut upstream: Upstream, image: &Image) {
    upstream.stop();
    assert_served(ferry, BUSYBOX, image, "after the shared download").await;
}
