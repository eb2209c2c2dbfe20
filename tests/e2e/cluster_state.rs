//! Issue 16, shared management state: remotes and distributions made
//! through any member's API are served by every member (they live in the
//! bucket under `state/`), and a member that cannot reach the bucket
//! refuses API writes (503) and keeps serving what it read last.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::images::{self, Flavor};
use crate::support::pulp_api::{field_of, href_of, DISTRIBUTIONS, REMOTES};
use crate::support::seaweed::Seaweed;
use crate::support::*;

/// What the issue promises: a change on one member works on every member
/// within this.
const FOLLOW_LIMIT: Duration = Duration::from_secs(5);

/// The status of an anonymous `GET /v2/<repo>/manifests/<tag>` on `node`.
async fn manifest_status(node: &Ferry, repo: &str, tag: &str) -> StatusCode {
    http_client()
        .get(format!("{}/v2/{repo}/manifests/{tag}", node.url()))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Polls (every 100 ms, bounded by `limit`) until `node` answers the
/// manifest with `want`.
async fn until_manifest(node: &Ferry, repo: &str, tag: &str, want: StatusCode, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let got = manifest_status(node, repo, tag).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{repo}:{tag} on {} answered {got}, not {want}, within {limit:?}",
            node.url()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `node`'s API lists an object at `href`.
async fn until_listed(node: &Ferry, href: &str, limit: Duration) {
    let api = PulpApi::admin(node);
    let deadline = Instant::now() + limit;
    while api.get(href).await.status != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "{href} not on {} within {limit:?}",
            node.url()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_remote_and_distribution_made_on_one_member_are_served_changed_and_deleted_on_all() {
    let (first, image) = upstream_with_busybox().await;
    let second = Upstream::start(UpstreamAuth::None).await;
    let newer = images::busybox(Flavor::Docker, "1.37");
    RegistryClient::new(&second.url())
        .push_image(BUSYBOX, "1.37", &newer)
        .await;
    let cluster = TestCluster::start(3, &[], None);
    let [one, two, three] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];

    // Made on node 2, pulled through node 3 within the promise.
    let api2 = PulpApi::admin(two);
    let remote = api2.remote_href("shared", &first.url()).await;
    api2.create_distribution("shared", "shared", &remote, false)
        .await;
    let made = Instant::now();
    until_manifest(
        three,
        "shared/library/busybox",
        "1.36",
        StatusCode::OK,
        FOLLOW_LIMIT,
    )
    .await;
    // Reported, not asserted beyond the promise (no timing asserts).
    eprintln!(
        "cluster_state: served by node 3 {:?} after the create on node 2",
        made.elapsed()
    );
    assert_skopeo_copy_matches(
        &image_ref(three.host(), "shared/library/busybox", "1.36"),
        &image,
    )
    .await;

    // The same objects (same hrefs) on every member.
    until_listed(one, &remote, FOLLOW_LIMIT).await;
    let on_one = PulpApi::admin(one).list(DISTRIBUTIONS).await;
    assert_eq!(on_one.len(), 1, "{on_one:?}");
    assert_eq!(on_one[0]["base_path"], "shared");
    assert_eq!(on_one[0]["remote"], remote.as_str());

    // Changed on node 1 (another upstream): node 3 follows.
    let api1 = PulpApi::admin(one);
    api1.task(
        api1.patch(&remote, json!({"url": second.url()})).await,
        "PATCH remote",
    )
    .await;
    until_manifest(
        three,
        "shared/library/busybox",
        "1.37",
        StatusCode::OK,
        FOLLOW_LIMIT,
    )
    .await;
    // The manifest may already come through the member that owns the
    // repository (forwarding); node 3's own record follows within the limit.
    let api3 = PulpApi::admin(three);
    let deadline = Instant::now() + FOLLOW_LIMIT;
    loop {
        let url = api3.ok(&remote).await["url"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if url == second.url().trim_end_matches('/') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3's remote still names {url} after {FOLLOW_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_skopeo_copy_matches(
        &image_ref(three.host(), "shared/library/busybox", "1.37"),
        &newer,
    )
    .await;

    // Deleted on node 1: node 3 no longer serves it, nor lists it.
    let distribution = href_of(&on_one[0]);
    api1.task(api1.delete(&distribution).await, "DELETE distribution")
        .await;
    api1.task(api1.delete(&remote).await, "DELETE remote").await;
    until_manifest(
        three,
        "shared/library/busybox",
        "1.36",
        StatusCode::NOT_FOUND,
        FOLLOW_LIMIT,
    )
    .await;
    let api3 = PulpApi::admin(three);
    let deadline = Instant::now() + FOLLOW_LIMIT;
    while !api3.list(REMOTES).await.is_empty() {
        assert!(Instant::now() < deadline, "the remote stayed on node 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api3.list(DISTRIBUTIONS).await.is_empty());
}

#[tokio::test]
async fn without_the_bucket_api_writes_answer_503_and_the_last_definitions_keep_serving() {
    let (upstream, image) = upstream_with_busybox().await;
    let seaweed = Seaweed::start();
    let cluster = TestCluster::start_on(&seaweed, 2, &[], None);
    let [one, two] = [&cluster.nodes[0], &cluster.nodes[1]];
    let api1 = PulpApi::admin(one);
    let remote = api1.remote_href("shared", &upstream.url()).await;
    api1.create_distribution("shared", "shared", &remote, false)
        .await;
    until_manifest(
        two,
        "shared/library/busybox",
        "1.36",
        StatusCode::OK,
        FOLLOW_LIMIT,
    )
    .await;

    seaweed.stop();
    // Refused whole: a 503 with a JSON reason, and nothing created here.
    let refused = api1
        .post(REMOTES, json!({"name": "later", "url": upstream.url()}))
        .await;
    let body = refused.assert_detail(
        StatusCode::SERVICE_UNAVAILABLE,
        "POST remote without bucket",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("the cluster's shared state is unreachable"),
        "{body}"
    );
    assert_eq!(api1.list(REMOTES).await.len(), 1);

    // Node 2 notices, says so, and still serves the distribution it knows.
    let api2 = PulpApi::admin(two);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api2.status().await;
        if status["shared_state"]["reachable"] == false {
            assert!(status["shared_state"]["error"].is_string(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "node 2 never noticed: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served = api2.list(DISTRIBUTIONS).await;
    assert_eq!(field_of(&served, "base_path"), ["shared"]);
    assert_ne!(
        manifest_status(two, "shared/library/busybox", "1.36").await,
        StatusCode::NOT_FOUND,
        "node 2 dropped the distribution while the bucket was away"
    );

    // Back: writes work again and reach the other member.
    seaweed.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let later = loop {
        let a = api1
            .post(REMOTES, json!({"name": "later", "url": upstream.url()}))
            .await;
        if a.status == StatusCode::CREATED {
            break href_of(&a.json());
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
        assert!(
            Instant::now() < deadline,
            "writes never came back: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    until_listed(two, &later, FOLLOW_LIMIT).await;
    assert_skopeo_copy_matches(
        &image_ref(two.host(), "shared/library/busybox", "1.36"),
        &image,
    )
    .await;
}

/// The digests (`sha256:<hex>`) stored in the cluster's bucket.
fn stored_digests(cluster: &TestCluster) -> Vec<String> {
    crate::support::seaweed::shared()
        .list(&format!("{}blobs/sha256", cluster.prefix))
        .into_iter()
        .map(|(hex, _)| format!("sha256:{hex}"))
        .collect()
}

/// The garbage collections `node` completed.
async fn gc_runs(node: &Ferry) -> f64 {
    crate::support::inspect::metrics(&node.url())
        .await
        .sum("ferry_gc_runs_total", &[])
}

/// Waits until every member completed `rounds` more collections.
async fn gc_rounds(cluster: &TestCluster, rounds: f64) {
    let mut goals = Vec::new();
    for node in &cluster.nodes {
        goals.push(gc_runs(node).await + rounds);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (node, goal) in cluster.nodes.iter().zip(goals) {
        while gc_runs(node).await < goal {
            assert!(Instant::now() < deadline, "{} ran no GC", node.url());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn gc_on_a_member_keeps_what_another_references_and_collects_what_none_does() {
    let (upstream, busybox) = upstream_with_busybox().await;
    let other = images::multi_layer("cluster-gc");
    RegistryClient::new(&upstream.url())
        .push_image("library/other", "1", &other)
        .await;
    // Every member collects every second, with no grace.
    let cluster = TestCluster::start(
        3,
        &[CacheSpec::new(CACHE, &upstream.url())],
        Some("gc_interval_secs = 1\ngc_grace_secs = 0"),
    );
    let [one, two] = [&cluster.nodes[0], &cluster.nodes[1]];
    assert_skopeo_copy_matches(&via_ferry(one, BUSYBOX, "1.36"), &busybox).await;
    assert_skopeo_copy_matches(&via_ferry(two, "library/other", "1"), &other).await;
    let wanted: Vec<String> = [&busybox, &other]
        .iter()
        .flat_map(|i| {
            std::iter::once(i.digest.clone()).chain(i.blobs.iter().map(|b| b.digest.clone()))
        })
        .collect();

    // Several rounds on every member: each holds blobs the others do not
    // reference, and nothing referenced anywhere goes.
    gc_rounds(&cluster, 3.0).await;
    let stored = stored_digests(&cluster);
    for digest in &wanted {
        assert!(
            stored.contains(digest),
            "{digest} was collected: {stored:?}"
        );
    }
    let published =
        crate::support::seaweed::shared().list(&format!("{}state/live", cluster.prefix));
    assert_eq!(published.len(), 3, "{published:?}");

    // Deleted through one member, as a user would: its tombstone has every
    // member forget its records (each holds the cluster's tags) and leave
    // the objects, and the owners' collections remove what nobody
    // references any more.
    let name = format!("{CACHE}/library/other");
    until_tags(
        one,
        &name,
        &[("1".to_string(), other.digest.clone())],
        FOLLOW_LIMIT,
    )
    .await;
    let api = PulpApi::admin(one);
    let repo = api.repository(&name).await.expect("listed on member 1");
    api.task(api.delete(&href_of(&repo)).await, "DELETE repository")
        .await;
    let orphans: Vec<String> = std::iter::once(other.digest.clone())
        .chain(other.blobs.iter().map(|b| b.digest.clone()))
        .filter(|d| !busybox.blobs.iter().any(|b| &b.digest == d))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = stored_digests(&cluster);
        if orphans.iter().all(|d| !stored.contains(d)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unreferenced objects stayed: {orphans:?} in {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = stored_digests(&cluster);
    for blob in &busybox.blobs {
        assert!(stored.contains(&blob.digest), "{} went", blob.digest);
    }
    assert!(stored.contains(&busybox.digest));
    assert_skopeo_copy_matches(&via_ferry(one, BUSYBOX, "1.36"), &busybox).await;
}

#[tokio::test]
async fn a_member_shows_the_repositories_tags_and_bytes_pulled_through_every_member() {
    let (upstream, busybox) = upstream_with_busybox().await;
    let other = images::multi_layer("cluster-view");
    RegistryClient::new(&upstream.url())
        .push_image("library/other", "1", &other)
        .await;
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &upstream.url())], None);
    let [one, two, three] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    assert_skopeo_copy_matches(&via_ferry(one, BUSYBOX, "1.36"), &busybox).await;
    assert_skopeo_copy_matches(&via_ferry(two, "library/other", "1"), &other).await;
    let bytes: u64 = [&busybox, &other]
        .iter()
        .map(|i| i.manifest.len() as u64 + i.blobs.iter().map(|b| b.data.len() as u64).sum::<u64>())
        .sum();
    let objects = 2 + busybox.blobs.len() as u64 + other.blobs.len() as u64;

    // Member 3 pulled nothing; its status shows both pulls.
    let api = PulpApi::admin(three);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = api.status().await;
        let cache = api.upstream_status(CACHE).await;
        if cache["repositories"] == 2 && cache["tags"] == 2 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "member 3 never showed both: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["cluster"]["repositories"], 2, "{status}");
    assert_eq!(status["cluster"]["tags"], 2, "{status}");
    assert_eq!(status["cluster"]["partial"], json!([]), "{status}");
    assert_eq!(status["storage"]["cached_objects"], objects, "{status}");
    assert_eq!(status["storage"]["cached_bytes"], bytes, "{status}");
    // Member addresses are the admin's to see.
    assert!(PulpApi::anonymous(three)
        .status()
        .await
        .get("cluster")
        .is_none());
}

#[tokio::test]
async fn a_member_started_empty_serves_the_shared_definitions_and_its_offline_gc_deletes_nothing_shared(
) {
    let (upstream, image) = upstream_with_busybox().await;
    let mut cluster = TestCluster::start(3, &[], None);
    let api = PulpApi::admin(&cluster.nodes[0]);
    let remote = api.remote_href("shared", &upstream.url()).await;
    api.create_distribution("shared", "shared", &remote, false)
        .await;
    let first = &cluster.nodes[0];
    assert_skopeo_copy_matches(
        &image_ref(first.host(), "shared/library/busybox", "1.36"),
        &image,
    )
    .await;
    let before = stored_digests(&cluster);
    assert!(!before.is_empty());

    // `ferry gc` on a stopped member: its temp files only, and why.
    cluster.nodes[2].stop();
    let gc = cluster.nodes[2].offline("gc").await;
    assert_eq!(gc.code, Some(0), "{}", gc.stderr);
    assert!(
        gc.stdout.contains("belongs to a cluster member"),
        "{}",
        gc.stdout
    );
    let after = stored_digests(&cluster);
    assert_eq!(
        after, before,
        "an offline member's gc deleted shared objects"
    );

    // Its data directory emptied: back, it serves the distribution at once
    // (the shared definitions are read before it listens) and the content.
    let three = &mut cluster.nodes[2];
    std::fs::remove_dir_all(three.data_dir()).unwrap();
    std::fs::create_dir_all(three.data_dir()).unwrap();
    three.start_again();
    let three = &cluster.nodes[2];
    assert_eq!(
        manifest_status(three, "shared/library/busybox", "1.36").await,
        StatusCode::OK
    );
    assert_skopeo_copy_matches(
        &image_ref(three.host(), "shared/library/busybox", "1.36"),
        &image,
    )
    .await;
    assert_eq!(PulpApi::admin(three).ok(&remote).await["name"], "shared");
}

/// Polls (bounded by `limit`) until `node`'s API lists `repository` with
/// exactly `want` as its (tag, digest) pairs.
async fn until_tags(node: &Ferry, repository: &str, want: &[(String, String)], limit: Duration) {
    let api = PulpApi::admin(node);
    let deadline = Instant::now() + limit;
    loop {
        let got = match api.repository(repository).await {
            Some(repo) => match repo["latest_version_href"].as_str() {
                Some(version) => api.tags(version).await,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} listed {repository} with {got:?}, not {want:?}, within {limit:?}",
            node.url()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls (bounded by `limit`) until `node`'s API no longer lists `repository`.
async fn until_unlisted(node: &Ferry, repository: &str, limit: Duration) {
    let api = PulpApi::admin(node);
    let deadline = Instant::now() + limit;
    while api.repository(repository).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "{repository} still listed on {} after {limit:?}",
            node.url()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `node` read the shared state `rounds` more times
/// (`status/` `shared_state.last_read`, by the second): each round also
/// applies tombstones and adopts.
async fn follow_rounds(node: &Ferry, rounds: usize) {
    let api = PulpApi::admin(node);
    let read = |status: serde_json::Value| status["shared_state"]["last_read"].clone();
    let mut last = read(api.status().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..rounds {
        loop {
            let now = read(api.status().await);
            if now != last {
                last = now;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} stopped following",
                node.url()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn every_member_lists_and_serves_the_tags_pulled_through_the_others() {
    let (mut upstream, busybox) = upstream_with_busybox().await;
    let mut cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &upstream.url())], None);
    // A repository the first member is responsible for, pulled through it,
    // and another pulled through the second member.
    let mine = (0..200)
        .map(|i| format!("adopt/app{i}"))
        .find(|r| cluster.owner(&format!("{CACHE}/{r}")) == 0)
        .expect("some repository lands on the first member");
    let app = images::multi_layer("cluster-adopt");
    let client = RegistryClient::new(&upstream.url());
    client.push_image(&mine, "1", &app).await;
    assert_skopeo_copy_matches(&via_ferry(&cluster.nodes[0], &mine, "1"), &app).await;
    assert_skopeo_copy_matches(&via_ferry(&cluster.nodes[1], BUSYBOX, "1.36"), &busybox).await;

    // The third member pulled nothing: its API lists both, with digests.
    let three = &cluster.nodes[2];
    let app_tags = vec![("1".to_string(), app.digest.clone())];
    let busybox_tags = vec![("1.36".to_string(), busybox.digest.clone())];
    until_tags(three, &format!("{CACHE}/{mine}"), &app_tags, FOLLOW_LIMIT).await;
    until_tags(
        three,
        &format!("{CACHE}/{BUSYBOX}"),
        &busybox_tags,
        FOLLOW_LIMIT,
    )
    .await;

    // With the upstream gone and the repository's owner killed, the third
    // member still serves the tag, from the shared bucket.
    upstream.stop();
    cluster.nodes[0].kill();
    let three = &cluster.nodes[2];
    assert_skopeo_copy_matches(&via_ferry(three, &mine, "1"), &app).await;
    assert_skopeo_copy_matches(&via_ferry(three, BUSYBOX, "1.36"), &busybox).await;
}

#[tokio::test]
async fn a_repository_deleted_through_one_member_is_gone_from_all_and_not_adopted_again() {
    let (_upstream, busybox) = upstream_with_busybox().await;
    let cluster = TestCluster::start(3, &[CacheSpec::new(CACHE, &_upstream.url())], None);
    let [one, two, three] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    assert_skopeo_copy_matches(&via_ferry(two, BUSYBOX, "1.36"), &busybox).await;
    let name = format!("{CACHE}/{BUSYBOX}");
    let tags = vec![("1.36".to_string(), busybox.digest.clone())];
    for node in [one, three] {
        until_tags(node, &name, &tags, FOLLOW_LIMIT).await;
    }

    // Deleted through the first member only.
    let api1 = PulpApi::admin(one);
    let repo = api1.repository(&name).await.expect("listed on member 1");
    api1.task(api1.delete(&href_of(&repo)).await, "DELETE repository")
        .await;
    for node in [one, two, three] {
        until_unlisted(node, &name, FOLLOW_LIMIT).await;
    }
    // Two more follow rounds on every member later, still gone everywhere.
    for node in [one, two, three] {
        follow_rounds(node, 2).await;
    }
    for node in [one, two, three] {
        assert!(
            PulpApi::admin(node).repository(&name).await.is_none(),
            "{name} came back on {}",
            node.url()
        );
    }
    // A pull after the delete brings it back, through any member.
    assert_skopeo_copy_matches(&via_ferry(three, BUSYBOX, "1.36"), &busybox).await;
    until_tags(one, &name, &tags, FOLLOW_LIMIT).await;

    // A tag removed through the third member leaves the first too.
    let api3 = PulpApi::admin(three);
    let repo = api3.repository(&name).await.expect("listed on member 3");
    let repo_id = href_of(&repo)
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let tag_href = format!("/pulp/api/v3/content/container/tags/{repo_id}:1.36/");
    let removed = api3
        .post(
            &format!("{}remove/", href_of(&repo)),
            json!({ "content_units": [tag_href] }),
        )
        .await;
    api3.task(removed, "remove the tag").await;
    until_tags(one, &name, &[], FOLLOW_LIMIT).await;
}
