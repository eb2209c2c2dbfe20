//! The seed workflow, verbatim (HTTPie + jq), then what pulls show in the
//! API: repositories, versions, tags, manifests, per-repository
//! distributions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images::{self, Flavor};
use crate::support::pulp_api::{
    tag_list, BLOBS, DISTRIBUTIONS, MANIFESTS, REMOTES, REPOSITORIES, REPO_DISTRIBUTIONS, TAGS,
};
use crate::support::*;

const SEED: &str = r#"REMOTE_HREF=$(http --ignore-stdin ${BASE_ADDR}/pulp/api/v3/remotes/container/pull-through/ name=docker-cache url=${UPSTREAM} | jq -r ".pulp_href")
http --ignore-stdin ${BASE_ADDR}/pulp/api/v3/distributions/container/pull-through/ remote=${REMOTE_HREF} name=docker-cache base_path=docker-cache
echo "REMOTE_HREF=${REMOTE_HREF}" >&2
"#;

#[tokio::test]
async fn seed_workflow_with_httpie_then_pulls_show_in_the_api() {
    let (upstream, v136) = upstream_with_busybox().await;
    // No caches in the config: everything served comes from the API. TTL 0
    // so a tag that moves upstream is seen on the next pull.
    let ferry = Ferry::start_with(&[], &["--tag-ttl-secs", "0"], &[]);
    let base = ferry.url();
    let httpie = Httpie::with_netrc("admin", ADMIN_PASSWORD);
    // A GET as the seed script's user makes it: HTTPie with the .netrc.
    let get = |path: &str| httpie.json_get(format!("{base}{path}"));

    let empty = get(REMOTES).await;
    assert_eq!(empty["count"], 0, "remotes before the seed: {empty}");
    let empty = get(DISTRIBUTIONS).await;
    assert_eq!(empty["count"], 0, "distributions before the seed: {empty}");

    let out = httpie
        .script(SEED, &[("BASE_ADDR", &base), ("UPSTREAM", &upstream.url())])
        .await
        .expect_ok("seed workflow");
    let remote_href = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("REMOTE_HREF="))
        .unwrap_or_else(|| panic!("no REMOTE_HREF in {}", out.stderr))
        .to_string();
    assert!(
        remote_href.starts_with(REMOTES) && remote_href.len() > REMOTES.len(),
        "REMOTE_HREF={remote_href:?}; stderr: {}",
        out.stderr
    );
    let reply: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("distribution create printed no JSON ({e}): {}", out.stdout));
    let task_href = reply["task"].as_str().unwrap_or_else(|| panic!("{reply}"));
    let task = get(task_href).await;
    assert_eq!(task["state"], "completed", "{task}");
    let dist_href = task["created_resources"][0].as_str().unwrap().to_string();
    let dist = get(&dist_href).await;
    assert_eq!(dist["name"], "docker-cache");
    assert_eq!(dist["base_path"], "docker-cache");
    assert_eq!(dist["remote"], remote_href);
    assert_eq!(dist["private"], false);
    let remote = get(&remote_href).await;
    assert_eq!(remote["name"], "docker-cache");
    assert_eq!(remote["url"], upstream.url());
    assert_eq!(remote["policy"], "on_demand");

    // Pull with podman and skopeo through the new distribution.
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    let podman = Podman::new();
    podman
        .assert_pulls(&reference, &v136.digest, "podman pull 1.36")
        .await;
    assert_skopeo_copy_matches(&reference, &v136).await;

    // Exactly one repository, holding tag 1.36 → the upstream digest.
    let repos = get(REPOSITORIES).await;
    assert_eq!(repos["count"], 1, "{repos}");
    let repo = &repos["results"][0];
    assert_eq!(repo["name"], "docker-cache/library/busybox", "{repo}");
    let repo_href = repo["pulp_href"].as_str().unwrap().to_string();
    let v1 = repo["latest_version_href"].as_str().unwrap().to_string();
    assert!(v1.starts_with(&format!("{repo_href}versions/")), "{v1}");
    let version = get(&v1).await;
    assert_eq!(version["number"], 1, "{version}");
    let present = &version["content_summary"]["present"];
    assert_eq!(present["container.tag"]["count"], 1, "{version}");
    assert_eq!(present["container.manifest"]["count"], 1, "{version}");
    assert_eq!(
        present["container.blob"]["count"], 2,
        "config + layer: {version}"
    );
    let versions = get(repo["versions_href"].as_str().unwrap()).await;
    assert_eq!(versions["count"], 1, "{versions}");
    assert_eq!(versions["results"][0]["number"], 1, "{versions}");

    let tags = httpie
        .json(&[
            "GET",
            &format!("{base}{TAGS}"),
            &format!("repository_version=={v1}"),
        ])
        .await;
    assert_eq!(tags["count"], 1, "{tags}");
    let tag = &tags["results"][0];
    assert_eq!(tag["name"], "1.36");
    assert_eq!(tag["digest"], v136.digest.as_str());
    assert_eq!(
        tag["tagged_manifest"],
        format!("{MANIFESTS}{}/", v136.digest)
    );
    let manifest = get(tag["tagged_manifest"].as_str().unwrap()).await;
    assert_eq!(manifest["digest"], v136.digest.as_str(), "{manifest}");
    assert_eq!(
        manifest["media_type"],
        images::DOCKER_MANIFEST,
        "{manifest}"
    );
    assert_eq!(manifest["architecture"], "amd64", "{manifest}");
    assert_eq!(manifest["os"], "linux", "{manifest}");
    assert_eq!(
        manifest["config_blob"],
        format!("{BLOBS}{}/", v136.config().digest)
    );
    assert_eq!(
        manifest["blobs"],
        json!([format!("{BLOBS}{}/", v136.layers()[0].digest)])
    );

    // The per-repository distribution, listed by the pull-through one.
    let repo_dists = get(REPO_DISTRIBUTIONS).await;
    assert_eq!(repo_dists["count"], 1, "{repo_dists}");
    let repo_dist = &repo_dists["results"][0];
    assert_eq!(
        repo_dist["registry_path"],
        format!("{}/docker-cache/library/busybox", ferry.host())
    );
    assert_eq!(repo_dist["repository"], repo_href.as_str());
    let dist = get(&dist_href).await;
    assert_eq!(
        dist["distributions"],
        json!([repo_dist["pulp_href"]]),
        "{dist}"
    );

    // 1.37 appears upstream and is pulled: same repository, next version.
    let v137 = images::busybox(Flavor::Docker, "1.37");
    let up = RegistryClient::new(&upstream.url());
    up.push_image(BUSYBOX, "1.37", &v137).await;
    let reference137 = via_ferry(&ferry, BUSYBOX, "1.37");
    podman
        .assert_pulls(&reference137, &v137.digest, "podman pull 1.37")
        .await;
    let repos = get(REPOSITORIES).await;
    assert_eq!(repos["count"], 1, "{repos}");
    assert_eq!(repos["results"][0]["pulp_href"], repo_href.as_str());
    let v2 = repos["results"][0]["latest_version_href"]
        .as_str()
        .unwrap()
        .to_string();
    let version = get(&v2).await;
    assert_eq!(version["number"], 2, "{version}");
    let api = PulpApi::admin(&ferry);
    assert_eq!(
        api.tags(&v2).await,
        tag_list(&[("1.36", &v136.digest), ("1.37", &v137.digest)])
    );

    // 1.37 moves upstream; with TTL 0 the next pull sees it.
    let moved = images::busybox(Flavor::Docker, "1.37-rebuilt");
    up.push_image(BUSYBOX, "1.37", &moved).await;
    assert_skopeo_copy_matches(&reference137, &moved).await;
    let repo = api
        .repository("docker-cache/library/busybox")
        .await
        .unwrap();
    let v3 = repo["latest_version_href"].as_str().unwrap().to_string();
    let version = api.ok(&v3).await;
    assert!(version["number"].as_u64().unwrap() > 2, "{version}");
    assert_eq!(
        version["content_summary"]["added"]["container.tag"]["count"], 1,
        "{version}"
    );
    assert_eq!(
        version["content_summary"]["removed"]["container.tag"]["count"], 1,
        "{version}"
    );
    assert_eq!(
        api.tags(&v3).await,
        tag_list(&[("1.36", &v136.digest), ("1.37", &moved.digest)])
    );
    // The old version is gone (only the latest is kept).
    assert_eq!(api.get(&v2).await.status, StatusCode::NOT_FOUND);
}
