//! Issue 15, import: bundles and plain OCI layouts into a ferry that never
//! saw their upstream, served with that upstream unreachable; bad bundles
//! refused with nothing visible and nothing harmed; an import killed with
//! -9 and run again; re-imports that change nothing; `--map` and `--to`.
//!
//! The plain layouts are real ones (`skopeo copy --all ... oci:DIR:TAG`).
//! The ferry bundles here are written by the test itself (`HandMade`, a
//! stand-in for `ferry export` named as such): that lets each bad-input
//! case damage exactly one thing. The round trip through `ferry export`
//! is in `export` 's tests once both sides exist.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images::{self, Image};
use crate::support::inspect::has_blob;
use crate::support::pulp_api::{href_of, PulpApi};
use crate::support::util::{free_port, run_bounded, CmdOutput};
use crate::support::*;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `ferry ARGS...` (FERRY_* variables cleared), bounded.
async fn ferry_cmd(args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(args)
        .current_dir(cwd.path())
        .env("RUST_LOG", "warn");
    for var in ["FERRY_CONFIG", "FERRY_CACHE", "FERRY_DATA_DIR", "FERRY_URL"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, Duration::from_secs(120)).await
}

/// `ferry import --data-dir DIR ARGS...` on a stopped ferry.
async fn import_offline(ferry: &Ferry, args: &[&str]) -> CmdOutput {
    let data = ferry.data_dir().display().to_string();
    let mut all = vec!["import", "--data-dir", &data];
    all.extend_from_slice(args);
    ferry_cmd(&all, &[]).await
}

/// `ferry import --url URL ARGS...` into a running ferry.
async fn import_online(ferry: &Ferry, args: &[&str]) -> CmdOutput {
    let url = ferry.url();
    let mut all = vec!["import", "--url", &url];
    all.extend_from_slice(args);
    ferry_cmd(&all, &[("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)]).await
}

/// The tags a stopped ferry holds, from `ferry inventory --data-dir`.
async fn references(ferry: &Ferry) -> Vec<String> {
    let data = ferry.data_dir().display().to_string();
    let out = ferry_cmd(&["inventory", "--data-dir", &data], &[])
        .await
        .expect_ok("ferry inventory");
    let inventory: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        inventory["format"],
        json!("ferry-inventory/1"),
        "{inventory}"
    );
    let mut refs: Vec<String> = inventory["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    refs.sort();
    refs
}

/// Stops a ferry just started, once it answers (its SIGTERM handler is
/// in place only once it serves).
async fn stop_when_serving(ferry: &mut Ferry) {
    let answer = http_client()
        .get(format!("{}/v2/", ferry.url()))
        .send()
        .await;
    assert!(answer.is_ok(), "ferry does not answer: {answer:?}");
    ferry.stop();
}

/// A cache whose upstream nothing listens on.
fn unreachable_cache(base_path: &str) -> CacheSpec {
    CacheSpec::new(base_path, &format!("http://127.0.0.1:{}", free_port()))
}

/// A failed command: non-zero exit and one `ferry: ...` line naming `needle`.
fn assert_refused(out: &CmdOutput, needle: &str, what: &str) {
    assert!(!out.success, "{what}: exit status 0; stdout {}", out.stdout);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("ferry: "))
        .unwrap_or_else(|| panic!("{what}: no `ferry:` line in {:?}", out.stderr));
    assert!(
        line.contains(needle),
        "{what}: {line:?} does not say {needle:?}"
    );
}

/// A ferry bundle written by the test (a stand-in for `ferry export`):
/// tar entries in bundle order, each open to damage before writing.
struct HandMade {
    entries: Vec<(String, Vec<u8>)>,
}

impl HandMade {
    /// `images` under their references, sidecar first, then the layout.
    fn of(images: &[(&str, &Image)], assumed: &[(&str, u64)]) -> HandMade {
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        fn collect(image: &Image, blobs: &mut Vec<(String, Vec<u8>)>) {
            for blob in &image.blobs {
                blobs.push((blob.digest.clone(), blob.data.to_vec()));
            }
            for child in &image.children {
                collect(child, blobs);
            }
            blobs.push((image.digest.clone(), image.manifest.to_vec()));
        }
        for (_, image) in images {
            collect(image, &mut blobs);
        }
        let mut seen = std::collections::HashSet::new();
        blobs.retain(|(d, _)| seen.insert(d.clone()));
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": images.iter().map(|(reference, image)| json!({
                "mediaType": image.media_type, "digest": image.digest,
                "size": image.manifest.len(), "annotations": { REF_NAME: reference },
            })).collect::<Vec<_>>(),
        });
        let sidecar = json!({
            "format": "ferry-bundle/1",
            "id": format!("hand-made-{}", free_port()),
            "created": "2026-01-01T00:00:00Z",
            "source": { "ferry": "test", "name": "hand-made" },
            "references": images.iter().map(|(reference, image)| json!({
                "reference": reference, "digest": image.digest,
                "media_type": image.media_type, "size": image.manifest.len(),
            })).collect::<Vec<_>>(),
            "blobs": blobs.iter().map(|(d, b)| json!({"digest": d, "size": b.len()})).collect::<Vec<_>>(),
            "assumed": assumed.iter().map(|(d, s)| json!({"digest": d, "size": s})).collect::<Vec<_>>(),
        });
        let mut entries = vec![
            (
                "ferry-bundle.json".to_string(),
                serde_json::to_vec(&sidecar).unwrap(),
            ),
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            (
                "index.json".to_string(),
                serde_json::to_vec(&index).unwrap(),
            ),
        ];
        for (digest, bytes) in blobs {
            entries.push((
                format!("blobs/sha256/{}", &digest["sha256:".len()..]),
                bytes,
            ));
        }
        HandMade { entries }
    }

    fn sidecar(&mut self) -> Value {
        serde_json::from_slice(&self.entries[0].1).unwrap()
    }

    fn set_sidecar(&mut self, sidecar: &Value) {
        self.entries[0].1 = serde_json::to_vec(sidecar).unwrap();
    }

    fn entry(&mut self, digest: &str) -> &mut Vec<u8> {
        let name = format!("blobs/sha256/{}", &digest["sha256:".len()..]);
        &mut self.entries.iter_mut().find(|(n, _)| *n == name).unwrap().1
    }

    /// Writes the tar; names are written raw (so `../x` can be too).
    fn write(&self, path: &Path) -> PathBuf {
        let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in &self.entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            tar.append(&header, bytes.as_slice()).unwrap();
        }
        tar.finish().unwrap();
        path.to_path_buf()
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A plain OCI layout from the real upstream (`skopeo copy --all ...
/// oci:DIR:v1`), imported with `--to` into a ferry that never saw that
/// upstream, first through the API, then again offline (a no-op); served
/// with the upstream stopped, even past the TTL with `stale_if = []`
/// (the import is what serves it), every platform, and shown `imported`.
#[tokio::test]
async fn a_skopeo_layout_imports_with_to_and_is_served_with_the_upstream_stopped() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let index = images::multi_arch(images::Flavor::Oci, "layout");
    RegistryClient::new(&upstream.url())
        .push_image("library/app", "v1", &index)
        .await;
    let layout = tempfile::tempdir().unwrap();
    let dir = layout.path().join("app");
    let mut skopeo = tokio::process::Command::new("skopeo");
    skopeo
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{}/library/app:v1", upstream.host()))
        .arg(format!("oci:{}:v1", dir.display()));
    run_bounded(skopeo, Duration::from_secs(60))
        .await
        .expect_ok("skopeo copy --all to an OCI layout");
    upstream.stop();

    // B: a cache of that (now stopped) upstream, revalidating every pull
    // and serving nothing stale of its own accord.
    let mut ferry = Ferry::start_with(
        &[CacheSpec::new("hub", &upstream.url())
            .tag_ttl(0)
            .toml("stale_if = []")],
        &[],
        &[],
    );
    let bare = import_online(&ferry, &[path_str(&dir)]).await;
    assert_refused(&bare, "--to", "a bare tag without --to");
    let out = import_online(&ferry, &[path_str(&dir), "--to", "hub/library/app"])
        .await
        .expect_ok("ferry import --url --to");
    assert!(
        out.stdout.contains("imported hub/library/app:v1"),
        "{}",
        out.stdout
    );

    let image = image_ref(ferry.host(), "hub/library/app", "v1");
    let podman = Podman::new();
    for arch in ["amd64", "arm64"] {
        podman
            .pull(&image, Some(arch), None)
            .await
            .expect_ok(&format!("podman pull --arch {arch} from B"));
        let (id, _) = podman.image_id_and_digest(&image).await;
        assert_eq!(
            format!("sha256:{id}"),
            index.child(arch).config().digest,
            "{arch}"
        );
    }
    let raw = skopeo_inspect_raw(&image, None)
        .await
        .expect_ok("skopeo inspect");
    assert_eq!(digest_of(raw.stdout.as_bytes()), index.digest);
    assert_skopeo_copy_matches(
        &image_ref(
            ferry.host(),
            "hub/library/app",
            &index.child("arm64").digest,
        ),
        index.child("arm64"),
    )
    .await;

    let api = PulpApi::admin(&ferry);
    let repo = api.repository("hub/library/app").await.expect("repository");
    let repo_id = href_of(&repo)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let tag = api
        .ok(&format!(
            "/pulp/api/v3/content/container/tags/{repo_id}:v1/"
        ))
        .await;
    assert_eq!(tag["imported"]["source"], json!("oci-layout"), "{tag}");
    assert_eq!(repo["imported"], tag["imported"], "{repo}");
    assert!(
        tag["imported"]["bundle"]
            .as_str()
            .is_some_and(|b| !b.is_empty()),
        "{tag}"
    );

    // Again, offline: nothing new.
    ferry.stop();
    let again = import_offline(&ferry, &[path_str(&dir), "--to", "hub/library/app"])
        .await
        .expect_ok("ferry import --data-dir again");
    assert!(
        again.stdout.contains("unchanged hub/library/app:v1"),
        "{}",
        again.stdout
    );
    assert!(again.stdout.contains("0 blobs stored"), "{}", again.stdout);
    let verify = ferry.offline("verify").await;
    assert_eq!(verify.code, Some(0), "{verify:?}");
}

/// Bad bundles, each refused with a one-line error naming the problem and
/// nothing visible; earlier content served and intact (`ferry verify`).
/// Also: a zstd bundle, `--map`, a re-import that changes nothing, and a
/// differential bundle whose assumed blobs the receiver lacks.
#[tokio::test]
async fn bad_bundles_are_refused_and_leave_the_store_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let good_image = images::busybox(images::Flavor::Oci, "good");
    let mut ferry = Ferry::start_with(
        &[unreachable_cache("hub"), unreachable_cache("mirror")],
        &[],
        &[],
    );
    stop_when_serving(&mut ferry).await;

    // A good bundle, zstd-compressed.
    let good = HandMade::of(&[("hub/library/good:1", &good_image)], &[]);
    let tar = good.write(&work.path().join("good.tar"));
    let zst = work.path().join("good.tar.zst");
    let compressed = zstd::encode_all(std::fs::File::open(&tar).unwrap(), 3).unwrap();
    std::fs::write(&zst, compressed).unwrap();
    import_offline(&ferry, &[path_str(&zst)])
        .await
        .expect_ok("a zstd bundle");
    let before = references(&ferry).await;
    assert_eq!(before, ["hub/library/good:1"]);
    let again = import_offline(&ferry, &[path_str(&tar)])
        .await
        .expect_ok("the same bundle again");
    assert!(
        again.stdout.contains("unchanged hub/library/good:1"),
        "{}",
        again.stdout
    );

    // Each case its own image: what a refused case stored (verified
    // blobs, nothing naming them) must not make the next one pass.
    let image = |n: usize| images::multi_layer(&format!("bad-{n}"));
    let bundle = |n: usize, image: &Image| {
        HandMade::of(&[(&format!("hub/library/bad{n}:1") as &str, image)], &[])
    };
    let mut cases: Vec<(&str, HandMade, String)> = Vec::new();

    let cut = image(0);
    cases.push(("truncated", bundle(0, &cut), "truncated".into()));

    let damaged = image(1);
    let layer = damaged.layers()[0].digest.clone();
    let mut mismatch = bundle(1, &damaged);
    mismatch.entry(&layer)[0] ^= 0xff;
    cases.push((
        "a blob not matching its name",
        mismatch,
        format!("{layer} in the bundle does not match"),
    ));

    let incomplete = image(2);
    let config = incomplete.config().digest.clone();
    let mut missing = bundle(2, &incomplete);
    let name = format!("blobs/sha256/{}", &config["sha256:".len()..]);
    missing.entries.retain(|(n, _)| *n != name);
    let mut sidecar = missing.sidecar();
    sidecar["blobs"]
        .as_array_mut()
        .unwrap()
        .retain(|b| b["digest"] != json!(config));
    missing.set_sidecar(&sidecar);
    cases.push((
        "an index naming a missing blob",
        missing,
        format!("names blob {config}"),
    ));

    let mut escape = bundle(3, &image(3));
    escape.entries.push(("../escape".into(), b"x".to_vec()));
    cases.push(("a ../ entry", escape, "escapes the layout".into()));

    let bad_name = HandMade::of(&[("hub/library/Bad:1", &image(4))], &[]);
    cases.push(("an invalid reference", bad_name, "hub/library/Bad:1".into()));

    // index.json re-pointing tags, the (signable) sidecar untouched.
    let (seven, eight) = (image(7), image(8));
    let mut swapped = HandMade::of(
        &[
            ("hub/library/bad7:1", &seven),
            ("hub/library/bad7:2", &eight),
        ],
        &[],
    );
    let mut index: Value = serde_json::from_slice(&swapped.entries[2].1).unwrap();
    let first = index["manifests"][0]["annotations"][REF_NAME].clone();
    index["manifests"][0]["annotations"][REF_NAME] =
        index["manifests"][1]["annotations"][REF_NAME].clone();
    index["manifests"][1]["annotations"][REF_NAME] = first;
    swapped.entries[2].1 = serde_json::to_vec(&index).unwrap();
    cases.push((
        "index.json re-pointing a tag",
        swapped,
        "does not match ferry-bundle.json".into(),
    ));

    let lacking = "sha256:".to_string() + &"ab".repeat(32);
    let assumes = image(5);
    let differential = HandMade::of(&[("hub/library/bad5:1", &assumes)], &[(&lacking, 10)]);
    cases.push(("a differential bundle", differential, lacking.clone()));

    for (what, bundle, needle) in cases {
        let path = bundle.write(&work.path().join("bad.tar"));
        if what == "truncated" {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }
        let out = import_offline(&ferry, &[path_str(&path)]).await;
        assert_refused(&out, &needle, what);
        assert_eq!(
            references(&ferry).await,
            before,
            "{what}: something became visible"
        );
        let verify = ferry.offline("verify").await;
        assert_eq!(verify.code, Some(0), "{what}: {verify:?}");
    }
    // What the receiver lacks is found before a byte is stored.
    for blob in assumes.all_blobs() {
        assert!(
            !has_blob(&ferry.data_dir(), &blob.digest),
            "{} stored",
            blob.digest
        );
    }

    // --map: the good bundle's content under another base path.
    import_offline(&ferry, &[path_str(&tar), "--map", "hub=mirror"])
        .await
        .expect_ok("--map hub=mirror");
    assert_eq!(
        references(&ferry).await,
        ["hub/library/good:1", "mirror/library/good:1"]
    );
    ferry.start_again();
    for cache in ["hub", "mirror"] {
        assert_skopeo_copy_matches(
            &image_ref(ferry.host(), &format!("{cache}/library/good"), "1"),
            &good_image,
        )
        .await;
    }
    // Through the API, a refused bundle answers a JSON error the CLI prints.
    // Large, so the refusal comes while the CLI is still sending.
    let big = images::large(48 * 1024 * 1024);
    let bad = HandMade::of(&[("hub/library/x:1", &*big)], &[(&lacking, 10)]);
    let path = bad.write(&work.path().join("bad-api.tar"));
    let out = import_online(&ferry, &[path_str(&path)]).await;
    assert_refused(&out, &lacking, "a differential bundle through the API");
}

/// `kill -9` of an offline import once its first blob is stored; the
/// second run completes, skips what the first stored, and the store is
/// clean.
#[tokio::test]
async fn an_import_killed_mid_way_completes_when_run_again() {
    let work = tempfile::tempdir().unwrap();
    let big = images::large(96 * 1024 * 1024);
    let mut ferry = Ferry::start_with(&[unreachable_cache("hub")], &[], &[]);
    stop_when_serving(&mut ferry).await;
    let bundle = HandMade::of(&[("hub/library/big:1", &big)], &[]);
    let path = bundle.write(&work.path().join("big.tar"));
    let data = ferry.data_dir();

    let mut child = std::process::Command::new(ferry_bin())
        .args(["import", "--data-dir", path_str(&data), path_str(&path)])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The config comes before the big layer in the tar: once it is stored,
    // the layer is under way.
    let config = &big.config().digest;
    let mut polls = 0;
    while !has_blob(&data, config) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "import ended before the config was stored"
        );
        polls += 1;
        assert!(polls < 60_000, "the config never appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.try_wait().unwrap();
    child.kill().ok();
    child.wait().unwrap();
    assert!(
        status.is_none(),
        "the import finished before it could be killed"
    );
    assert!(references(&ferry).await.is_empty(), "a tag became visible");

    let out = import_offline(&ferry, &[path_str(&path)])
        .await
        .expect_ok("the import again");
    assert!(
        out.stdout.contains("imported hub/library/big:1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 already held"), "{}", out.stdout);
    let verify = ferry.offline("verify").await;
    assert_eq!(verify.code, Some(0), "{verify:?}");
    let gc = ferry.offline("gc").await;
    assert!(gc.stdout.contains("removed 0 objects"), "{gc:?}");
    // Also under a base path no cache serves yet (`--map hub=later`)...
    import_offline(&ferry, &[path_str(&path), "--map", "hub=later"])
        .await
        .expect_ok("the import under another base path");
    ferry.start_again();
    assert_skopeo_copy_matches(&image_ref(ferry.host(), "hub/library/big", "1"), &big).await;
    // ... served once a cache of it is defined through the API, its
    // upstream unreachable.
    let api = PulpApi::admin(&ferry);
    let remote = api
        .remote_href("later", &format!("http://127.0.0.1:{}", free_port()))
        .await;
    api.create_distribution("later", "later", &remote, false)
        .await;
    assert_skopeo_copy_matches(&image_ref(ferry.host(), "later/library/big", "1"), &big).await;
}

/// Pulls `image` (every child of an index, every blob) through a ferry.
async fn pull_whole(ferry: &Ferry, repo: &str, reference: &str, image: &Image) {
    let client = RegistryClient::new(&ferry.url());
    let m = client.get_manifest(repo, reference).await;
    assert_eq!(m.status, reqwest::StatusCode::OK, "pull {repo}:{reference}");
    for child in &image.children {
        let c = client.get_manifest(repo, &child.digest).await;
        assert_eq!(
            c.status,
            reqwest::StatusCode::OK,
            "pull {repo}@{}",
            child.digest
        );
    }
    for blob in image.all_blobs() {
        let b = client.get_blob(repo, &blob.digest).await;
        assert_eq!(b.status, reqwest::StatusCode::OK, "blob {}", blob.digest);
    }
}

/// `ferry ARGS...` as a client of a running ferry (the admin password
/// from the environment, as start_with sets it).
async fn ferry_admin_cmd(args: &[&str]) -> CmdOutput {
    ferry_cmd(args, &[("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)]).await
}

/// THE ROUND TRIP (issue 15's first test): ferry A caches images from the
/// real upstream (a Docker image, a multi-arch OCI index with both
/// platforms, an OCI image with a referrer); `ferry export`; the upstream
/// stopped; ferry B, which never saw it, imports; podman and skopeo pull
/// every image and platform from B with the upstream's digests, and B
/// lists the referrer. Then the other sides of a bundle: a differential
/// one (`ferry inventory` of B → `export --have`) imports into B and is
/// refused by a ferry lacking what it assumes, naming the digests; a
/// signed one needs its key; split parts import in any order.
#[tokio::test]
async fn the_round_trip_export_then_import_serves_everything_without_the_upstream() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let busybox = images::busybox(images::Flavor::Docker, "1.36");
    let multi = images::multi_arch(images::Flavor::Oci, "trip");
    let app = images::busybox(images::Flavor::Oci, "app v1");
    let sbom = images::artifact(&app, "application/vnd.example.sbom.v1", "{}");
    let fallback_tag = app.digest.replace(':', "-");
    direct.push_image(BUSYBOX, "1.36", &busybox).await;
    direct.push_image("library/multi", "2", &multi).await;
    direct.push_image("other/app", "v1", &app).await;
    direct.push_image("other/app", &fallback_tag, &sbom).await;

    let a = Ferry::start_with(&[CacheSpec::new("hub", &upstream.url())], &[], &[]);
    pull_whole(&a, "hub/library/busybox", "1.36", &busybox).await;
    pull_whole(&a, "hub/library/multi", "2", &multi).await;
    pull_whole(&a, "hub/other/app", "v1", &app).await;
    pull_whole(&a, "hub/other/app", &sbom.digest, &sbom).await;
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("site.tar");
    let key = work.path().join("site");
    ferry_cmd(&["keygen", "--output", path_str(&key)], &[])
        .await
        .expect_ok("ferry keygen");
    let (private, public) = (
        format!("{}.key", key.display()),
        format!("{}.pub", key.display()),
    );
    ferry_admin_cmd(&[
        "export",
        "--url",
        &a.url(),
        "--output",
        path_str(&bundle),
        "--referrers",
    ])
    .await
    .expect_ok("ferry export");
    let signed = work.path().join("signed.tar.zst");
    ferry_admin_cmd(&[
        "export",
        "--url",
        &a.url(),
        "--output",
        path_str(&signed),
        "--zstd",
        "--sign",
        &private,
        "--repository",
        "hub/library/busybox",
    ])
    .await
    .expect_ok("ferry export --sign");
    let split = work.path().join("split.tar");
    ferry_admin_cmd(&[
        "export",
        "--url",
        &a.url(),
        "--output",
        path_str(&split),
        "--split",
        "3KiB",
        "--repository",
        "hub/other/app",
    ])
    .await
    .expect_ok("ferry export --split");
    upstream.stop();

    let b = Ferry::start_with(&[CacheSpec::new("hub", &upstream.url())], &[], &[]);
    let out = import_online(&b, &[path_str(&bundle)])
        .await
        .expect_ok("ferry import");
    for tag in [
        "hub/library/busybox:1.36",
        "hub/library/multi:2",
        "hub/other/app:v1",
    ] {
        assert!(
            out.stdout.contains(&format!("imported {tag}")),
            "{tag}: {}",
            out.stdout
        );
    }
    let podman = Podman::new();
    podman
        .assert_pulls(
            &image_ref(b.host(), "hub/library/busybox", "1.36"),
            &busybox.digest,
            "busybox from B",
        )
        .await;
    podman
        .assert_pulls(
            &image_ref(b.host(), "hub/other/app", "v1"),
            &app.digest,
            "app from B",
        )
        .await;
    let multi_ref = image_ref(b.host(), "hub/library/multi", "2");
    for arch in ["amd64", "arm64"] {
        podman
            .pull(&multi_ref, Some(arch), None)
            .await
            .expect_ok(&format!("podman pull --arch {arch} from B"));
        let (id, _) = podman.image_id_and_digest(&multi_ref).await;
        assert_eq!(
            format!("sha256:{id}"),
            multi.child(arch).config().digest,
            "{arch}"
        );
        assert_skopeo_copy_matches(
            &image_ref(b.host(), "hub/library/multi", &multi.child(arch).digest),
            multi.child(arch),
        )
        .await;
    }
    let raw = skopeo_inspect_raw(&multi_ref, None)
        .await
        .expect_ok("skopeo inspect");
    assert_eq!(digest_of(raw.stdout.as_bytes()), multi.digest);
    assert_skopeo_copy_matches(
        &image_ref(b.host(), "hub/library/busybox", "1.36"),
        &busybox,
    )
    .await;
    let referrers = RegistryClient::new(&b.url())
        .fetch(
            reqwest::Method::GET,
            &format!("/v2/hub/other/app/referrers/{}", app.digest),
            &[],
        )
        .await;
    assert_eq!(referrers.status, reqwest::StatusCode::OK);
    let listed: Value = serde_json::from_slice(&referrers.body).unwrap();
    assert!(
        listed["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == json!(sbom.digest)),
        "{listed}"
    );
    assert_skopeo_copy_matches(&image_ref(b.host(), "hub/other/app", &sbom.digest), &sbom).await;

    // Signed: refused unsigned or with another key, taken with its own.
    let other_key = work.path().join("other");
    ferry_cmd(&["keygen", "--output", path_str(&other_key)], &[])
        .await
        .expect_ok("ferry keygen");
    let other_public = format!("{}.pub", other_key.display());
    let unsigned = import_online(&b, &[path_str(&bundle), "--trusted-key", &public]).await;
    assert_refused(
        &unsigned,
        "not signed",
        "an unsigned bundle with a trusted key",
    );
    let wrong = import_online(&b, &[path_str(&signed), "--trusted-key", &other_public]).await;
    assert_refused(&wrong, "signature", "a bundle signed by another key");
    import_online(&b, &[path_str(&signed), "--trusted-key", &public])
        .await
        .expect_ok("a signed bundle with its key");

    // Split parts, given in reverse order with their checksum file.
    let mut parts: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.contains("split.tar."))
        .collect();
    assert!(parts.len() > 2, "{parts:?}");
    parts.sort();
    parts.reverse();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let out = import_online(&b, &parts)
        .await
        .expect_ok("split parts in any order");
    assert!(
        out.stdout.contains("unchanged hub/other/app:v1"),
        "{}",
        out.stdout
    );
    // A damaged part is named (into a ferry that holds none of it).
    let second = work.path().join("split.tar.part002");
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&second, bytes).unwrap();
    let fresh = Ferry::start_with(&[unreachable_cache("hub")], &[], &[]);
    let damaged = import_online(&fresh, &parts).await;
    assert_refused(&damaged, "split.tar.part002", "a damaged part");

    // A differential bundle: B's inventory, A's new image, only new blobs.
    upstream.start_again().await;
    let app2 = images::busybox(images::Flavor::Oci, "app v2");
    RegistryClient::new(&upstream.url())
        .push_image("other/app", "v2", &app2)
        .await;
    let a = Ferry::start_with(&[CacheSpec::new("hub", &upstream.url())], &[], &[]);
    pull_whole(&a, "hub/other/app", "v1", &app).await;
    pull_whole(&a, "hub/other/app", "v2", &app2).await;
    let inventory = work.path().join("b.json");
    ferry_admin_cmd(&[
        "inventory",
        "--url",
        &b.url(),
        "--output",
        path_str(&inventory),
    ])
    .await
    .expect_ok("ferry inventory of B");
    let diff = work.path().join("diff.tar");
    ferry_admin_cmd(&[
        "export",
        "--url",
        &a.url(),
        "--output",
        path_str(&diff),
        "--have",
        path_str(&inventory),
    ])
    .await
    .expect_ok("ferry export --have");
    let c = Ferry::start_with(&[unreachable_cache("hub")], &[], &[]);
    let refused = import_online(&c, &[path_str(&diff)]).await;
    // The shared busybox layer is assumed: C lacks it and is told so.
    assert_refused(
        &refused,
        &app.layers()[0].digest,
        "a differential bundle into C",
    );
    let out = import_online(&b, &[path_str(&diff)])
        .await
        .expect_ok("the differential bundle into B");
    assert!(
        out.stdout.contains("imported hub/other/app:v2"),
        "{}",
        out.stdout
    );
    assert_skopeo_copy_matches(&image_ref(b.host(), "hub/other/app", "v2"), &app2).await;
}

/// Only the admin imports or reads the inventory: an anonymous client and a
/// wrong password get 401 and nothing lands; the admin's upload must be a
/// bundle type, which a cross-site HTML form cannot send.
#[tokio::test]
async fn strangers_cannot_import_or_read_the_inventory() {
    let work = tempfile::tempdir().unwrap();
    let image = images::busybox(images::Flavor::Oci, "stranger");
    let ferry = Ferry::start_with(&[unreachable_cache("hub")], &[], &[]);
    let bundle = HandMade::of(&[("hub/library/planted:1", &image)], &[]);
    let tar = std::fs::read(bundle.write(&work.path().join("planted.tar"))).unwrap();
    let import = format!("{}/pulp/api/v3/bundles/import/", ferry.url());
    let inventory = format!("{}/pulp/api/v3/bundles/inventory/", ferry.url());
    let http = reqwest::Client::new();

    for (who, password) in [("anonymous", None), ("wrong password", Some("wrong"))] {
        let auth = |r: reqwest::RequestBuilder| match password {
            Some(p) => r.basic_auth("admin", Some(p)),
            None => r,
        };
        let upload = auth(http.post(&import))
            .header("content-type", "application/x-tar")
            .body(tar.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), StatusCode::UNAUTHORIZED, "{who} import");
        let listing = auth(http.get(&inventory)).send().await.unwrap();
        assert_eq!(
            listing.status(),
            StatusCode::UNAUTHORIZED,
            "{who} inventory"
        );
    }
    let admin = |r: reqwest::RequestBuilder| r.basic_auth("admin", Some(ADMIN_PASSWORD));
    let form = admin(http.post(&import))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(tar.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let held = admin(http.get(&inventory)).send().await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let held: Value = serde_json::from_slice(&held.bytes().await.unwrap()).unwrap();
    assert_eq!(
        held["references"],
        json!([]),
        "nothing was imported: {held}"
    );
}
