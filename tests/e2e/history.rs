//! The dashboard's history (issue 17): `GET /pulp/api/v3/status/history/`
//! sums to what `/metrics` counts, keeps its points across a restart, shows
//! anonymous callers only what `browse` lets them see, and refuses a span it
//! does not know.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::inspect::{metrics, Metrics};
use crate::support::*;

const HISTORY: &str = "/pulp/api/v3/status/history/";
const CACHE_REQ: &str = "ferry_cache_requests_total";
const SERVED: &str = "ferry_served_bytes_total";
const FETCHED: &str = "ferry_upstream_fetched_bytes_total";

/// A private cache beside the public `docker-cache`, on the same upstream.
const PRIVATE: &str = "secret-cache";

/// The admin's password ferry generated at its first start.
fn admin_password(ferry: &Ferry) -> String {
    std::fs::read_to_string(ferry.data_dir().join("admin-password"))
        .unwrap()
        .trim()
        .to_string()
}

/// `/metrics` as the history's totals name it.
fn counted(m: &Metrics) -> [u64; 4] {
    [
        m.sum(CACHE_REQ, &[]),
        m.sum(CACHE_REQ, &[("result", "hit")]),
        m.sum(SERVED, &[]),
        m.sum(FETCHED, &[]),
    ]
    .map(|v| v as u64)
}

/// The history's totals, checked against the sum of its points.
fn totals(history: &Value) -> [u64; 4] {
    let fields = ["requests", "hits", "bytes_served", "bytes_upstream"];
    let points = history["points"].as_array().expect("points");
    for field in fields {
        let summed: u64 = points.iter().map(|p| p[field].as_u64().unwrap()).sum();
        assert_eq!(
            history["totals"][field].as_u64(),
            Some(summed),
            "totals.{field} is the sum of the points: {history}"
        );
    }
    fields.map(|f| history["totals"][f].as_u64().unwrap())
}

fn repositories(history: &Value, list: &str, field: &str) -> Vec<(String, u64)> {
    history["top_repositories"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r[field].as_u64().unwrap(),
            )
        })
        .collect()
}

fn cache_names(history: &Value) -> Vec<String> {
    history["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["base_path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn history_sums_to_metrics_and_survives_a_restart() {
    let (upstream, image) = upstream_with_busybox().await;
    let image_bytes =
        image.manifest.len() as u64 + image.blobs.iter().map(|b| b.data.len() as u64).sum::<u64>();
    let mut ferry = Ferry::start_opts(
        &[
            CacheSpec::new(CACHE, &upstream.url()),
            CacheSpec::new(PRIVATE, &upstream.url()).toml("private = true"),
        ],
        &FerryOptions {
            extra_toml: Some("history_step_secs = 1".into()),
            max_size: Some("1GiB".into()),
            ..Default::default()
        },
    );
    let password = admin_password(&ferry);
    let admin = PulpApi::as_user(&ferry, "admin", &password);

    // A fresh ferry: nothing yet.
    let fresh = admin.ok(HISTORY).await;
    assert_eq!(totals(&fresh), [0, 0, 0, 0], "{fresh}");
    assert_eq!(fresh["span"], "hour");
    assert_eq!(fresh["step_secs"], 1);

    // A cold pull, a warm one, and one through the private cache.
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    assert_skopeo_copy_matches(&reference, &image).await;
    assert_skopeo_copy_matches(&reference, &image).await;
    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(
        &image_ref(ferry.host(), &format!("{PRIVATE}/{BUSYBOX}"), "1.36"),
        dest.path(),
        Some(("admin", &password)),
    )
    .await
    .expect_ok("skopeo copy through the private cache");

    // At once, without waiting for a step: what /metrics counts.
    let metrics_now = counted(&metrics(&ferry.url()).await);
    let history = admin.ok(HISTORY).await;
    assert_eq!(
        totals(&history),
        metrics_now,
        "history vs /metrics: {history}"
    );
    let [requests, hits, served, fetched] = metrics_now;
    assert!(
        hits > 0 && hits < requests,
        "cold and warm: {metrics_now:?}"
    );
    assert!(served >= 3 * image_bytes && fetched >= image_bytes);
    assert_eq!(
        history["totals"]["bytes_saved"].as_u64(),
        Some(served - fetched),
        "{history}"
    );
    // The caches' own counts add up to the whole (only clients pulled).
    let per_cache: u64 = history["caches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["points"].as_array().unwrap())
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_cache, requests, "{history}");
    assert_eq!(cache_names(&history), [CACHE, PRIVATE]);
    let public_repo = format!("{CACHE}/{BUSYBOX}");
    let private_repo = format!("{PRIVATE}/{BUSYBOX}");
    assert_eq!(
        repositories(&history, "by_pulls", "pulls"),
        [(public_repo.clone(), 2), (private_repo.clone(), 1)],
        "{history}"
    );
    let by_size = repositories(&history, "by_size", "bytes");
    assert!(
        by_size.contains(&(public_repo.clone(), image_bytes)),
        "{by_size:?} holds {public_repo} at {image_bytes} bytes"
    );
    // The newest point shows the disk as /status/ does.
    let status = admin.status().await;
    let newest = history["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(newest["disk_used"], status["storage"]["cached_bytes"]);
    assert_eq!(history["max_size"], 1u64 << 30);
    // Day and week (hourly points) hold the same sums.
    for span in ["day", "week"] {
        let wide = admin.ok(&format!("{HISTORY}?span={span}")).await;
        assert_eq!(totals(&wide), metrics_now, "span={span}: {wide}");
        assert_eq!(wide["span"], span);
    }

    // Anonymous (browse is public by default): the public cache only.
    let anonymous = PulpApi::anonymous(&ferry).ok(HISTORY).await;
    assert_eq!(cache_names(&anonymous), [CACHE]);
    assert_eq!(
        repositories(&anonymous, "by_pulls", "pulls"),
        [(public_repo.clone(), 2)]
    );
    assert!(!anonymous.to_string().contains(PRIVATE), "{anonymous}");

    // A span it does not know: 400 with the field's message.
    let bad = admin.get(&format!("{HISTORY}?span=year")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(
        bad.json()["span"][0]
            .as_str()
            .is_some_and(|m| m.contains("hour, day or week")),
        "{}",
        bad.text
    );

    // After a restart the counters start again, the history goes on.
    ferry.stop();
    ferry.start_again();
    let admin = PulpApi::as_user(&ferry, "admin", &password);
    assert_eq!(counted(&metrics(&ferry.url()).await), [0, 0, 0, 0]);
    let after = admin.ok(HISTORY).await;
    assert_eq!(totals(&after), metrics_now, "after the restart: {after}");
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    assert_skopeo_copy_matches(&reference, &image).await;
    let since_restart = counted(&metrics(&ferry.url()).await);
    let later = admin.ok(&format!("{HISTORY}?span=day")).await;
    let expected: Vec<u64> = (0..4).map(|i| metrics_now[i] + since_restart[i]).collect();
    assert_eq!(totals(&later).to_vec(), expected, "{later}");
    assert_eq!(
        repositories(&later, "by_pulls", "pulls")[0],
        (public_repo, 3),
        "{later}"
    );
}

#[tokio::test]
async fn browse_admin_keeps_the_history_from_anonymous_callers() {
    let (upstream, _image) = upstream_with_busybox().await;
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &upstream.url())],
        &FerryOptions {
            browse: Some("admin".into()),
            ..Default::default()
        },
    );
    let answer = PulpApi::anonymous(&ferry).get(HISTORY).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(
        answer.json()["detail"],
        "Authentication credentials were not provided."
    );
    let admin = PulpApi::as_user(&ferry, "admin", &admin_password(&ferry));
    let history = admin.ok(&format!("{HISTORY}?span=week")).await;
    assert_eq!(history["step_secs"], 3600);
    assert_eq!(cache_names(&history), [CACHE]);
}
