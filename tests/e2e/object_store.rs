//! Issue 16, first step: ferry's blobs in an S3-compatible object store (a
//! real SeaweedFS of each test's own). What the object store adds to what
//! the whole suite checks in a `FERRY_E2E_STORAGE=s3` run: the blob lands
//! in the bucket under its digest; ranges are read from the bucket; the
//! store going away is a 503 in the OCI format and passes by itself; a
//! crash in the middle of an upload leaves nothing under the final key.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::images;
use crate::support::inspect::wait_until;
use crate::support::seaweed::Seaweed;
use crate::support::util::sha256_hex;
use crate::support::*;

const PREFIX: &str = "node-a/";
const MIB: usize = 1 << 20;

fn on_object_store(weed: &Seaweed, upstream: &str) -> Ferry {
    Ferry::start_opts(
        &[CacheSpec::new(CACHE, upstream)],
        &FerryOptions {
            storage_toml: Some(weed.storage_toml(PREFIX)),
            ..Default::default()
        },
    )
}

fn blob_url(ferry: &Ferry, repo: &str, digest: &str) -> String {
    format!("{}/v2/{CACHE}/{repo}/blobs/{digest}", ferry.url())
}

fn object_key(digest: &str) -> String {
    format!("{PREFIX}blobs/{}", digest.replacen(':', "/", 1))
}

#[tokio::test]
async fn a_pulled_blob_is_stored_in_the_bucket_and_ranges_are_read_from_it() {
    let weed = Seaweed::start();
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = on_object_store(&weed, &upstream.url());
    let layer = &image.layers()[0];
    let first = get_body(&blob_url(&ferry, BUSYBOX, &layer.digest), &[])
        .await
        .unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.digest, layer.digest);
    // In the bucket under its digest, byte for byte; nothing on local disk.
    let stored = weed.get(&object_key(&layer.digest)).expect("object");
    assert_eq!(format!("sha256:{}", sha256_hex(&stored)), layer.digest);
    assert!(!ferry.data_dir().join("blobs/sha256").exists());
    // Served from the bucket now: whole, one range, several ranges.
    let len = layer.data.len();
    let whole = get_body(&blob_url(&ferry, BUSYBOX, &layer.digest), &[])
        .await
        .unwrap();
    assert_eq!(
        (whole.status, whole.digest.as_str()),
        (StatusCode::OK, layer.digest.as_str())
    );
    let (a, b) = (10, len - 7);
    let range = format!("bytes={a}-{b}");
    let part = get_body(
        &blob_url(&ferry, BUSYBOX, &layer.digest),
        &[("range", &range)],
    )
    .await
    .unwrap();
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.digest, digest_of(&layer.data[a..=b]));
    assert_eq!(
        part.headers["content-range"].to_str().unwrap(),
        format!("bytes {a}-{b}/{len}")
    );
    let multi = http_client()
        .get(blob_url(&ferry, BUSYBOX, &layer.digest))
        .header("range", "bytes=0-3,20-29")
        .send()
        .await
        .unwrap();
    assert_eq!(multi.status(), StatusCode::PARTIAL_CONTENT);
    let body = multi.bytes().await.unwrap();
    let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(find(&layer.data[0..4]) && find(&layer.data[20..30]));
}

#[tokio::test]
async fn object_store_down_is_a_503_and_ferry_recovers_when_it_returns() {
    let weed = Seaweed::start();
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = on_object_store(&weed, &upstream.url());
    let layer = &image.layers()[0];
    let url = blob_url(&ferry, BUSYBOX, &layer.digest);
    assert_eq!(get_body(&url, &[]).await.unwrap().digest, layer.digest);

    weed.stop();
    let down = http_client().get(&url).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.headers()["retry-after"], "5");
    let body = down.bytes().await.unwrap();
    assert_eq!(error_code(&body), "UNAVAILABLE");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("object store"), "{text}");
    // The endpoint is the admin's to see, not an anonymous client's.
    assert!(!text.contains(&weed.endpoint()), "{text}");
    let ready = format!("{}/readyz", ferry.url());
    let not_ready = http_client().get(&ready).send().await.unwrap();
    assert_eq!(
        not_ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz with the object store down"
    );

    weed.restart();
    let back = get_body(&url, &[]).await.unwrap();
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.digest, layer.digest);
    let ready_again = http_client().get(&ready).send().await.unwrap();
    assert_eq!(ready_again.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_crash_mid_upload_leaves_no_object_and_the_restart_aborts_the_upload() {
    let weed = Seaweed::start();
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let big = images::large(96 * MIB);
    RegistryClient::new(&upstream.url())
        .push_image("example/big", "v1", &big)
        .await;
    let mut ferry = on_object_store(&weed, &upstream.url());
    let layer = big.layers()[0].clone();
    let url = blob_url(&ferry, "example/big", &layer.digest);
    let pull = tokio::spawn(async move { get_body(&url, &[]).await });
    // The upload has begun: freeze the object store so it cannot finish,
    // and kill ferry in the middle of it.
    wait_until(
        "ferry starts the multipart upload",
        Duration::from_secs(120),
        || ferry.log().contains("multipart upload started"),
    )
    .await;
    signal(weed.pid(), "STOP");
    ferry.kill();
    signal(weed.pid(), "CONT");
    let cut = pull.await.unwrap();
    assert!(cut.is_err() || !cut.unwrap().complete());
    assert!(
        weed.get(&object_key(&layer.digest)).is_none(),
        "object visible"
    );

    // The restart aborts what the journal recorded; the pull then stores it.
    ferry.restart();
    assert!(
        ferry
            .log()
            .contains("aborted an incomplete multipart upload"),
        "{}",
        ferry.log()
    );
    let again = get_body(&blob_url(&ferry, "example/big", &layer.digest), &[])
        .await
        .unwrap();
    assert_eq!(again.digest, layer.digest);
    let stored = weed.get(&object_key(&layer.digest)).expect("object");
    assert_eq!(format!("sha256:{}", sha256_hex(&stored)), layer.digest);
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

#[tokio::test]
async fn config_check_validates_storage_and_never_shows_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.toml");
    let check = |env: &[(&str, &str)]| {
        let out = Command::new(ferry_bin())
            .args(["config", "check"])
            .arg(&config)
            .env_remove("FERRY_S3_ACCESS_KEY_ID")
            .env_remove("FERRY_S3_SECRET_ACCESS_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    std::fs::write(&config, "[storage]\nkind = \"s3\"\n").unwrap();
    let (code, text) = check(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("needs a bucket"), "{text}");

    std::fs::write(
        &config,
        "[storage]\nkind = \"s3\"\nbucket = \"ferry\"\nendpoint = \"http://127.0.0.1:8333\"\n\
         access_key_id = \"AKIA-FROM-FILE\"\n",
    )
    .unwrap();
    let (code, text) = check(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("go together"), "{text}");
    // The secret from the environment completes it; neither is shown.
    let (code, text) = check(&[("FERRY_S3_SECRET_ACCESS_KEY", "env-secret-123")]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("kind = \"s3\""), "{text}");
    assert!(text.contains("access_key_id = \"<redacted>\""), "{text}");
    assert!(!text.contains("AKIA-FROM-FILE") && !text.contains("env-secret-123"));
}

/// An offline command given only `--data-dir` of an S3-backed ferry would
/// look at a local blob tree the server never reads: it is refused, naming
/// the recorded store and `--config`; with the server's config it works.
#[tokio::test]
async fn an_offline_command_without_the_object_store_config_is_refused() {
    let weed = Seaweed::start();
    let (upstream, image) = upstream_with_busybox().await;
    let mut ferry = on_object_store(&weed, &upstream.url());
    let layer = &image.layers()[0];
    let url = blob_url(&ferry, BUSYBOX, &layer.digest);
    assert_eq!(get_body(&url, &[]).await.unwrap().digest, layer.digest);
    ferry.stop();

    let bare = Command::new(crate::support::ferry::ferry_bin())
        .args(["verify", "--data-dir"])
        .arg(ferry.data_dir())
        .env_remove("FERRY_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert!(
        !bare.status.success(),
        "verify without the config: {stderr}"
    );
    assert!(
        stderr.contains("\"s3 ") && stderr.contains("\"local\"") && stderr.contains("--config"),
        "{stderr}"
    );

    let with_config = ferry.offline("verify").await;
    assert_eq!(with_config.code, Some(0), "{}", with_config.stderr);
    assert!(
        with_config.stdout.contains("; 0 damaged"),
        "{}",
        with_config.stdout
    );
}
