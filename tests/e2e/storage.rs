//! The store under pressure: the size quota, garbage collection, the
//! scrub, kill -9 mid-download, a full disk, a stalled upstream and many
//! clients at once. What must hold throughout: clients get right bytes or
//! an error, and every file under `blobs/` hashes to its name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::images::{self, Flavor};
use crate::support::inspect::{
    assert_blob_tree_intact, blob_path, blobs_total, has_blob, metrics, proc_status_kib,
    quarantined, read_stored, tmp_files, wait_until, write_stored,
};
use crate::support::registry_client::ACCEPT_ALL_MANIFESTS;
use crate::support::util::{read_body, run_bounded};
use crate::support::*;

const MIB: usize = 1 << 20;

fn blob_url(ferry: &Ferry, repo: &str, digest: &str) -> String {
    format!("{}/v2/{CACHE}/{repo}/blobs/{digest}", ferry.url())
}

fn manifest_url(ferry: &Ferry, repo: &str, reference: &str) -> String {
    format!("{}/v2/{CACHE}/{repo}/manifests/{reference}", ferry.url())
}

/// Upstream requests (any method) whose path contains `needle`.
fn upstream_requests(proxy: &FakeFaultProxy, needle: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains(needle))
        .count()
}

/// GET a blob through ferry and assert the client got exactly `blob`.
async fn assert_blob_served(ferry: &Ferry, repo: &str, blob: &images::Blob) {
    let read = get_body(&blob_url(ferry, repo, &blob.digest), &[])
        .await
        .unwrap_or_else(|e| panic!("GET blob {}: {e}", blob.digest));
    assert_eq!(read.status, StatusCode::OK, "GET blob {}", blob.digest);
    assert!(
        read.complete(),
        "blob {} body incomplete: {:?}",
        blob.digest,
        read.error
    );
    assert_eq!(read.len, blob.data.len() as u64);
    assert_eq!(read.digest, blob.digest);
}

async fn tmp_becomes_empty(data_dir: &Path) {
    wait_until("DATA_DIR/tmp is empty", Duration::from_secs(20), || {
        tmp_files(data_dir).is_empty()
    })
    .await;
}

fn ferry_lines(ferry: &Ferry, needle: &str) -> Vec<String> {
    ferry
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

// -------------------------------------------------------------- quota ---

const QUOTA: &str = "20MiB";
const QUOTA_BYTES: u64 = 20 << 20;

/// Pushes `a` and `b` as `example/a:v1` and `example/b:v1`, and starts
/// ferry with room for one of them, behind a counting proxy.
async fn behind_quota(upstream: &Upstream, a: &Image, b: &Image) -> (FakeFaultProxy, Ferry) {
    let client = RegistryClient::new(&upstream.url());
    client.push_image("example/a", "v1", a).await;
    client.push_image("example/b", "v1", b).await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &proxy.url())],
        &FerryOptions {
            max_size: Some(QUOTA.into()),
            ..Default::default()
        },
    );
    (proxy, ferry)
}

/// Issue 4 (5): with room for one large image, pulling a second evicts the
/// first (least recently pulled); the second stays whole; the first pulls
/// again (fetched anew).
#[tokio::test]
async fn quota_evicts_the_least_recently_pulled_image() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let a = images::large(16 * MIB);
    let b = images::large(16 * MIB + 4096);
    let (proxy, ferry) = behind_quota(&upstream, &a, &b).await;
    let data = ferry.data_dir();
    let a_layer = &a.layers()[0];

    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/a", "v1"), &a).await;
    assert!(has_blob(&data, &a_layer.digest), "A's layer not cached");
    assert!(blobs_total(&data) <= QUOTA_BYTES);

    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/b", "v1"), &b).await;
    let m = metrics(&ferry.url()).await;
    assert!(m.sum("ferry_evictions_total", &[]) >= 1.0, "{}", m.text);
    let total = blobs_total(&data);
    assert!(
        total <= QUOTA_BYTES,
        "blobs/ holds {total} bytes > {QUOTA_BYTES}"
    );
    assert!(!has_blob(&data, &a_layer.digest), "A's layer still stored");
    assert!(!has_blob(&data, &a.digest), "A's manifest still stored");
    for blob in &b.blobs {
        assert!(
            has_blob(&data, &blob.digest),
            "B's {} not stored",
            blob.digest
        );
    }
    assert!(has_blob(&data, &b.digest), "B's manifest not stored");
    assert_blob_tree_intact(&data);
    let evicted = ferry_lines(&ferry, "evicted to stay within max_size");
    assert!(
        evicted.iter().any(|l| l.contains("example/a")),
        "no eviction of example/a logged: {evicted:?}"
    );
    assert!(
        !evicted.iter().any(|l| l.contains("example/b")),
        "example/b evicted while it was pulled: {evicted:?}"
    );

    // B is intact and cached: a second pull asks the upstream for nothing.
    let before = proxy.requests().len();
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/b", "v1"), &b).await;
    assert_eq!(
        proxy.requests().len(),
        before,
        "warm pull of B went upstream"
    );

    // A's tag is gone: pulling A asks upstream for the manifest and layer.
    let a_manifest_requests = upstream_requests(&proxy, "example/a/manifests/");
    assert_eq!(proxy.blob_gets(&a_layer.digest), 1);
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/a", "v1"), &a).await;
    assert!(
        upstream_requests(&proxy, "example/a/manifests/") > a_manifest_requests,
        "A's manifest was answered from cache: its tag was not evicted"
    );
    assert_eq!(
        proxy.blob_gets(&a_layer.digest),
        2,
        "A's layer not refetched"
    );
    assert!(has_blob(&data, &a_layer.digest));
    let total = blobs_total(&data);
    assert!(
        total <= QUOTA_BYTES,
        "blobs/ holds {total} bytes > {QUOTA_BYTES}"
    );
    assert!(
        metrics(&ferry.url())
            .await
            .sum("ferry_evictions_total", &[])
            >= 2.0
    );
    assert_blob_tree_intact(&data);
}

/// Issue 4 (5), the pull under way: eviction runs when a layer needs room,
/// after that image's manifest was fetched and its tag recorded. Here B is
/// pulled again (a hit) after A's tag was recorded, so by the pull times
/// alone A is the least recently pulled (or tied with B, and `a` sorts
/// first): only the rule that an image being pulled is never evicted keeps
/// A, and B must be the one to go.
#[tokio::test]
async fn quota_does_not_evict_the_image_being_pulled() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let a = images::large(16 * MIB + 8192);
    let b = images::large(16 * MIB + 12288);
    let (proxy, ferry) = behind_quota(&upstream, &a, &b).await;
    let data = ferry.data_dir();
    let accept = [("accept", ACCEPT_ALL_MANIFESTS)];

    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/b", "v1"), &b).await;
    // A's tag is recorded, then B is pulled again: B's pull is the latest.
    let read = get_body(&manifest_url(&ferry, "example/a", "v1"), &accept)
        .await
        .unwrap();
    assert_eq!(read.digest, a.digest);
    let read = get_body(&manifest_url(&ferry, "example/b", "v1"), &accept)
        .await
        .unwrap();
    assert_eq!(read.digest, b.digest);
    let pulled = last_pulled(&ferry).await;
    assert!(
        pulled["example/a"] <= pulled["example/b"],
        "A's tag must not be more recent than B's hit, else the case is not reached: {pulled:?}"
    );

    for blob in &a.blobs {
        assert_blob_served(&ferry, "example/a", blob).await;
    }
    let evicted = ferry_lines(&ferry, "evicted to stay within max_size");
    assert!(
        blobs_total(&data) <= QUOTA_BYTES,
        "blobs/ over quota: {}",
        blobs_total(&data)
    );
    assert!(
        !evicted.iter().any(|l| l.contains("example/a")),
        "the image being pulled was evicted: {evicted:#?}"
    );

    // A was just pulled: it is what the cache should now hold, whole.
    let before = proxy.requests().len();
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/a", "v1"), &a).await;
    let went_upstream: Vec<String> = proxy.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        went_upstream.is_empty(),
        "the image pulled last was not kept: pulling it again went upstream for {went_upstream:?}; \
         ferry evicted: {evicted:#?}"
    );
    assert!(!has_blob(&data, &b.layers()[0].digest), "B not evicted");
}

/// Each cached repository's `last_pulled` (RFC 3339, milliseconds, so
/// ordered as text) from the management API, by name without the base path.
async fn last_pulled(ferry: &Ferry) -> std::collections::BTreeMap<String, String> {
    let list: serde_json::Value = http_client()
        .get(format!(
            "{}/pulp/api/v3/repositories/container/container/?limit=1000",
            ferry.url()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    list["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {list}"))
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap_or_default();
            let name = name.strip_prefix(&format!("{CACHE}/")).unwrap_or(name);
            (
                name.to_string(),
                r["last_pulled"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Issue 4 (6): a blob larger than the whole quota reaches the client
/// (digest verified by it) but is not stored.
#[tokio::test]
async fn blob_larger_than_the_quota_is_streamed_through_and_not_stored() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let big = images::large(6 * MIB);
    RegistryClient::new(&upstream.url())
        .push_image("example/huge", "v1", &big)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &proxy.url())],
        &FerryOptions {
            max_size: Some("4MiB".into()),
            ..Default::default()
        },
    );
    let data = ferry.data_dir();
    let layer = &big.layers()[0];

    assert_blob_served(&ferry, "example/huge", layer).await;
    tmp_becomes_empty(&data).await;
    assert!(
        !has_blob(&data, &layer.digest),
        "oversized layer was stored"
    );
    assert!(blobs_total(&data) <= 4 << 20);
    assert!(
        !ferry_lines(&ferry, "streamed through, not cached").is_empty(),
        "no 'streamed through' line in ferry's log"
    );

    // skopeo verifies every digest itself.
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/huge", "v1"), &big).await;
    assert_eq!(proxy.blob_gets(&layer.digest), 2, "not fetched anew");
    tmp_becomes_empty(&data).await;
    assert!(!has_blob(&data, &layer.digest));
    assert!(
        has_blob(&data, &big.config().digest),
        "the small config is cached"
    );
    assert_blob_tree_intact(&data);
}

// ----------------------------------------------------------- gc/verify ---

/// Issue 4 (7): `ferry gc` (ferry stopped) removes a blob no manifest
/// references and leftover temp files; a pulled image survives and is
/// served with the upstream gone.
#[tokio::test]
async fn gc_removes_an_orphan_blob_and_keeps_pulled_images() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let orphan_image = images::multi_layer("orphan");
    RegistryClient::new(&upstream.url())
        .push_image("example/orphan", "v1", &orphan_image)
        .await;
    let mut ferry = Ferry::start_simple(&upstream.url());
    let data = ferry.data_dir();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let orphan = &orphan_image.layers()[0];
    assert_blob_served(&ferry, "example/orphan", orphan).await;
    assert!(has_blob(&data, &orphan.digest), "fetched blob not cached");

    ferry.stop();
    std::fs::write(data.join("tmp").join("leftover-1.part"), b"half a blob").unwrap();
    let gc = ferry.offline("gc").await;
    assert_eq!(gc.code, Some(0), "ferry gc: {gc:?}");
    // (The leftover may be removed when `ferry gc` opens the store, before
    // the collection counts temp files: only its absence is checked.)
    assert!(
        gc.stdout.starts_with("removed ") && !gc.stdout.contains("removed 0 objects"),
        "ferry gc output: {}",
        gc.stdout
    );
    assert!(!has_blob(&data, &orphan.digest), "orphan blob survived gc");
    assert!(has_blob(&data, &image.digest), "pulled manifest collected");
    for blob in &image.blobs {
        assert!(
            has_blob(&data, &blob.digest),
            "pulled blob {} collected",
            blob.digest
        );
    }
    assert!(
        tmp_files(&data).is_empty(),
        "temp file left: {:?}",
        tmp_files(&data)
    );
    assert_blob_tree_intact(&data);

    upstream.stop();
    ferry.start_again();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
    let gone = get_body(&blob_url(&ferry, "example/orphan", &orphan.digest), &[]).await;
    assert!(
        !matches!(&gone, Ok(r) if r.status == StatusCode::OK),
        "collected orphan still served with the upstream down"
    );
}

/// Issue 4 (8): a layer corrupted on disk is found by `ferry verify` (exit
/// 1, digest named), moved to quarantine/, and the next pull fetches it
/// again from upstream.
#[tokio::test]
async fn verify_quarantines_a_corrupted_layer_and_the_next_pull_refetches_it() {
    let (_upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&_upstream.url());
    let mut ferry = Ferry::start_simple(&proxy.url());
    let data = ferry.data_dir();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let layer = &image.layers()[0];
    ferry.stop();

    let path = blob_path(&data, &layer.digest);
    let mut bytes = read_stored(&path);
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    write_stored(&path, &bytes);

    let verify = ferry.offline("verify").await;
    assert_eq!(verify.code, Some(1), "ferry verify: {verify:?}");
    assert!(
        verify
            .stdout
            .contains(&format!("damaged and quarantined: {}", layer.digest)),
        "verify output: {}",
        verify.stdout
    );
    assert_eq!(
        quarantined(&data, &layer.digest).expect("quarantined"),
        bytes,
        "quarantined bytes"
    );
    assert!(
        !has_blob(&data, &layer.digest),
        "damaged layer still in blobs/"
    );
    assert_blob_tree_intact(&data);

    ferry.start_again();
    let gets = proxy.blob_gets(&layer.digest);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    assert_eq!(
        proxy.blob_gets(&layer.digest),
        gets + 1,
        "layer not refetched"
    );
    assert!(has_blob(&data, &layer.digest));
    ferry.stop();
    let again = ferry.offline("verify").await;
    assert_eq!(again.code, Some(0), "second verify: {again:?}");
}

// ------------------------------------------------------------ kill -9 ---

/// Issue 4 (9): kill -9 ferry while a 64 MiB blob streams from a slow
/// upstream, at different points of the client's progress, restarting on
/// the same data dir each time. After every restart tmp/ is empty and every
/// stored file hashes to its name; a blob the client received whole
/// survives the kill; the final pull is right.
#[tokio::test]
async fn kill_9_during_a_large_download_never_leaves_damage() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let big = images::large(64 * MIB);
    RegistryClient::new(&upstream.url())
        .push_image("example/big", "v1", &big)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    // About 1.3 s for the whole layer at least: time to kill at any point.
    proxy.set_fault(Fault::SlowBlob {
        piece: 256 * 1024,
        pause_ms: 5,
    });
    let mut ferry = Ferry::start_simple(&proxy.url());
    let data = ferry.data_dir();
    let layer = &big.layers()[0];
    let size = layer.data.len() as u64;
    let http = http_client();
    // The manifest and config are cached first: files to check after kills.
    let m = get_body(
        &manifest_url(&ferry, "example/big", "v1"),
        &[("accept", ACCEPT_ALL_MANIFESTS)],
    )
    .await
    .unwrap();
    assert_eq!(m.digest, big.digest);
    assert_blob_served(&ferry, "example/big", big.config()).await;

    // Client-side progress (bytes received) at which ferry is killed;
    // `size` means after the whole body arrived.
    let points = [
        0,
        1 << 20,
        7 << 20,
        23 << 20,
        41 << 20,
        60 << 20,
        size - 1,
        size,
    ];
    let mut kills = 0;
    let mut complete_before_kill = 0;
    // Kills after which the layer was not stored: downloads they cut short.
    let mut interrupted = Vec::new();
    for &point in &points {
        let mut resp = http
            .get(blob_url(&ferry, "example/big", &layer.digest))
            .send()
            .await
            .expect("GET big blob");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut received = 0u64;
        while received < point {
            match resp.chunk().await {
                Ok(Some(c)) => received += c.len() as u64,
                Ok(None) => break,
                Err(e) => panic!("body broke at {received} before the kill: {e}"),
            }
        }
        ferry.kill();
        kills += 1;
        // The rest of the body: it must break off unless it was all there.
        let mut broke = false;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => received += c.len() as u64,
                Ok(None) => break,
                Err(_) => {
                    broke = true;
                    break;
                }
            }
        }
        assert!(
            broke || received == size,
            "kill at {point}: body ended cleanly after {received} of {size} bytes"
        );
        let whole = !broke && received == size;
        if whole {
            complete_before_kill += 1;
        }

        ferry.start_again();
        assert!(
            tmp_files(&data).is_empty(),
            "kill at {point}: tmp/ after restart: {:?}",
            tmp_files(&data)
        );
        let files = assert_blob_tree_intact(&data);
        let stored = has_blob(&data, &layer.digest);
        if !stored {
            interrupted.push(point);
        }
        eprintln!(
            "kill #{kills} at client byte {received} (target {point}): restarted, {files} files intact, layer stored: {stored}"
        );
        if whole {
            // Told complete ⇒ durable: served now without the upstream.
            assert!(
                stored,
                "the client got the whole blob, but it is gone after kill -9"
            );
            let gets = proxy.blob_gets(&layer.digest);
            assert_blob_served(&ferry, "example/big", layer).await;
            assert_eq!(
                proxy.blob_gets(&layer.digest),
                gets,
                "refetched a stored blob"
            );
        }
    }

    proxy.set_fault(Fault::None);
    assert_blob_served(&ferry, "example/big", layer).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/big", "v1"), &big).await;
    assert!(has_blob(&data, &layer.digest));
    ferry.stop();
    let verify = ferry.offline("verify").await;
    assert_eq!(verify.code, Some(0), "verify after the kills: {verify:?}");
    eprintln!("kill -9 survived: {kills} (of which {complete_before_kill} after a complete body)");
    // The slow upstream and ferry's streaming make the kills land
    // mid-download: after at least the first five (up to 41 MiB of 64) the
    // layer was not stored; the last came after the whole body. Both cases
    // were exercised.
    assert!(
        interrupted.len() >= 5,
        "only {} of {kills} kills interrupted the download (layer not stored after the restart; \
         kills at client bytes {interrupted:?}): the test did not kill ferry mid-download",
        interrupted.len()
    );
    assert!(
        complete_before_kill >= 1,
        "no kill came after a complete body"
    );
}

// ----------------------------------------------------------- disk full ---

/// A tmpfs mounted for the test; lazily unmounted on drop (ferry may still
/// hold files when a failing test unwinds).
struct Tmpfs(PathBuf);

impl Tmpfs {
    async fn mount(dir: &Path, size: &str) -> Tmpfs {
        let mut cmd = tokio::process::Command::new("mount");
        cmd.args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir);
        let out = run_bounded(cmd, Duration::from_secs(30)).await;
        assert!(
            out.success,
            "cannot mount a tmpfs on {} (needs root and CAP_SYS_ADMIN): {}",
            dir.display(),
            out.stderr
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Bytes free on the file system (`stat -f`: available blocks × size).
    fn available(&self) -> u64 {
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.0)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        it.next().unwrap() * it.next().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Issue 4 (10): the data dir is a 24 MiB tmpfs. With less room than a
/// blob needs, its download fails (5xx or a broken body), tmp/ is left
/// empty and cached images keep being served; once space is freed the blob
/// pulls fine.
#[tokio::test]
async fn full_disk_fails_the_download_cleanly_and_recovers_when_space_is_freed() {
    let (upstream, image) = upstream_with_busybox().await;
    let big = images::large(8 * MIB);
    RegistryClient::new(&upstream.url())
        .push_image("example/big", "v1", &big)
        .await;
    let mut ferry = Ferry::start_simple(&upstream.url());
    ferry.kill();
    let data = ferry.data_dir();
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let disk = Tmpfs::mount(&data, "24m").await;
    ferry.start_again();
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    assert_skopeo_copy_matches(&reference, &image).await;

    // Leave 4 MiB: less than the 8 MiB layer.
    let free = disk.available();
    assert!(
        free > 8 << 20,
        "tmpfs has only {free} bytes free after one image"
    );
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0x5au8; (free - (4 << 20)) as usize]).unwrap();
    eprintln!(
        "tmpfs: {free} bytes free, filler leaves {}",
        disk.available()
    );

    let layer = &big.layers()[0];
    let r = get_body(&blob_url(&ferry, "example/big", &layer.digest), &[])
        .await
        .unwrap_or_else(|e| panic!("disk full: the client got no HTTP response at all: {e}"));
    eprintln!(
        "disk full: client saw status {} after {} bytes, error {:?}",
        r.status, r.len, r.error
    );
    assert!(
        r.status == StatusCode::INSUFFICIENT_STORAGE
            || (r.status == StatusCode::OK && !r.complete()),
        "blob bigger than the free space: status {} complete {} ({} bytes); \
         want 507 or a 200 whose body breaks off",
        r.status,
        r.complete(),
        r.len
    );
    tmp_becomes_empty(&data).await;
    assert!(!has_blob(&data, &layer.digest));
    assert_blob_tree_intact(&data);
    let health = http_client()
        .get(format!("{}/healthz", ferry.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_skopeo_copy_matches(&reference, &image).await;

    std::fs::remove_file(&filler).unwrap();
    assert_blob_served(&ferry, "example/big", layer).await;
    assert!(
        has_blob(&data, &layer.digest),
        "layer not cached once space was free"
    );
    assert_skopeo_copy_matches(&via_ferry(&ferry, "example/big", "v1"), &big).await;
    assert_blob_tree_intact(&data);
    ferry.kill();
    drop(disk);
}

// ------------------------------------------------------ stalled upstream ---

/// Issue 4 (11): the upstream sends headers and then nothing; with a 2 s
/// read timeout the client's request for an uncached blob fails in bounded
/// time, nothing is left in tmp/, and once the upstream is healthy again
/// the next request succeeds.
#[tokio::test]
async fn stalled_upstream_fails_an_uncached_blob_then_recovers() {
    let (_upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&_upstream.url());
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &proxy.url()).timeouts(2, 2)]);
    let data = ferry.data_dir();
    let layer = &image.layers()[0];
    let url = blob_url(&ferry, BUSYBOX, &layer.digest);

    proxy.set_fault(Fault::Stall);
    let got = tokio::time::timeout(Duration::from_secs(60), get_body(&url, &[]))
        .await
        .expect("the request for a stalled blob did not end within 60 s");
    let r = got.unwrap_or_else(|e| {
        panic!("stalled upstream: the client got no HTTP response at all: {e}")
    });
    eprintln!(
        "stalled upstream: client saw status {} after {} bytes, error {:?}",
        r.status, r.len, r.error
    );
    assert!(
        r.status == StatusCode::GATEWAY_TIMEOUT || (r.status == StatusCode::OK && !r.complete()),
        "stalled upstream: status {} complete {} ({} bytes); want 504 or a 200 whose body breaks off",
        r.status,
        r.complete(),
        r.len
    );
    tmp_becomes_empty(&data).await;
    assert!(!has_blob(&data, &layer.digest));

    proxy.set_fault(Fault::None);
    assert_blob_served(&ferry, BUSYBOX, layer).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
}

// --------------------------------------------------------------- load ---

const CLIENTS: usize = 200;

/// Issue 4 (12): 200 concurrent clients fetch manifest and blobs of a mix
/// of cached and uncached images. No errors, every digest checked, one
/// upstream transfer per blob; ferry's peak RSS is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_get_right_bytes() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let mut set: Vec<(String, Image)> = Vec::new();
    for i in 0..10 {
        let flavor = if i % 2 == 0 {
            Flavor::Docker
        } else {
            Flavor::Oci
        };
        let img = if i < 5 {
            images::multi_layer(&format!("load-{i}"))
        } else {
            images::busybox(flavor, &format!("load-{i}"))
        };
        set.push((format!("load/small-{i}"), img));
    }
    for i in 0..2 {
        set.push((
            format!("load/big-{i}"),
            (*images::large(4 * MIB + i * 512)).clone(),
        ));
    }
    for (repo, img) in &set {
        client.push_image(repo, "v1", img).await;
    }
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_simple(&proxy.url());
    let pid = ferry.pid().unwrap();

    // Half cached beforehand, half cold when the clients arrive.
    let accept = [("accept", ACCEPT_ALL_MANIFESTS)];
    for (repo, img) in set.iter().step_by(2) {
        let m = get_body(&manifest_url(&ferry, repo, "v1"), &accept)
            .await
            .unwrap();
        assert_eq!(m.digest, img.digest);
        for blob in &img.blobs {
            assert_blob_served(&ferry, repo, blob).await;
        }
    }
    let rss_before = proc_status_kib(pid, "VmHWM");

    let set = Arc::new(set);
    let http = http_client();
    let base = ferry.url();
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (set, http, base, barrier) =
                (set.clone(), http.clone(), base.clone(), barrier.clone());
            tokio::spawn(async move {
                let (repo, img) = &set[n % set.len()];
                let mut errors = Vec::new();
                barrier.wait().await;
                let url = format!("{base}/v2/{CACHE}/{repo}/manifests/v1");
                match http
                    .get(&url)
                    .header("accept", ACCEPT_ALL_MANIFESTS)
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let r = read_body(resp).await;
                        if r.status != StatusCode::OK || !r.complete() || r.digest != img.digest {
                            errors.push(format!(
                                "client {n} manifest {repo}: status {} complete {} digest {}",
                                r.status,
                                r.complete(),
                                r.digest
                            ));
                        }
                    }
                    Err(e) => errors.push(format!("client {n} manifest {repo}: {e:?}")),
                }
                for blob in &img.blobs {
                    let url = format!("{base}/v2/{CACHE}/{repo}/blobs/{}", blob.digest);
                    match http.get(&url).send().await {
                        Ok(resp) => {
                            let r = read_body(resp).await;
                            if r.status != StatusCode::OK
                                || !r.complete()
                                || r.digest != blob.digest
                                || r.len != blob.data.len() as u64
                            {
                                errors.push(format!(
                                    "client {n} blob {}: status {} len {} complete {} error {:?}",
                                    blob.digest,
                                    r.status,
                                    r.len,
                                    r.complete(),
                                    r.error
                                ));
                            }
                        }
                        Err(e) => errors.push(format!("client {n} blob {}: {e:?}", blob.digest)),
                    }
                }
                errors
            })
        })
        .collect();
    let results = tokio::time::timeout(
        Duration::from_secs(300),
        futures_util::future::join_all(tasks),
    )
    .await
    .expect("200 clients did not finish within 300 s");
    let errors: Vec<String> = results
        .into_iter()
        .flat_map(|r| r.expect("client task panicked"))
        .collect();
    let peak_kib = proc_status_kib(pid, "VmHWM");
    let requests: usize =
        set.iter().map(|(_, i)| 1 + i.blobs.len()).sum::<usize>() * CLIENTS / set.len();
    eprintln!(
        "load: {CLIENTS} clients, ~{requests} requests, {} errors; ferry peak RSS {} MiB (before the load {} MiB)",
        errors.len(),
        peak_kib / 1024,
        rss_before / 1024
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );

    // One upstream transfer per blob, however many clients wanted it.
    for (repo, img) in set.iter() {
        for blob in &img.blobs {
            assert_eq!(
                proxy.blob_gets(&blob.digest),
                1,
                "{repo} blob {} fetched upstream more than once",
                blob.digest
            );
        }
    }
    let m = metrics(&ferry.url()).await;
    let server_errors: f64 = m
        .series("ferry_http_requests_total")
        .iter()
        .filter(|(labels, _)| {
            labels
                .iter()
                .any(|(k, v)| k == "status" && v.starts_with('5'))
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(server_errors, 0.0, "5xx answers counted:\n{}", m.text);
    assert_blob_tree_intact(&ferry.data_dir());
    assert!(
        peak_kib < 256 * 1024,
        "ferry's peak RSS {} MiB is above 256 MiB",
        peak_kib / 1024
    );
}

/// Garbage collection runs every second, with no grace, while clients
/// pull: what nothing references is collected at once, so only the live
/// set (tags → manifests → their blobs) keeps what the pulls store. An
/// orphan blob (fetched without its manifest) is collected, which shows the
/// collections really had no grace; nothing a pulled image uses is.
#[tokio::test]
async fn gc_running_during_pulls_never_removes_what_they_store() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let pulled: Vec<_> = (0..4)
        .map(|i| images::multi_layer(&format!("gc-race-{i}")))
        .collect();
    for (i, image) in pulled.iter().enumerate() {
        client
            .push_image(&format!("example/race{i}"), "v1", image)
            .await;
    }
    let orphan_image = images::multi_layer("gc-race-orphan");
    client
        .push_image("example/orphan", "v1", &orphan_image)
        .await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &proxy.url())],
        &FerryOptions {
            gc_interval_secs: Some(1),
            extra_toml: Some("gc_grace_secs = 0".into()),
            ..Default::default()
        },
    );
    let data = ferry.data_dir();
    let runs = || async { metrics(&ferry.url()).await.sum("ferry_gc_runs_total", &[]) };
    let wait_for_runs = |n: f64| async move {
        let before = runs().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while runs().await < before + n {
            assert!(
                std::time::Instant::now() < deadline,
                "no garbage collection ran"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };

    // A blob no manifest references: the first collection may take it.
    let orphan = &orphan_image.layers()[0];
    assert_blob_served(&ferry, "example/orphan", orphan).await;
    for (i, image) in pulled.iter().enumerate() {
        assert_skopeo_copy_matches(&via_ferry(&ferry, &format!("example/race{i}"), "v1"), image)
            .await;
    }
    wait_for_runs(2.0).await;
    assert!(
        !has_blob(&data, &orphan.digest),
        "an unreferenced blob survived two collections with gc_grace_secs = 0"
    );
    // No layer was collected and fetched again.
    for (i, image) in pulled.iter().enumerate() {
        for layer in image.layers() {
            assert_eq!(
                proxy.blob_gets(&layer.digest),
                1,
                "image {i}: layer fetched twice"
            );
        }
    }
    // Everything stored is still there, and serves with the upstream gone.
    upstream.stop();
    for (i, image) in pulled.iter().enumerate() {
        for blob in &image.blobs {
            assert!(has_blob(&data, &blob.digest), "collected {}", blob.digest);
        }
        assert!(has_blob(&data, &image.digest), "collected {}", image.digest);
        assert_skopeo_copy_matches(&via_ferry(&ferry, &format!("example/race{i}"), "v1"), image)
            .await;
    }
}

/// The documented way back from a damaged metadata database: move `meta/`
/// aside and start again. Cached blobs are reused (no layer fetched twice),
/// manifests heal their records from the files, tags re-resolve upstream.
/// Which repository held what was in the lost database: until the upstream
/// confirms it again, stored content is not served (trust boundaries).
#[tokio::test]
async fn metadata_moved_aside_is_rebuilt_from_the_blob_store() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    let mut ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &proxy.url())], &[], &[]);
    let data = ferry.data_dir();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    ferry.stop();
    std::fs::rename(data.join("meta"), data.join("meta.damaged")).unwrap();

    // Upstream down: nothing can confirm the repository has the manifest.
    upstream.stop();
    ferry.start_again();
    let got = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), &image.digest)
        .await;
    assert!(got.status.is_server_error(), "{}", got.status);

    // Upstream back: a pull by digest is confirmed and served from the
    // store, the tag resolves again, and no layer is fetched twice.
    upstream.start_again().await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, &image.digest), &image).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    for layer in image.layers() {
        assert_eq!(proxy.blob_gets(&layer.digest), 1, "layer fetched again");
    }
    // The new database recorded the stored blobs, so the quota and the
    // API count them (sizes are known without refetching).
    for blob in &image.blobs {
        let url = format!(
            "{}/pulp/api/v3/content/container/blobs/{}/",
            ferry.url(),
            blob.digest
        );
        let body = reqwest::Client::new()
            .get(&url)
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(record["size"], blob.data.len() as u64, "{record}");
    }
}
