//! Issue 15, pins: a pinned tag survives a quota squeeze that evicts the
//! cache's other image, the pin survives a restart, status and metrics
//! report the pinned bytes, and a pin that cannot fit within max_size is
//! refused with nothing evicted. Against Debian's docker-registry, pulled
//! with skopeo, pinned through the CLI and the API.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::images::Image;
use crate::support::inspect::{has_blob, metrics};
use crate::support::pulp_api::{href_of, PulpApi};
use crate::support::util::{run_bounded, CmdOutput};
use crate::support::*;

const CACHE: &str = "keep";

fn layer_of(image: &Image) -> &str {
    &image.layers()[0].digest
}

/// `ferry ARGS...` as a management client of the running `ferry`.
async fn ferry_cli(ferry: &Ferry, args: &[&str]) -> CmdOutput {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(args)
        .current_dir(cwd.path())
        .env("FERRY_URL", ferry.url())
        .env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn");
    for var in ["FERRY_CONFIG", "FERRY_CACHE", "FERRY_DATA_DIR"] {
        cmd.env_remove(var);
    }
    run_bounded(cmd, std::time::Duration::from_secs(60)).await
}

#[tokio::test]
async fn a_pinned_tag_survives_a_quota_squeeze_and_a_restart_and_a_pin_that_cannot_fit_is_refused()
{
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let [a, b, c] = crate::quota_per_cache::three_images(&upstream).await;
    // Room for two of the three images.
    let mut ferry = Ferry::start_with(
        &[CacheSpec::new(CACHE, &upstream.url()).toml("max_size = \"20MiB\"")],
        &[],
        &[],
    );
    let data = ferry.data_dir();
    let through = |repo: &str| image_ref(ferry.host(), &format!("{CACHE}/{repo}"), "v1");
    assert_skopeo_copy_matches(&through("example/a"), &a).await;
    assert_skopeo_copy_matches(&through("example/b"), &b).await;

    // a is the least recently pulled: pinned, it must stay.
    let out = ferry_cli(&ferry, &["pin", "tag", "keep/example/a:v1"])
        .await
        .expect_ok("ferry pin tag");
    assert!(
        out.stdout.contains("pinned tag keep/example/a:v1"),
        "{}",
        out.stdout
    );
    // kill -9: the pin was durable before the CLI was answered.
    ferry.restart();

    let api = PulpApi::admin(&ferry);
    let repo_a = api
        .repository("keep/example/a")
        .await
        .expect("repository a");
    let repo_id = href_of(&repo_a)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let tag_href = format!("/pulp/api/v3/content/container/tags/{repo_id}:v1/");
    assert_eq!(
        api.ok(&tag_href).await["pinned"],
        json!(true),
        "after a restart"
    );

    // c does not fit beside a and b: b goes, pinned a stays.
    let through = |repo: &str| image_ref(ferry.host(), &format!("{CACHE}/{repo}"), "v1");
    assert_skopeo_copy_matches(&through("example/c"), &c).await;
    for blob in a.all_blobs().into_iter().chain(c.all_blobs()) {
        assert!(has_blob(&data, &blob.digest), "{} not stored", blob.digest);
    }
    assert!(!has_blob(&data, layer_of(&b)), "b was not evicted");
    let log = ferry.log();
    let evicted: Vec<&str> = log.lines().filter(|l| l.contains("evicted")).collect();
    assert!(
        evicted.iter().all(|l| !l.contains("example/a")),
        "the pinned image was evicted: {evicted:#?}"
    );

    // Status and metrics report the pinned bytes: a's manifest, config, layer.
    let a_bytes: u64 = a.all_blobs().iter().map(|b| b.data.len() as u64).sum();
    let cache = PulpApi::anonymous(&ferry).upstream_status(CACHE).await;
    let pinned = cache["pinned_bytes"].as_u64().unwrap();
    assert!(
        pinned >= a_bytes && pinned < a_bytes + 64 * 1024,
        "pinned_bytes {pinned}, a holds {a_bytes} in blobs: {cache}"
    );
    assert_eq!(api.status().await["storage"]["pinned_bytes"], json!(pinned));
    let m = metrics(&ferry.url()).await;
    assert_eq!(
        m.sum("ferry_pinned_bytes", &[("cache", CACHE)]),
        pinned as f64,
        "{}",
        m.text
    );

    // The admin lowers the cache's max_size below what pinning c too would
    // need: the pin is refused, and nothing is evicted.
    let config = data.parent().unwrap().join("ferry.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"20MiB\"", "\"12MiB\"")).unwrap();
    // kill -9 right after the pull of c: what it stored is counted after it.
    ferry.restart();
    let api = PulpApi::admin(&ferry);
    let cache = PulpApi::anonymous(&ferry).upstream_status(CACHE).await;
    assert_eq!(cache["max_size"], json!(12 << 20), "{cache}");
    let repo_c = api
        .repository("keep/example/c")
        .await
        .expect("repository c");
    let refused = api
        .post(&format!("{}pin/", href_of(&repo_c)), json!({}))
        .await
        .assert_detail(StatusCode::BAD_REQUEST, "pinning c beyond max_size");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("cannot pin") && detail.contains("max_size") && detail.contains(CACHE),
        "{detail}"
    );
    for blob in a.all_blobs().into_iter().chain(c.all_blobs()) {
        assert!(
            has_blob(&data, &blob.digest),
            "{} left the disk",
            blob.digest
        );
    }

    // Unpinned through the CLI, a is evictable again.
    let out = ferry_cli(&ferry, &["unpin", "tag", "keep/example/a:v1"])
        .await
        .expect_ok("ferry unpin tag");
    assert!(out.stdout.contains("unpinned tag"), "{}", out.stdout);
    assert_eq!(api.ok(&tag_href).await["pinned"], json!(false));
    let cache = PulpApi::anonymous(&ferry).upstream_status(CACHE).await;
    assert_eq!(cache["pinned_bytes"], json!(0), "{cache}");

    // Only the admin may pin.
    let pin_a = format!("{}pin/", href_of(&repo_a));
    let anonymous = PulpApi::anonymous(&ferry).post(&pin_a, json!({})).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.text
    );

    // The repository fits on its own: pinned through the API.
    let pinned = api
        .post(&pin_a, json!({}))
        .await
        .success_json("pinning repository a");
    assert_eq!(pinned["pinned"], json!(true), "{pinned}");
    assert_eq!(pinned["kind"], json!("repository"), "{pinned}");
    assert_eq!(
        pinned["cache_pinned_bytes"],
        cache_pinned_bytes(&ferry).await
    );
    let repo_a = api.repository("keep/example/a").await.unwrap();
    assert_eq!(repo_a["pinned"], json!(true), "{repo_a}");
    assert_eq!(api.ok(&tag_href).await["pinned"], json!(true));
    let repo_c = api.repository("keep/example/c").await.unwrap();
    assert_eq!(repo_c["pinned"], json!(false), "{repo_c}");
}

/// The cache's pinned bytes as status reports them.
async fn cache_pinned_bytes(ferry: &Ferry) -> serde_json::Value {
    PulpApi::anonymous(ferry).upstream_status(CACHE).await["pinned_bytes"].clone()
}
