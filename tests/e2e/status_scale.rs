//! Issue 17: `status/`, the repository lists and the history stay fast with
//! 2,000 repositories and 5,000 tags (`FERRY_SCALE_REPOS`, `FERRY_SCALE_TAGS`
//! change the numbers), and their remembered walks follow every change.
//!
//! The repositories and tags are seeded through the store, as pulls make
//! them: one image pulled through ferry, then, with ferry stopped, 2,000
//! repositories tagged `v1` and one repository with 5,000 tags pointing at
//! its manifest (`BlockingMeta::point_tag`, the transaction a pull runs).
//! The times of each call (first and warm) are printed, never asserted:
//! `cargo test --test e2e -- status_scale:: --nocapture`, and with
//! `FERRY_BIN` pointing at another build to compare.

use std::time::Instant;

use ::ferry::store::{MetaStore, RepoRecord};
use serde_json::Value;

use crate::support::images::{self, Flavor};
use crate::support::pulp_api::{href_of, DISTRIBUTIONS, REPOSITORIES, STATUS};
use crate::support::*;

fn scale(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The cache's repository and tag counts as `status/` reports them.
fn counts(status: &Value) -> (u64, u64) {
    let cache = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["base_path"] == CACHE)
        .expect("the cache in status/");
    (
        cache["repositories"].as_u64().unwrap(),
        cache["tags"].as_u64().unwrap(),
    )
}

/// GETs `path` `times` times, printing how long each took.
async fn timed(api: &PulpApi, path: &str, times: usize) -> Value {
    let mut last = Value::Null;
    let mut took = Vec::new();
    for _ in 0..times {
        let start = Instant::now();
        last = api.ok(path).await;
        took.push(format!("{:.3}", start.elapsed().as_secs_f64()));
    }
    eprintln!("scale: GET {path}: {} s", took.join(", "));
    last
}

#[tokio::test]
async fn status_and_lists_with_thousands_of_repositories_follow_every_change() {
    let (repos, tags) = (
        scale("FERRY_SCALE_REPOS", 2000),
        scale("FERRY_SCALE_TAGS", 5000),
    );
    let (upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    ferry.stop();

    let seeding = Instant::now();
    let meta = MetaStore::open(&ferry.data_dir().join("meta")).unwrap();
    let db = meta.blocking();
    let pulled = format!("{CACHE}/{BUSYBOX}");
    let tag = db.tag(&pulled, "1.36").unwrap().expect("the pulled tag");
    let record = db.repo(&pulled).unwrap().expect("the pulled repository");
    let fresh = |name: &str, i: usize| RepoRecord {
        id: format!("00000000-0000-4000-8000-{i:012}"),
        upstream_name: name.to_string(),
        version: 0,
        ..record.clone()
    };
    for i in 0..repos {
        let name = format!("many/r{i:04}");
        db.point_tag(&format!("{CACHE}/{name}"), "v1", &tag, &fresh(&name, i))
            .unwrap();
    }
    let tagged = format!("{CACHE}/library/tags");
    for i in 0..tags {
        db.point_tag(
            &tagged,
            &format!("t{i:04}"),
            &tag,
            &fresh("library/tags", repos),
        )
        .unwrap();
    }
    db.flush().unwrap();
    drop(meta);
    eprintln!(
        "scale: seeded {repos} repositories and {tags} tags in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    ferry.start_again();
    let api = PulpApi::admin(&ferry);
    let status = timed(&api, STATUS, 3).await;
    let all = (repos as u64 + 2, repos as u64 + tags as u64 + 1);
    assert_eq!(counts(&status), all, "{status}");
    let page = timed(&api, &format!("{REPOSITORIES}?limit=20"), 3).await;
    assert_eq!(page["count"].as_u64(), Some(all.0), "{page}");
    timed(&api, &format!("{REPOSITORIES}?limit=20&offset=1000"), 3).await;
    timed(&api, DISTRIBUTIONS, 3).await;
    timed(&api, "/pulp/api/v3/status/history/?span=day", 3).await;

    // A repository removed: status/ counts it gone at once.
    let gone = api
        .repository(&format!("{CACHE}/many/r0000"))
        .await
        .unwrap();
    api.task(api.delete(&href_of(&gone)).await, "DELETE repository")
        .await;
    assert_eq!(counts(&api.ok(STATUS).await), (all.0 - 1, all.1 - 1));
    // A new image pulled: counted at once too, in status/ and the lists.
    let other = images::busybox(Flavor::Docker, "other");
    RegistryClient::new(&upstream.url())
        .push_image("library/other", "1", &other)
        .await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, "library/other", "1"), &other).await;
    assert_eq!(counts(&api.ok(STATUS).await), all);
    let page = api.ok(&format!("{REPOSITORIES}?limit=1")).await;
    assert_eq!(page["count"].as_u64(), Some(all.0), "{page}");
}
