//! Trust boundaries towards the upstream: its credentials go only to its
//! own origin (or an HTTPS token realm: see `auth::token_auth_upstream_with_
//! configured_credentials`), its tag list is bounded, and what ferry stores
//! of it (passwords included) is private to ferry's user whatever the umask.
//! Hostile answers come from FAKE upstreams (`support::fake_upstream`); the
//! file modes are checked against the real docker-registry.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::fake_upstream::{huge_page_tags, AuthRecorder, FakeUpstream, Hostile};
use crate::support::*;

/// GET `url`: the status and the JSON body (`Null` if not JSON).
async fn get_json(url: &str) -> (StatusCode, Value) {
    let resp = http_client().get(url).send().await.unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn error_message(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A tag list through ferry holding the credentials of a `hostile` upstream.
async fn tags_via_ferry_of(hostile: Hostile) -> (StatusCode, Value) {
    let fake = FakeUpstream::start(hostile);
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &fake.url()).credentials(USER, PASSWORD)]);
    get_json(&format!("{}/v2/{CACHE}/library/x/tags/list", ferry.url())).await
}

#[tokio::test]
async fn tag_list_link_to_another_origin_gets_no_request_and_no_credentials() {
    let elsewhere = AuthRecorder::start();
    let (status, body) = tags_via_ferry_of(Hostile::TagsLinkTo(elsewhere.url())).await;
    assert_eq!(
        elsewhere.authorizations(),
        Vec::<String>::new(),
        "the upstream's credentials went to another origin"
    );
    assert_eq!(
        elsewhere.requests(),
        0,
        "ferry followed a Link to another origin"
    );
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        error_message(&body).contains("another origin"),
        "unclear error: {body}"
    );
}

/// reqwest drops `Authorization` when a redirect leaves the host: checked
/// here so a change of HTTP client cannot lose it silently.
#[tokio::test]
async fn redirect_to_another_origin_carries_no_credentials() {
    let elsewhere = AuthRecorder::start();
    let (status, body) = tags_via_ferry_of(Hostile::TagsRedirectTo(elsewhere.url())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(elsewhere.requests() >= 1, "the redirect was not followed");
    assert_eq!(elsewhere.authorizations(), Vec::<String>::new());
}

#[tokio::test]
async fn plain_http_token_realm_on_another_origin_gets_no_credentials() {
    let realm = AuthRecorder::start();
    let fake = FakeUpstream::start(Hostile::BearerRealm(format!("{}/token", realm.url())));
    let ferry = Ferry::start(&[CacheSpec::new(CACHE, &fake.url()).credentials(USER, PASSWORD)]);

    let got = RegistryClient::new(&ferry.url())
        .get_manifest(&format!("{CACHE}/{BUSYBOX}"), "1.36")
        .await;
    assert_eq!(
        realm.authorizations(),
        Vec::<String>::new(),
        "the upstream's credentials went to a plain-HTTP realm on another origin"
    );
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert!(
        error_message(&body).contains("token realm"),
        "unclear error: {body}"
    );
}

/// `VmRSS` or `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// 25 pages of 3.9 MiB (what raised ferry's RSS by 753 MiB): refused with a
/// clear error once past the bound, without ballooning. A tag list of a few
/// pages within the bound still comes back whole.
#[tokio::test]
async fn huge_tag_list_is_refused_without_ballooning() {
    let huge = FakeUpstream::start(Hostile::HugeTags {
        pages: 25,
        page_bytes: 3_900 * 1024,
    });
    let paged = FakeUpstream::start(Hostile::HugeTags {
        pages: 3,
        page_bytes: 64 * 1024,
    });
    let ferry = Ferry::start(&[
        CacheSpec::new(CACHE, &huge.url()),
        CacheSpec::new("paged-cache", &paged.url()),
    ]);
    let pid = ferry.pid().unwrap();

    let (status, body) = get_json(&format!(
        "{}/v2/paged-cache/library/big/tags/list",
        ferry.url()
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tags = body["tags"].as_array().unwrap();
    let per_page = huge_page_tags(64 * 1024);
    assert_eq!(tags.len(), 3 * per_page, "not every page came back");
    assert!(tags
        .iter()
        .any(|t| t.as_str().unwrap().starts_with("p0002-")));

    let before = memory_kib(pid, "VmRSS");
    let (status, body) =
        get_json(&format!("{}/v2/{CACHE}/library/big/tags/list", ferry.url())).await;
    // A sanity bound, not a measurement: the 25 pages are ~98 MiB of JSON.
    let grown = memory_kib(pid, "VmHWM").saturating_sub(before) / 1024;
    eprintln!("ferry's peak RSS grew by {grown} MiB");
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{}", error_message(&body));
    assert!(
        error_message(&body).contains("larger than ferry accepts"),
        "unclear error: {body}"
    );
    assert!(grown < 128, "peak RSS grew by {grown} MiB");
}

/// ferry started by `sh -c 'umask 000; exec ferry serve --config ...'`.
struct UmaskFerry {
    child: Child,
    log: PathBuf,
}

impl UmaskFerry {
    fn start(config: &Path, log: &Path) -> UmaskFerry {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = Command::new("sh")
            .args(["-c", "umask 000; exec \"$0\" \"$@\""])
            .arg(ferry_bin())
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("FERRY_ADMIN_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        let ferry = UmaskFerry {
            child,
            log: log.to_path_buf(),
        };
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("ferry did not start:\n{}", ferry.log());
            });
        ferry
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for UmaskFerry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `dir` (recursively) with its mode.
fn file_modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push((path.clone(), mode(&path)));
            out.extend(file_modes(&path));
        } else {
            out.push((path.clone(), mode(&path)));
        }
    }
    out
}

fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "data dir {}", data.display());
    assert_eq!(mode(&data.join("admin-password")), 0o600, "admin-password");
    let meta = data.join("meta");
    assert_eq!(mode(&meta), 0o700, "meta/");
    let loose: Vec<_> = file_modes(&meta)
        .into_iter()
        .filter(|(_, m)| m & 0o077 != 0)
        .map(|(p, m)| format!("{} {m:o}", p.display()))
        .collect();
    assert!(loose.is_empty(), "readable by others: {loose:?}");
}

/// Started with umask 000, ferry still keeps the data dir 0700 and the
/// metadata holding the upstream password 0600; a data dir a looser
/// ferry left behind is tightened at the next start, with a log line.
#[tokio::test]
async fn data_dir_and_secrets_stay_private_under_umask_000() {
    let (upstream, _) = upstream_with_busybox().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[cache]]\nbase_path = \"{CACHE}\"\n\
             upstream = {:?}\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            data.display().to_string(),
            upstream.url()
        ),
    )
    .unwrap();
    let log = dir.path().join("ferry.log");

    let ferry = UmaskFerry::start(&config, &log);
    assert_private(&data);
    drop(ferry);

    // What an older ferry under umask 000 would have left.
    set_mode(&data, 0o777);
    set_mode(&data.join("meta"), 0o755);
    set_mode(&data.join("meta/db"), 0o644);
    set_mode(&data.join("admin-password"), 0o644);
    let ferry = UmaskFerry::start(&config, &log);
    assert_private(&data);
    assert!(
        ferry.log().contains("tightened permissions"),
        "no log line about the tightening:\n{}",
        ferry.log()
    );
    drop(ferry);
}
