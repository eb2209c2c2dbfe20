//! Issue 15, export: `ferry export` writes a bundle (an OCI image layout in
//! a tar, `ferry-bundle.json` first) from a running ferry through its API
//! and from a stopped ferry's data directory. What a user checks: the tar's
//! entries, the sidecar manifest listing every blob with its size, the
//! reference names in `index.json`, `skopeo inspect`/`skopeo copy` reading
//! the bundle with the upstream's digests, the selection flags, a
//! differential bundle holding only new blobs, zstd, signed and split
//! bundles (checked with openssl and sha256sum), and the API refusing
//! strangers and bad selections. Upstream: Debian's docker-registry.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images::{artifact, busybox, multi_arch};
use crate::support::pulp_api::{href_of, PulpApi};
use crate::support::util::{run_bounded, CmdOutput};
use crate::support::*;

const PLAN: &str = "/pulp/api/v3/bundles/plan/";
const EXPORT: &str = "/pulp/api/v3/bundles/export/";
const LIMIT: Duration = Duration::from_secs(120);

/// `ferry ARGS...` with the admin password in the environment and nothing
/// of the host's ferry settings.
async fn ferry_cli(args: &[&str]) -> CmdOutput {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(args)
        .current_dir(cwd.path())
        .env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn");
    for var in ["FERRY_CONFIG", "FERRY_CACHE", "FERRY_DATA_DIR", "FERRY_URL"] {
        cmd.env_remove(var);
    }
    run_bounded(cmd, LIMIT).await
}

/// A command's output for an assertion message.
fn shown(output: &CmdOutput) -> String {
    format!(
        "success={} stdout={:?} stderr={:?}",
        output.success, output.stdout, output.stderr
    )
}

/// skopeo with a private HOME and no host policy.
async fn skopeo(args: &[&str]) -> CmdOutput {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("policy.json"),
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new("skopeo");
    cmd.arg("--policy")
        .arg(home.path().join("policy.json"))
        .args(args)
        .env("HOME", home.path());
    run_bounded(cmd, LIMIT).await
}

/// The images of these tests, pushed upstream.
struct World {
    upstream: Upstream,
    busybox: Image,
    multi: Image,
    app: Image,
}

async fn world() -> World {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let busybox = busybox(Flavor::Docker, "1.36");
    let multi = multi_arch(Flavor::Oci, "multi");
    let app = busybox_oci("app v1");
    direct.push_image(BUSYBOX, "1.36", &busybox).await;
    direct.push_image("library/multi", "2", &multi).await;
    direct.push_image("other/app", "v1", &app).await;
    World {
        upstream,
        busybox,
        multi,
        app,
    }
}

fn busybox_oci(label: &str) -> Image {
    busybox(Flavor::Oci, label)
}

/// Pulls `image` (every child of an index) through ferry, as a client does.
async fn pull(ferry: &Ferry, repo: &str, reference: &str, image: &Image) {
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{repo}");
    let m = client.get_manifest(&repo, reference).await;
    assert_eq!(m.status, StatusCode::OK, "pull {repo}:{reference}");
    for child in &image.children {
        let c = client.get_manifest(&repo, &child.digest).await;
        assert_eq!(c.status, StatusCode::OK, "pull {repo}@{}", child.digest);
    }
    for blob in image.all_blobs() {
        let b = client.get_blob(&repo, &blob.digest).await;
        assert_eq!(b.status, StatusCode::OK, "blob {}", blob.digest);
    }
}

async fn warm_ferry(world: &World) -> Ferry {
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &world.upstream.url())], &[], &[]);
    pull(&ferry, BUSYBOX, "1.36", &world.busybox).await;
    pull(&ferry, "library/multi", "2", &world.multi).await;
    pull(&ferry, "other/app", "v1", &world.app).await;
    ferry
}

/// A bundle as read back: entries in order, with their bytes.
struct Bundle {
    entries: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    fn read(path: &Path) -> Bundle {
        let bytes = std::fs::read(path).unwrap();
        Bundle::of(&bytes)
    }

    fn of(bytes: &[u8]) -> Bundle {
        let tar_bytes = if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            zstd::decode_all(bytes).unwrap()
        } else {
            bytes.to_vec()
        };
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.push((name, data));
        }
        Bundle { entries }
    }

    fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn json(&self, name: &str) -> Value {
        let (_, data) = self
            .entries
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.names()));
        serde_json::from_slice(data).unwrap()
    }

    fn manifest(&self) -> Value {
        self.json("ferry-bundle.json")
    }

    /// `digest → size` of the blob entries, each checked against its name.
    fn blobs(&self) -> BTreeMap<String, u64> {
        self.entries
            .iter()
            .filter_map(|(name, data)| {
                let hex = name.strip_prefix("blobs/sha256/")?;
                let digest = format!("sha256:{hex}");
                assert_eq!(digest_of(data), digest, "entry {name} holds other bytes");
                Some((digest, data.len() as u64))
            })
            .collect()
    }

    /// The ref names of `index.json`.
    fn ref_names(&self) -> BTreeSet<String> {
        self.json("index.json")["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string)
            .collect()
    }
}

fn listed(manifest: &Value, field: &str) -> BTreeMap<String, u64> {
    manifest[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["digest"].as_str().unwrap().to_string(),
                b["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn references(manifest: &Value) -> BTreeSet<String> {
    manifest["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reference"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every blob of `images` (manifests, children, configs, layers).
fn digests_of(images: &[&Image]) -> BTreeSet<String> {
    fn walk(image: &Image, out: &mut BTreeSet<String>) {
        out.insert(image.digest.clone());
        out.extend(image.blobs.iter().map(|b| b.digest.clone()));
        for child in &image.children {
            walk(child, out);
        }
    }
    let mut out = BTreeSet::new();
    for image in images {
        walk(image, &mut out);
    }
    out
}

fn all_refs() -> BTreeSet<String> {
    set(&[
        "docker-cache/library/busybox:1.36",
        "docker-cache/library/multi:2",
        "docker-cache/other/app:v1",
    ])
}

/// The export through the API and the one from the stopped data directory
/// hold the same entries; the layout's order, the sidecar manifest (every
/// blob with its size) and the ref names are as the format says; skopeo
/// reads the bundle by reference name with the upstream's digests.
#[tokio::test]
async fn api_and_data_dir_exports_agree_and_skopeo_reads_them() {
    let world = world().await;
    let mut ferry = warm_ferry(&world).await;
    let out = tempfile::tempdir().unwrap();
    let via_api = out.path().join("api.tar");
    let api_path = via_api.display().to_string();
    // What an export killed earlier left (its process is gone), and what
    // one still running writes (this test's own process stands in for it).
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    let killed = out.path().join(format!(".api.tar.partial-{}", exited.id()));
    let running = out
        .path()
        .join(format!(".api.tar.partial-{}", std::process::id()));
    std::fs::write(&killed, b"half a bundle").unwrap();
    std::fs::write(&running, b"a bundle being written").unwrap();
    let answer = ferry_cli(&["export", "--url", &ferry.url(), "--output", &api_path]).await;
    assert!(answer.success, "export --url: {}", shown(&answer));
    assert!(
        answer.stdout.starts_with("exported 3 references, "),
        "{}",
        shown(&answer)
    );
    assert!(!killed.exists(), "a killed export's temp file is removed");
    assert!(
        running.exists(),
        "a running export's temp file is left alone"
    );
    std::fs::remove_file(&running).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp file left beside the bundle");

    let offline = out.path().join("offline.tar");
    let data_dir = ferry.data_dir().display().to_string();
    let offline_args = [
        "export",
        "--data-dir",
        &data_dir,
        "--output",
        &offline.display().to_string(),
    ];
    let refused = ferry_cli(&offline_args).await;
    assert!(
        !refused.success,
        "the data dir of a running ferry is locked"
    );
    assert!(
        refused.stderr.contains("is using") && refused.stderr.contains("--url"),
        "{}",
        shown(&refused)
    );
    assert!(!offline.exists());
    ferry.kill();
    let answer = ferry_cli(&offline_args).await;
    assert!(answer.success, "export --data-dir: {}", shown(&answer));

    let (api, off) = (Bundle::read(&via_api), Bundle::read(&offline));
    let head = ["ferry-bundle.json", "oci-layout", "index.json"];
    assert_eq!(api.names()[..3], head, "{:?}", api.names());
    assert_eq!(off.names()[..3], head);
    let mut api_names = api.names();
    let mut off_names = off.names();
    api_names.sort();
    off_names.sort();
    assert_eq!(api_names, off_names, "the same entries either way");

    let manifest = api.manifest();
    assert_eq!(manifest["format"], "ferry-bundle/1");
    assert_eq!(manifest["source"]["name"], ferry.url());
    assert_eq!(references(&manifest), all_refs());
    assert_eq!(references(&off.manifest()), all_refs());
    assert_eq!(
        listed(&manifest, "blobs"),
        api.blobs(),
        "every blob, its size"
    );
    let expected = digests_of(&[&world.busybox, &world.multi, &world.app]);
    assert_eq!(
        api.blobs().keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(api.ref_names(), all_refs());
    assert_eq!(api.json("oci-layout")["imageLayoutVersion"], "1.0.0");

    let inspected = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{api_path}:docker-cache/other/app:v1"),
    ])
    .await;
    assert!(inspected.success, "skopeo inspect: {}", shown(&inspected));
    assert_eq!(digest_of(inspected.stdout.as_bytes()), world.app.digest);

    let copied = out.path().join("multi");
    let answer = skopeo(&[
        "copy",
        "--multi-arch",
        "all",
        &format!("oci-archive:{api_path}:docker-cache/library/multi:2"),
        &format!("dir:{}", copied.display()),
    ])
    .await;
    assert!(answer.success, "skopeo copy: {}", shown(&answer));
    let index = std::fs::read(copied.join("manifest.json")).unwrap();
    assert_eq!(digest_of(&index), world.multi.digest);
    for child in &world.multi.children {
        for blob in &child.blobs {
            let hex = blob.digest.trim_start_matches("sha256:");
            let bytes = std::fs::read(copied.join(hex)).unwrap();
            assert_eq!(digest_of(&bytes), blob.digest);
        }
    }
}

/// Selection through `plan/`: repository and tag wildcards, pinned only,
/// one platform of an index, referrers on request.
#[tokio::test]
async fn selection_by_wildcard_pin_platform_and_referrers() {
    let world = world().await;
    let sbom = artifact(&world.app, "application/vnd.example.sbom.v1", "{}");
    RegistryClient::new(&world.upstream.url())
        .push_image("other/app", &world.app.digest.replace(':', "-"), &sbom)
        .await;
    let ferry = warm_ferry(&world).await;
    // The SBOM cached whole, by digest and by its fallback tag.
    pull(&ferry, "other/app", &sbom.digest, &sbom).await;
    pull(
        &ferry,
        "other/app",
        &world.app.digest.replace(':', "-"),
        &sbom,
    )
    .await;
    let api = PulpApi::admin(&ferry);
    let plan = |body: Value| {
        let api = &api;
        async move { api.post(PLAN, body).await.success_json("plan") }
    };

    let library = plan(json!({ "repositories": ["docker-cache/library/*"] })).await;
    assert_eq!(
        references(&library),
        set(&[
            "docker-cache/library/busybox:1.36",
            "docker-cache/library/multi:2"
        ])
    );
    let tagged = plan(json!({ "tags": ["v?"] })).await;
    assert_eq!(references(&tagged), set(&["docker-cache/other/app:v1"]));
    assert_eq!(tagged["referrers"], json!([]));

    let repo = api
        .repository("docker-cache/library/busybox")
        .await
        .unwrap();
    api.post(&format!("{}pin/", href_of(&repo)), json!({}))
        .await
        .success_json("pin");
    let pinned = plan(json!({ "pinned": true })).await;
    assert_eq!(
        references(&pinned),
        set(&["docker-cache/library/busybox:1.36"])
    );

    let arm = plan(json!({ "repositories": ["*/multi"], "platforms": "linux/arm64" })).await;
    let blobs = listed(&arm, "blobs");
    let (amd64, arm64) = (&world.multi.children[0], &world.multi.children[1]);
    assert!(blobs.contains_key(&world.multi.digest), "the index");
    assert!(blobs.contains_key(&arm64.digest) && !blobs.contains_key(&amd64.digest));
    assert_eq!(blobs.len(), 2 + arm64.blobs.len(), "{arm}");

    let with_referrers = plan(json!({ "tags": ["v1"], "referrers": true })).await;
    let referrers = with_referrers["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{with_referrers}");
    assert_eq!(referrers[0]["digest"], sbom.digest);
    assert_eq!(referrers[0]["subject"], world.app.digest);
    let blobs = listed(&with_referrers, "blobs");
    assert!(sbom.blobs.iter().all(|b| blobs.contains_key(&b.digest)));
    // The same flags from the command line: pulled within the hour, one
    // platform; a date in the future selects nothing and writes nothing.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("amd64.tar");
    let path = file.display().to_string();
    let url = ferry.url();
    let base = ["export", "--url", &url, "--output", &path, "--tag", "2"];
    let answer =
        ferry_cli(&[&base[..], &["--since", "1h", "--platform", "linux/amd64"]].concat()).await;
    assert!(answer.success, "{}", shown(&answer));
    let blobs: BTreeSet<String> = Bundle::read(&file).blobs().into_keys().collect();
    let amd64_only: BTreeSet<String> = [world.multi.digest.clone()]
        .into_iter()
        .chain(digests_of(&[amd64]))
        .collect();
    assert_eq!(blobs, amd64_only);
    std::fs::remove_file(&file).unwrap();
    let answer = ferry_cli(&[&base[..], &["--since", "2099-01-01"]].concat()).await;
    assert!(!answer.success);
    assert!(
        answer.stderr.contains("matches no stored image"),
        "{}",
        shown(&answer)
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );

    // The fallback tag (`sha256-<hex>`) goes along as a reference.
    assert!(references(&with_referrers).contains(&format!(
        "docker-cache/other/app:{}",
        world.app.digest.replace(':', "-")
    )));
}

/// A differential bundle against the receiver's inventory holds only the
/// blobs it lacks and lists the rest as assumed.
#[tokio::test]
async fn a_differential_bundle_holds_only_the_new_blobs() {
    let world = world().await;
    let ferry = warm_ferry(&world).await;
    let out = tempfile::tempdir().unwrap();
    let first = out.path().join("first.tar");
    let answer = ferry_cli(&[
        "export",
        "--url",
        &ferry.url(),
        "--output",
        &first.display().to_string(),
    ])
    .await;
    assert!(answer.success, "{}", shown(&answer));
    let first = Bundle::read(&first);

    // What the receiver holds after importing the first bundle.
    let inventory = json!({
        "format": "ferry-inventory/1",
        "created": "2026-12-02T00:00:00Z",
        "source": { "ferry": "0.1.0", "name": "receiver" },
        "references": [],
        "blobs": first.manifest()["blobs"],
    });
    let inventory_path = out.path().join("inventory.json");
    std::fs::write(&inventory_path, inventory.to_string()).unwrap();

    let next = busybox_oci("app v2");
    RegistryClient::new(&world.upstream.url())
        .push_image("other/app", "v2", &next)
        .await;
    pull(&ferry, "other/app", "v2", &next).await;
    let second = out.path().join("second.tar");
    let answer = ferry_cli(&[
        "export",
        "--url",
        &ferry.url(),
        "--repository",
        "docker-cache/other/*",
        "--have",
        &inventory_path.display().to_string(),
        "--output",
        &second.display().to_string(),
    ])
    .await;
    assert!(answer.success, "{}", shown(&answer));
    assert!(
        answer.stdout.contains("assumed at the receiver"),
        "{}",
        shown(&answer)
    );
    let second = Bundle::read(&second);
    let had: BTreeSet<String> = first.blobs().into_keys().collect();
    let new: BTreeSet<String> = digests_of(&[&next]).difference(&had).cloned().collect();
    assert!(!new.is_empty());
    let entries: BTreeSet<String> = second.blobs().into_keys().collect();
    assert_eq!(entries, new, "only the blobs the receiver lacks");
    let manifest = second.manifest();
    assert_eq!(
        references(&manifest),
        set(&["docker-cache/other/app:v1", "docker-cache/other/app:v2"])
    );
    let assumed: BTreeSet<String> = listed(&manifest, "assumed").into_keys().collect();
    let wanted: BTreeSet<String> = digests_of(&[&world.app, &next])
        .intersection(&had)
        .cloned()
        .collect();
    assert_eq!(assumed, wanted);
}

/// `--zstd --sign` through the API: a zstd stream of the same layout, with
/// the signature entry second, verifying (openssl) over the exact
/// `ferry-bundle.json`. `--split` from the data directory: parts that
/// `sha256sum -c` accepts and that concatenate to the bundle.
#[tokio::test]
async fn zstd_signed_and_split_bundles() {
    let world = world().await;
    let mut ferry = warm_ferry(&world).await;
    let out = tempfile::tempdir().unwrap();
    let key = out.path().join("site");
    let answer = ferry_cli(&["keygen", "--output", &key.display().to_string()]).await;
    assert!(answer.success, "{}", shown(&answer));
    let signed = out.path().join("signed.tar.zst");
    let answer = ferry_cli(&[
        "export",
        "--url",
        &ferry.url(),
        "--zstd",
        "--sign",
        &format!("{}.key", key.display()),
        "--output",
        &signed.display().to_string(),
    ])
    .await;
    assert!(answer.success, "{}", shown(&answer));
    let raw = std::fs::read(&signed).unwrap();
    assert!(raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "a zstd frame");
    let bundle = Bundle::of(&raw);
    assert_eq!(
        bundle.names()[..4],
        [
            "ferry-bundle.json",
            "ferry-bundle.json.sig",
            "oci-layout",
            "index.json"
        ]
    );
    assert_eq!(references(&bundle.manifest()), all_refs());
    assert_eq!(listed(&bundle.manifest(), "blobs"), bundle.blobs());
    let entry = |name: &str| {
        bundle
            .entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    let signature: Value = serde_json::from_slice(&entry("ferry-bundle.json.sig")).unwrap();
    use base64::Engine as _;
    let raw_signature = base64::engine::general_purpose::STANDARD
        .decode(signature["signature"].as_str().unwrap())
        .unwrap();
    std::fs::write(out.path().join("manifest"), entry("ferry-bundle.json")).unwrap();
    std::fs::write(out.path().join("sig.bin"), raw_signature).unwrap();
    let mut verify = tokio::process::Command::new("openssl");
    verify
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(format!("{}.pub", key.display()))
        .arg("-in")
        .arg(out.path().join("manifest"))
        .arg("-sigfile")
        .arg(out.path().join("sig.bin"));
    let verified = run_bounded(verify, LIMIT).await;
    assert!(
        verified.success,
        "openssl verifies the signature: {}",
        shown(&verified)
    );

    ferry.kill();
    let split = out.path().join("split.tar");
    let answer = ferry_cli(&[
        "export",
        "--data-dir",
        &ferry.data_dir().display().to_string(),
        "--split",
        "64KiB",
        "--output",
        &split.display().to_string(),
    ])
    .await;
    assert!(answer.success, "{}", shown(&answer));
    let mut check = tokio::process::Command::new("sha256sum");
    check
        .args(["-c", "split.tar.sha256"])
        .current_dir(out.path());
    let checked = run_bounded(check, LIMIT).await;
    assert!(checked.success, "sha256sum -c: {}", shown(&checked));
    let mut parts: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.display().to_string().contains("split.tar.part"))
        .collect();
    parts.sort();
    assert!(parts.len() > 1, "{parts:?}");
    let whole: Vec<u8> = parts
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    let joined = Bundle::of(&whole);
    assert_eq!(references(&joined.manifest()), all_refs());
    assert_eq!(listed(&joined.manifest(), "blobs"), joined.blobs());
}

/// Only the admin exports; a bad selection is a 400 with a JSON reason,
/// and so is one that matches nothing.
#[tokio::test]
async fn the_api_refuses_strangers_and_bad_selections() {
    let world = world().await;
    let ferry = warm_ferry(&world).await;
    for (who, api) in [
        ("anonymous", PulpApi::anonymous(&ferry)),
        ("wrong password", PulpApi::as_user(&ferry, "admin", "wrong")),
    ] {
        for path in [PLAN, EXPORT] {
            let answer = api.post(path, json!({})).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{who} {path}");
            assert!(
                answer.json()["detail"].is_string(),
                "{who}: {}",
                answer.text
            );
        }
    }
    let api = PulpApi::admin(&ferry);
    for (body, what) in [
        (json!({ "cache": ["x"] }), "an unknown field"),
        (
            json!({ "platforms": "linux" }),
            "a platform without architecture",
        ),
        (json!({ "tags": "latest" }), "a string for a list"),
        (
            json!({ "tags": ["nothing-has-this-tag"] }),
            "a selection of nothing",
        ),
    ] {
        for path in [PLAN, EXPORT] {
            let answer = api.post(path, body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{what}: {}",
                answer.text
            );
            assert_eq!(answer.header("content-type"), Some("application/json"));
            assert!(!answer.json().as_object().unwrap().is_empty(), "{what}");
        }
    }
    let nothing = api.post(EXPORT, json!({ "tags": ["none"] })).await;
    assert!(
        nothing.text.contains("matches no stored image"),
        "{}",
        nothing.text
    );

    // A plan handed back to be written (as a signed export does) whose
    // config is gone meanwhile (evicted; here removed by hand) is refused
    // before a byte is sent, naming the blob.
    let planned = api.post(PLAN, json!({ "tags": ["v1"] })).await;
    assert_eq!(planned.status, StatusCode::OK);
    let config = &world.app.config().digest;
    let hex = config.trim_start_matches("sha256:");
    let file = ferry
        .data_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    std::fs::remove_file(&file).unwrap();
    let answer = api
        .post(EXPORT, json!({ "manifest": planned.text, "selection": {} }))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains(config.as_str()), "{}", answer.text);

    // The whole stream through the API: the tar's content type and name.
    let answer = reqwest::Client::new()
        .post(format!("{}{EXPORT}", ferry.url()))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body(json!({ "tags": ["1.36"] }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "application/x-tar");
    assert!(
        header("content-disposition").starts_with("attachment; filename=\"ferry-bundle-"),
        "{}",
        header("content-disposition")
    );
    let bundle = Bundle::of(&answer.bytes().await.unwrap());
    assert_eq!(
        references(&bundle.manifest()),
        set(&["docker-cache/library/busybox:1.36"])
    );
}
