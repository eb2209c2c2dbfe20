//! The Pulp-compatible management API, as its users drive it: HTTPie + jq
//! scripts, raw HTTP, the `ferry remote|distribution|repository` CLI, and
//! podman/skopeo pulling through what those create. Assertions are what a
//! user checks: status codes, bodies, digests, bytes on disk.

use std::path::Path;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::images::{self, Flavor};
use crate::support::util::{run_bounded, CmdOutput};
use crate::support::*;

const REMOTES: &str = "/pulp/api/v3/remotes/container/pull-through/";
const DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/pull-through/";
const REPOSITORIES: &str = "/pulp/api/v3/repositories/container/container/";
const REPO_DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/container/";
const TAGS: &str = "/pulp/api/v3/content/container/tags/";
const TASKS: &str = "/pulp/api/v3/tasks/";
const NO_SUCH_ID: &str = "00000000-0000-4000-8000-000000000000";

// ---------------------------------------------------------------------------
// A small client for the management API (reqwest, HTTP Basic).

struct Api {
    base: String,
    http: reqwest::Client,
    creds: Option<(String, String)>,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// As the admin, with the password `Ferry::start_with` sets.
    fn admin(ferry: &Ferry) -> Api {
        Api::as_user(ferry, "admin", ADMIN_PASSWORD)
    }

    fn as_user(ferry: &Ferry, user: &str, password: &str) -> Api {
        Api {
            base: ferry.url(),
            http: http_client(),
            creds: Some((user.into(), password.into())),
        }
    }

    /// As `as_user`, connecting from `source` (a loopback address): wrong
    /// passwords are throttled per client address.
    fn as_user_from(ferry: &Ferry, user: &str, password: &str, source: [u8; 4]) -> Api {
        Api {
            base: ferry.url(),
            http: reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(source))
                .build()
                .unwrap(),
            creds: Some((user.into(), password.into())),
        }
    }

    fn anonymous(ferry: &Ferry) -> Api {
        Api {
            base: ferry.url(),
            http: http_client(),
            creds: None,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut rb = self.http.request(method.clone(), &url);
        if let Some((u, p)) = &self.creds {
            rb = rb.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// GET that must answer 200 with JSON.
    async fn ok(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.text);
        a.json()
    }

    /// `results` of a list (asserting the page holds all of them).
    async fn list(&self, path: &str) -> Vec<Value> {
        let page = self.ok(path).await;
        let results = page["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            page["count"].as_u64(),
            Some(results.len() as u64),
            "GET {path}: {page}"
        );
        results
    }

    /// The 202 `{"task": href}` answer of an asynchronous call, followed:
    /// returns the (completed) task.
    async fn task(&self, answer: Answer, what: &str) -> Value {
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "{what}: {}",
            answer.text
        );
        let body = answer.json();
        let href = body["task"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no task in {body}"));
        assert!(href.starts_with(TASKS), "{what}: task href {href}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{what}: {body}");
        let task = self.ok(href).await;
        assert_eq!(task["state"], "completed", "{what}: {task}");
        assert_eq!(task["pulp_href"], href, "{what}: {task}");
        task
    }

    async fn create_remote(&self, body: Value) -> Value {
        let a = self.post(REMOTES, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "create remote {body}: {}",
            a.text
        );
        a.json()
    }

    /// Creates a distribution; returns its href (from the task).
    async fn create_distribution(
        &self,
        name: &str,
        base_path: &str,
        remote: &str,
        private: bool,
    ) -> String {
        let a = self
            .post(
                DISTRIBUTIONS,
                json!({"name": name, "base_path": base_path, "remote": remote, "private": private}),
            )
            .await;
        let task = self.task(a, &format!("create distribution {name}")).await;
        let created = task["created_resources"].as_array().unwrap();
        assert_eq!(created.len(), 1, "{task}");
        let href = created[0].as_str().unwrap().to_string();
        assert!(href.starts_with(DISTRIBUTIONS), "{href}");
        href
    }

    /// The local repository named `name`, if any.
    async fn repository(&self, name: &str) -> Option<Value> {
        let mut found = self
            .list(&format!("{REPOSITORIES}?name={}", urlencode(name)))
            .await;
        assert!(found.len() <= 1, "two repositories named {name}");
        found.pop()
    }

    /// (tag, digest) at a repository version, sorted by tag.
    async fn tags(&self, version_href: &str) -> Vec<(String, String)> {
        let mut tags: Vec<(String, String)> = self
            .list(&format!(
                "{TAGS}?repository_version={}",
                urlencode(version_href)
            ))
            .await
            .iter()
            .map(|t| {
                let digest = t["digest"].as_str().unwrap().to_string();
                assert_eq!(
                    t["tagged_manifest"].as_str().unwrap(),
                    format!("/pulp/api/v3/content/container/manifests/{digest}/"),
                    "{t}"
                );
                (t["name"].as_str().unwrap().to_string(), digest)
            })
            .collect();
        tags.sort();
        tags
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn tag_list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect()
}

/// Total bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// An anonymous manifest GET through ferry (no challenge answered).
async fn raw_manifest_get(
    ferry: &Ferry,
    repo: &str,
    reference: &str,
) -> (StatusCode, HeaderMap, bytes::Bytes) {
    let resp = http_client()
        .get(format!("{}/v2/{repo}/manifests/{reference}", ferry.url()))
        .header("accept", registry_client::ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap())
}

/// Asserts a manifest GET through ferry answers 404 NAME_UNKNOWN.
async fn assert_name_unknown(ferry: &Ferry, repo: &str, reference: &str) {
    let got = RegistryClient::new(&ferry.url())
        .get_manifest(repo, reference)
        .await;
    assert_eq!(
        got.status,
        StatusCode::NOT_FOUND,
        "{repo}:{reference}: {}",
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(error_code(&got.body), "NAME_UNKNOWN", "{repo}:{reference}");
}

/// `ferry ARGS...` as a management client of the running `ferry`
/// (FERRY_URL and FERRY_ADMIN_PASSWORD in the environment).
async fn ferry_cli(ferry: &Ferry, password: &str, args: &[&str]) -> CmdOutput {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(args)
        .current_dir(cwd.path())
        .env("FERRY_URL", ferry.url())
        .env("FERRY_ADMIN_PASSWORD", password)
        .env("RUST_LOG", "warn");
    for var in [
        "FERRY_CONFIG",
        "FERRY_CACHE",
        "FERRY_LISTEN",
        "FERRY_DATA_DIR",
        "FERRY_TLS_LISTEN",
        "FERRY_TLS_CERT",
        "FERRY_TLS_KEY",
    ] {
        cmd.env_remove(var);
    }
    run_bounded(cmd, std::time::Duration::from_secs(60)).await
}

fn lines(out: &CmdOutput) -> Vec<String> {
    out.stdout.lines().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// 1. The seed workflow, verbatim, then what pulls show in the API.

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

    let empty = httpie.json(&["GET", &format!("{base}{REMOTES}")]).await;
    assert_eq!(empty["count"], 0, "remotes before the seed: {empty}");
    let empty = httpie
        .json(&["GET", &format!("{base}{DISTRIBUTIONS}")])
        .await;
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
    let task = httpie.json(&["GET", &format!("{base}{task_href}")]).await;
    assert_eq!(task["state"], "completed", "{task}");
    let dist_href = task["created_resources"][0].as_str().unwrap().to_string();
    let dist = httpie.json(&["GET", &format!("{base}{dist_href}")]).await;
    assert_eq!(dist["name"], "docker-cache");
    assert_eq!(dist["base_path"], "docker-cache");
    assert_eq!(dist["remote"], remote_href);
    assert_eq!(dist["private"], false);
    let remote = httpie.json(&["GET", &format!("{base}{remote_href}")]).await;
    assert_eq!(remote["name"], "docker-cache");
    assert_eq!(remote["url"], upstream.url());
    assert_eq!(remote["policy"], "on_demand");

    // Pull with podman and skopeo through the new distribution.
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    let podman = Podman::new();
    podman
        .pull(&reference, None, None)
        .await
        .expect_ok("podman pull 1.36");
    let (_, digest) = podman.image_id_and_digest(&reference).await;
    assert_eq!(digest, v136.digest, "podman's digest of 1.36");
    assert_skopeo_copy_matches(&reference, &v136).await;

    // Exactly one repository, holding tag 1.36 → the upstream digest.
    let repos = httpie
        .json(&["GET", &format!("{base}{REPOSITORIES}")])
        .await;
    assert_eq!(repos["count"], 1, "{repos}");
    let repo = &repos["results"][0];
    assert_eq!(repo["name"], "docker-cache/library/busybox", "{repo}");
    let repo_href = repo["pulp_href"].as_str().unwrap().to_string();
    let v1 = repo["latest_version_href"].as_str().unwrap().to_string();
    assert!(v1.starts_with(&format!("{repo_href}versions/")), "{v1}");
    let version = httpie.json(&["GET", &format!("{base}{v1}")]).await;
    assert_eq!(version["number"], 1, "{version}");
    let present = &version["content_summary"]["present"];
    assert_eq!(present["container.tag"]["count"], 1, "{version}");
    assert_eq!(present["container.manifest"]["count"], 1, "{version}");
    assert_eq!(
        present["container.blob"]["count"], 2,
        "config + layer: {version}"
    );
    let versions = httpie
        .json(&[
            "GET",
            &format!("{base}{}", repo["versions_href"].as_str().unwrap()),
        ])
        .await;
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
        format!("/pulp/api/v3/content/container/manifests/{}/", v136.digest)
    );
    let manifest = httpie
        .json(&[
            "GET",
            &format!("{base}{}", tag["tagged_manifest"].as_str().unwrap()),
        ])
        .await;
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
        format!(
            "/pulp/api/v3/content/container/blobs/{}/",
            v136.config().digest
        )
    );
    assert_eq!(
        manifest["blobs"],
        json!([format!(
            "/pulp/api/v3/content/container/blobs/{}/",
            v136.layers()[0].digest
        )])
    );

    // The per-repository distribution, listed by the pull-through one.
    let repo_dists = httpie
        .json(&["GET", &format!("{base}{REPO_DISTRIBUTIONS}")])
        .await;
    assert_eq!(repo_dists["count"], 1, "{repo_dists}");
    let repo_dist = &repo_dists["results"][0];
    assert_eq!(
        repo_dist["registry_path"],
        format!("{}/docker-cache/library/busybox", ferry.host())
    );
    assert_eq!(repo_dist["repository"], repo_href.as_str());
    let dist = httpie.json(&["GET", &format!("{base}{dist_href}")]).await;
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
        .pull(&reference137, None, None)
        .await
        .expect_ok("podman pull 1.37");
    assert_eq!(
        podman.image_id_and_digest(&reference137).await.1,
        v137.digest
    );
    let repos = httpie
        .json(&["GET", &format!("{base}{REPOSITORIES}")])
        .await;
    assert_eq!(repos["count"], 1, "{repos}");
    assert_eq!(repos["results"][0]["pulp_href"], repo_href.as_str());
    let v2 = repos["results"][0]["latest_version_href"]
        .as_str()
        .unwrap()
        .to_string();
    let version = httpie.json(&["GET", &format!("{base}{v2}")]).await;
    assert_eq!(version["number"], 2, "{version}");
    let api = Api::admin(&ferry);
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

// ---------------------------------------------------------------------------
// 2. Validation errors and authentication, with exact bodies.

#[tokio::test]
async fn validation_errors_and_authentication_answer_like_pulp() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = Api::admin(&ferry);
    let up = upstream.url();

    // Remotes.
    let cases: Vec<(Value, Value)> = vec![
        (
            json!({"name": "no-url"}),
            json!({"url": ["This field is required."]}),
        ),
        (
            json!({"url": up}),
            json!({"name": ["This field is required."]}),
        ),
        (
            json!({"name": "bad-url", "url": "not a url"}),
            json!({"url": ["Enter a valid URL."]}),
        ),
        (
            json!({"name": "ftp-url", "url": "ftp://127.0.0.1/"}),
            json!({"url": ["Enter a valid URL."]}),
        ),
    ];
    for (body, expected) in &cases {
        let a = api.post(REMOTES, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "POST remote {body}: {}",
            a.text
        );
        assert_eq!(a.json(), *expected, "POST remote {body}");
    }
    let remote = api.create_remote(json!({"name": "up", "url": up})).await;
    let remote_href = remote["pulp_href"].as_str().unwrap().to_string();
    let a = api.post(REMOTES, json!({"name": "up", "url": up})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.json(), json!({"name": ["This field must be unique."]}));
    for field in ["includes", "excludes"] {
        for pattern in ["library/[abc]", "Library/*", ""] {
            let body = json!({"name": "wild", "url": up, field: [pattern]});
            let a = api.post(REMOTES, body.clone()).await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
            let v = a.json();
            let messages = v[field].as_array().unwrap_or_else(|| panic!("{body}: {v}"));
            assert_eq!(messages.len(), 1, "{v}");
            assert!(messages[0].is_string(), "{v}");
            assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        }
    }
    // PATCH validates too, and a rejected PATCH changes nothing.
    let a = api.patch(&remote_href, json!({"url": "nope"})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.json(), json!({"url": ["Enter a valid URL."]}));
    let a = api.put(&remote_href, json!({"url": up})).await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "PUT without name: {}",
        a.text
    );
    assert_eq!(a.json(), json!({"name": ["This field is required."]}));
    assert_eq!(api.ok(&remote_href).await["url"], up.as_str());
    let remotes = api.list(REMOTES).await;
    assert_eq!(
        remotes.len(),
        1,
        "rejected creates left remotes behind: {remotes:?}"
    );

    // Distributions.
    let unknown_remote = format!("{REMOTES}{NO_SUCH_ID}/");
    let a = api
        .post(
            DISTRIBUTIONS,
            json!({"name": "d", "base_path": "d", "remote": unknown_remote}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(
        a.json(),
        json!({"remote": ["Invalid hyperlink - Object does not exist."]})
    );
    let a = api.post(DISTRIBUTIONS, json!({})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(
        a.json(),
        json!({
            "name": ["This field is required."],
            "base_path": ["This field is required."],
            "remote": ["This field is required."]
        })
    );
    api.create_distribution("cache-a", "cache-a", &remote_href, false)
        .await;
    api.create_distribution("cache-b", "team/cache-b", &remote_href, false)
        .await;
    let overlap = json!({"base_path": {"base_path": "Overlaps with an existing distribution."}});
    for base_path in ["cache-a", "cache-a/sub", "team", "team/cache-b/x"] {
        let a = api
            .post(
                DISTRIBUTIONS,
                json!({"name": format!("new-{base_path}"), "base_path": base_path, "remote": remote_href}),
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "base_path {base_path}: {}",
            a.text
        );
        assert_eq!(a.json(), overlap, "base_path {base_path}");
    }
    let a = api
        .post(
            DISTRIBUTIONS,
            json!({"name": "cache-a", "base_path": "elsewhere", "remote": remote_href}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.json(), json!({"name": ["This field must be unique."]}));
    let dists = api.list(DISTRIBUTIONS).await;
    let names: Vec<&str> = dists.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cache-a", "cache-b"]);

    // A remote in use cannot be deleted.
    let a = api.delete(&remote_href).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let v = a.json();
    assert!(v["detail"].is_string(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    assert_eq!(api.get(&remote_href).await.status, StatusCode::OK);

    // Unknown hrefs: 404 {"detail":"Not found."} for every verb.
    let not_found = json!({"detail": "Not found."});
    for path in [
        format!("{REMOTES}{NO_SUCH_ID}/"),
        format!("{DISTRIBUTIONS}{NO_SUCH_ID}/"),
        format!("{REPOSITORIES}{NO_SUCH_ID}/"),
        format!("{REPO_DISTRIBUTIONS}{NO_SUCH_ID}/"),
        format!("{TASKS}{NO_SUCH_ID}/"),
        "/pulp/api/v3/no-such-endpoint/".into(),
    ] {
        let a = api.get(&path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "GET {path}: {}", a.text);
        assert_eq!(a.json(), not_found, "GET {path}");
    }
    for path in [
        format!("{REMOTES}{NO_SUCH_ID}/"),
        format!("{DISTRIBUTIONS}{NO_SUCH_ID}/"),
    ] {
        for a in [
            api.patch(&path, json!({"name": "x"})).await,
            api.delete(&path).await,
        ] {
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text);
            assert_eq!(a.json(), not_found, "{path}");
        }
    }
    let a = api.delete(&format!("{REPOSITORIES}{NO_SUCH_ID}/")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    assert_eq!(a.json(), not_found);

    // Authentication: none, a wrong password, a wrong user.
    let anonymous = Api::anonymous(&ferry);
    for (i, path) in [
        REMOTES.to_string(),
        remote_href.clone(),
        DISTRIBUTIONS.to_string(),
        REPOSITORIES.to_string(),
        REPO_DISTRIBUTIONS.to_string(),
        TAGS.to_string(),
        format!("{TASKS}{NO_SUCH_ID}/"),
    ]
    .into_iter()
    .enumerate()
    {
        // Two wrong logins per client address, below the throttle's limit
        // (trust_edge tests the throttle).
        let source = [127, 0, 0, 10 + i as u8];
        let wrong_password = Api::as_user_from(&ferry, "admin", "not-the-password", source);
        let wrong_user = Api::as_user_from(&ferry, "root", ADMIN_PASSWORD, source);
        for (who, client, detail) in [
            (
                "anonymous",
                &anonymous,
                "Authentication credentials were not provided.",
            ),
            (
                "wrong password",
                &wrong_password,
                "Invalid username/password.",
            ),
            ("wrong user", &wrong_user, "Invalid username/password."),
        ] {
            // Content reads are open to anonymous callers (browse.rs).
            if who == "anonymous" && !(path.starts_with(REMOTES) || path.starts_with(TASKS)) {
                continue;
            }
            let a = client.get(&path).await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{who} GET {path}: {}",
                a.text
            );
            assert_eq!(
                a.header("www-authenticate"),
                Some("Basic realm=\"ferry\""),
                "{who} GET {path}"
            );
            assert_eq!(a.json(), json!({"detail": detail}), "{who} GET {path}");
        }
    }
    // Nor can they change anything.
    let wrong_password = Api::as_user_from(&ferry, "admin", "not-the-password", [127, 0, 0, 9]);
    for (client, what) in [
        (&anonymous, "anonymous"),
        (&wrong_password, "wrong password"),
    ] {
        let a = client
            .post(REMOTES, json!({"name": "sneaky", "url": up}))
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.text);
        let a = client.delete(&remote_href).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.text);
    }
    assert_eq!(api.list(REMOTES).await.len(), 1);
    // Status and the OpenAPI document are public.
    assert_eq!(
        anonymous.get("/pulp/api/v3/status/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        anonymous.get("/pulp/api/v3/docs/api.json").await.status,
        StatusCode::OK
    );
}

/// List pagination and filters, and PUT/PATCH/DELETE answering tasks.
#[tokio::test]
async fn remote_lists_paginate_and_filter_and_changes_answer_tasks() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = Api::admin(&ferry);
    let up = upstream.url();
    for name in ["alpha", "beta", "gamma-cache", "delta-cache"] {
        api.create_remote(json!({"name": name, "url": up})).await;
    }
    let page = api.ok(&format!("{REMOTES}?limit=2")).await;
    assert_eq!(page["count"], 4, "{page}");
    assert_eq!(page["previous"], Value::Null, "{page}");
    let names = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let first = names(&page);
    assert_eq!(first.len(), 2);
    let next = page["next"].as_str().expect("next link").to_string();
    assert!(
        next.contains("offset=2") && next.contains("limit=2"),
        "{next}"
    );
    // `next` is absolute; follow it as a client would.
    let page2: Value = http_client()
        .get(&next)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(page2["next"], Value::Null, "{page2}");
    assert!(page2["previous"].is_string(), "{page2}");
    let mut all = first.clone();
    all.extend(names(&page2));
    all.sort();
    assert_eq!(all, ["alpha", "beta", "delta-cache", "gamma-cache"]);

    assert_eq!(
        names(&api.ok(&format!("{REMOTES}?name=beta")).await),
        ["beta"]
    );
    let mut cache = names(&api.ok(&format!("{REMOTES}?name__contains=-cache")).await);
    cache.sort();
    assert_eq!(cache, ["delta-cache", "gamma-cache"]);
    assert_eq!(api.ok(&format!("{REMOTES}?name=nothing")).await["count"], 0);

    // PATCH, PUT, DELETE answer 202 with a completed task.
    let beta = api.list(&format!("{REMOTES}?name=beta")).await[0].clone();
    let href = beta["pulp_href"].as_str().unwrap().to_string();
    api.task(
        api.patch(
            &href,
            json!({"includes": ["library/*"], "pulp_labels": {"team": "x"}}),
        )
        .await,
        "PATCH remote",
    )
    .await;
    let read = api.ok(&href).await;
    assert_eq!(read["includes"], json!(["library/*"]));
    assert_eq!(read["pulp_labels"], json!({"team": "x"}));
    assert_eq!(read["url"], up.as_str(), "PATCH kept the url");
    api.task(
        api.put(&href, json!({"name": "beta2", "url": format!("{up}/")}))
            .await,
        "PUT remote",
    )
    .await;
    let read = api.ok(&href).await;
    assert_eq!(read["name"], "beta2");
    assert_eq!(read["url"], format!("{up}/"));
    api.task(api.delete(&href).await, "DELETE remote").await;
    assert_eq!(api.get(&href).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.ok(REMOTES).await["count"], 3);
}

// ---------------------------------------------------------------------------
// 3. Secrets are write-only and never logged.

#[tokio::test]
async fn remote_secrets_appear_in_no_response_and_no_log() {
    let marker = format!("mk{}x{}", std::process::id(), rand_tag());
    let secret = |field: &str| format!("{marker}-{field}");
    // A real upstream wanting Basic credentials: ferry must send them, and
    // still never show or log them.
    let (upstream, image) = upstream_with_busybox_behind_basic_auth().await;
    let ferry = Ferry::start_with(&[], &[], &[("RUST_LOG", "debug")]);
    let api = Api::admin(&ferry);
    let mut seen = Vec::<String>::new();

    // A remote with every secret set (not reachable: the proxy refuses).
    let created = api
        .post(
            REMOTES,
            json!({
                "name": "secretive",
                "url": upstream.url(),
                "username": secret("username"),
                "password": secret("password"),
                "client_key": secret("client_key"),
                "proxy_url": "http://127.0.0.1:9/",
                "proxy_username": secret("proxy_username"),
                "proxy_password": secret("proxy_password"),
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    seen.push(created.text.clone());
    let href = created.json()["pulp_href"].as_str().unwrap().to_string();
    let hidden = |remote: &Value| -> Vec<(String, bool)> {
        let mut h: Vec<(String, bool)> = remote["hidden_fields"]
            .as_array()
            .unwrap_or_else(|| panic!("no hidden_fields in {remote}"))
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_string(),
                    f["is_set"].as_bool().unwrap(),
                )
            })
            .collect();
        h.sort();
        h
    };
    let all_set = vec![
        ("client_key".to_string(), true),
        ("password".to_string(), true),
        ("proxy_password".to_string(), true),
        ("proxy_username".to_string(), true),
        ("username".to_string(), true),
    ];
    assert_eq!(hidden(&created.json()), all_set);

    // A remote whose credentials are used for real pulls.
    let used = api
        .post(
            REMOTES,
            json!({"name": "with-login", "url": upstream.url(), "username": USER, "password": PASSWORD}),
        )
        .await;
    assert_eq!(used.status, StatusCode::CREATED, "{}", used.text);
    seen.push(used.text.clone());
    let used_href = used.json()["pulp_href"].as_str().unwrap().to_string();
    api.create_distribution("secretive", "secretive", &href, false)
        .await;
    api.create_distribution("docker-cache", CACHE, &used_href, false)
        .await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    // The unreachable one fails, and logs why, without its secrets.
    let (status, _, _) = raw_manifest_get(&ferry, &format!("secretive/{BUSYBOX}"), "1.36").await;
    assert!(
        !status.is_success(),
        "pull through a refusing proxy: {status}"
    );

    for path in [
        REMOTES.to_string(),
        format!("{REMOTES}?name=secretive"),
        href.clone(),
        used_href.clone(),
        DISTRIBUTIONS.to_string(),
        "/pulp/api/v3/status/".into(),
        "/pulp/api/v3/docs/api.json".into(),
    ] {
        let a = api.get(&path).await;
        assert_eq!(a.status, StatusCode::OK, "GET {path}");
        seen.push(a.text);
    }
    let read = api.ok(&href).await;
    assert_eq!(hidden(&read), all_set, "{read}");
    assert_eq!(
        hidden(&api.ok(&used_href).await)[1],
        ("password".into(), true)
    );

    // PATCH something else: secrets stay set and hidden.
    let a = api.patch(&href, json!({"pulp_labels": {"k": "v"}})).await;
    seen.push(a.text.clone());
    let task = api.task(a, "PATCH labels").await;
    seen.push(task.to_string());
    let read = api.get(&href).await;
    seen.push(read.text.clone());
    assert_eq!(hidden(&read.json()), all_set);
    // PATCH a new password: still hidden; null clears it.
    let a = api
        .patch(&href, json!({"password": secret("password2")}))
        .await;
    seen.push(a.text.clone());
    api.task(a, "PATCH password").await;
    let read = api.get(&href).await;
    seen.push(read.text.clone());
    assert_eq!(hidden(&read.json()), all_set);
    api.task(
        api.patch(&href, json!({"password": null})).await,
        "clear password",
    )
    .await;
    let read = api.get(&href).await;
    seen.push(read.text.clone());
    let mut expected = all_set.clone();
    expected[1].1 = false;
    assert_eq!(hidden(&read.json()), expected, "password cleared");
    // PUT repeats everything a client sends back: still write-only.
    let a = api
        .put(
            &href,
            json!({"name": "secretive", "url": upstream.url(), "client_key": secret("client_key2")}),
        )
        .await;
    seen.push(a.text.clone());
    api.task(a, "PUT remote").await;
    let read = api.get(&href).await;
    seen.push(read.text.clone());
    assert_eq!(
        hidden(&read.json())
            .into_iter()
            .find(|(n, _)| n == "client_key"),
        Some(("client_key".into(), true))
    );
    // The CLI shows remotes too.
    let cli = ferry_cli(&ferry, ADMIN_PASSWORD, &["remote", "list"]).await;
    let cli = cli.expect_ok("ferry remote list");
    seen.push(cli.stdout);

    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    };
    for text in &seen {
        assert!(
            !text.contains(&marker),
            "a secret marker in an API response: {text}"
        );
        assert!(
            !text.contains(PASSWORD),
            "the upstream password in an API response: {text}"
        );
        assert!(
            !text.contains(&basic),
            "upstream credentials in an API response: {text}"
        );
    }
    let log = ferry.log();
    assert!(log.contains("DEBUG"), "ferry ran without debug logging");
    for (what, needle) in [
        ("password marker", secret("password")),
        ("second password marker", secret("password2")),
        ("client_key marker", secret("client_key")),
        ("second client_key marker", secret("client_key2")),
        ("proxy_password marker", secret("proxy_password")),
        ("username marker", secret("username")),
        ("proxy_username marker", secret("proxy_username")),
        ("upstream password", PASSWORD.to_string()),
        ("upstream Basic credentials", basic.clone()),
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(&needle)) {
            panic!("the {what} is in ferry's log: {line}");
        }
    }
}

/// A per-process unique suffix without a `rand` dependency.
fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

// ---------------------------------------------------------------------------
// 4. Private distributions.

#[tokio::test]
async fn private_distribution_needs_podman_login_and_public_one_does_not() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = Api::admin(&ferry);
    let remote = api
        .create_remote(json!({"name": "up", "url": upstream.url()}))
        .await;
    let remote = remote["pulp_href"].as_str().unwrap();
    let private_href = api
        .create_distribution("private", "private", remote, true)
        .await;
    api.create_distribution("public", "public", remote, false)
        .await;
    assert_eq!(api.ok(&private_href).await["private"], true);
    // The public status page lists only the public cache to anonymous
    // callers; the admin sees both.
    let status_url = format!("{}/pulp/api/v3/status/", ferry.url());
    let upstreams = |status: serde_json::Value| -> Vec<String> {
        status["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["base_path"].as_str().unwrap().to_string())
            .collect()
    };
    let anonymous = http_client().get(&status_url).send().await.unwrap();
    let anonymous: serde_json::Value =
        serde_json::from_slice(&anonymous.bytes().await.unwrap()).unwrap();
    assert_eq!(upstreams(anonymous), ["public"]);
    let mut as_admin = upstreams(api.ok("/pulp/api/v3/status/").await);
    as_admin.sort();
    assert_eq!(as_admin, ["private", "public"]);
    let private_repo = format!("private/{BUSYBOX}");
    let public_repo = format!("public/{BUSYBOX}");

    // Anonymous: 401 with a Bearer challenge naming ferry's token endpoint.
    let (status, headers, _) = raw_manifest_get(&ferry, &private_repo, "1.36").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"http://{}/token\",service=\"ferry\",scope=\"repository:{private_repo}:pull\"",
            ferry.host()
        )
    );
    // An anonymous token does not open it either.
    let anon = RegistryClient::new(&ferry.url())
        .get_manifest(&private_repo, "1.36")
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);

    let podman = Podman::new();
    let private_ref = image_ref(ferry.host(), &private_repo, "1.36");
    let out = podman.pull(&private_ref, None, None).await;
    assert!(
        !out.success,
        "anonymous podman pull of a private distribution worked"
    );
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("unauthorized")
            || err.contains("authentication required")
            || err.contains("401"),
        "podman's complaint: {}",
        out.stderr
    );
    let out = podman.login(ferry.host(), "admin", "wrong-password").await;
    assert!(
        !out.success,
        "podman login with a wrong password succeeded: {}",
        out.stdout
    );
    podman
        .login(ferry.host(), "admin", ADMIN_PASSWORD)
        .await
        .expect_ok("podman login");
    podman
        .pull(&private_ref, None, None)
        .await
        .expect_ok("podman pull after login");
    assert_eq!(
        podman.image_id_and_digest(&private_ref).await.1,
        image.digest
    );
    // skopeo with credentials too.
    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(&private_ref, dest.path(), Some(("admin", ADMIN_PASSWORD)))
        .await
        .expect_ok("skopeo copy with credentials");
    assert_dir_matches(dest.path(), &image);

    // The public distribution on the same ferry: anonymous pulls work.
    let public_ref = image_ref(ferry.host(), &public_repo, "1.36");
    let stranger = Podman::new();
    stranger
        .pull(&public_ref, None, None)
        .await
        .expect_ok("anonymous podman pull of a public distribution");
    assert_eq!(
        stranger.image_id_and_digest(&public_ref).await.1,
        image.digest
    );
    assert_skopeo_copy_matches(&public_ref, &image).await;

    // The catalog hides private repositories from anonymous callers only.
    let catalog = |auth: Option<&'static str>| {
        let url = format!("{}/v2/_catalog", ferry.url());
        async move {
            let mut rb = http_client().get(url);
            if let Some(pw) = auth {
                rb = rb.basic_auth("admin", Some(pw));
            }
            let resp = rb.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
            let mut names: Vec<String> = v["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(catalog(None).await, std::slice::from_ref(&public_repo));
    assert_eq!(
        catalog(Some(ADMIN_PASSWORD)).await,
        [private_repo.clone(), public_repo.clone()]
    );
    // The API shows which per-repository distributions are private.
    let repo_dists = api.list(REPO_DISTRIBUTIONS).await;
    let private_of = |name: &str| {
        repo_dists
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no distribution {name}: {repo_dists:?}"))["private"]
            .clone()
    };
    assert_eq!(private_of(&private_repo), true);
    assert_eq!(private_of(&public_repo), false);
}

// ---------------------------------------------------------------------------
// 5. Deleting a repository frees its disk space, not shared blobs.

#[tokio::test]
async fn repository_delete_frees_disk_space_but_keeps_shared_blobs() {
    const LAYER: usize = 6 << 20;
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let image = images::large(LAYER);
    RegistryClient::new(&upstream.url())
        .push_image("example/large", "v1", &image)
        .await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = Api::admin(&ferry);
    let remote = api
        .create_remote(json!({"name": "up", "url": upstream.url()}))
        .await;
    let remote = remote["pulp_href"].as_str().unwrap();
    api.create_distribution("cache-a", "cache-a", remote, false)
        .await;
    api.create_distribution("cache-b", "cache-b", remote, false)
        .await;
    let blobs = ferry.data_dir().join("blobs");
    let layer_size = image.layers()[0].data.len() as u64;
    let in_a = image_ref(ferry.host(), "cache-a/example/large", "v1");
    let in_b = image_ref(ferry.host(), "cache-b/example/large", "v1");

    let empty = dir_bytes(&blobs);
    assert_skopeo_copy_matches(&in_a, &image).await;
    let full = dir_bytes(&blobs);
    assert!(
        full >= empty + layer_size,
        "{empty} → {full} bytes after the pull"
    );
    let repo = api
        .repository("cache-a/example/large")
        .await
        .expect("repository");
    let repo_href = repo["pulp_href"].as_str().unwrap().to_string();
    api.task(api.delete(&repo_href).await, "DELETE repository")
        .await;
    let after = dir_bytes(&blobs);
    assert!(
        after + layer_size <= full,
        "deleting the repository freed {} bytes of {full}; the layer alone is {layer_size}",
        full - after
    );
    assert_eq!(api.get(&repo_href).await.status, StatusCode::NOT_FOUND);
    assert!(api.repository("cache-a/example/large").await.is_none());
    assert_eq!(api.ok(REPO_DISTRIBUTIONS).await["count"], 0);

    // Through both distributions, then delete one repository: the other
    // keeps every blob and serves the image with the upstream gone.
    assert_skopeo_copy_matches(&in_a, &image).await;
    assert_skopeo_copy_matches(&in_b, &image).await;
    let both = dir_bytes(&blobs);
    let repo = api
        .repository("cache-a/example/large")
        .await
        .expect("repository");
    api.task(
        api.delete(repo["pulp_href"].as_str().unwrap()).await,
        "DELETE shared repository",
    )
    .await;
    let kept = dir_bytes(&blobs);
    assert!(
        kept + layer_size > both,
        "deleting one of two repositories freed {} bytes: the shared layer went",
        both - kept
    );
    assert!(api.repository("cache-b/example/large").await.is_some());
    upstream.stop();
    assert_skopeo_copy_matches(&in_b, &image).await;
}

// ---------------------------------------------------------------------------
// 5b. Removing a tag (Pulp's `remove/`), checking a tag upstream now, and
// the listing additions the dashboard pages with.

#[tokio::test]
async fn tags_are_removed_and_refreshed_and_repositories_sort_by_size() {
    const LAYER: usize = 3 << 20;
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let client = RegistryClient::new(&upstream.url());
    let (big, small, moved) = (
        images::large(LAYER),
        images::large(1 << 10),
        images::large(2 << 10),
    );
    client.push_image("example/big", "v1", &big).await;
    client.push_image("example/small", "v1", &small).await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let api = Api::admin(&ferry);
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("{CACHE}/example/big"), "v1"),
        &big,
    )
    .await;
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("{CACHE}/example/small"), "v1"),
        &small,
    )
    .await;

    // Listed by size (smallest first: not the name order), then biggest
    // first, with ferry's fields; `cache=` filters.
    let names = |repos: &[Value]| -> Vec<String> {
        repos
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (big_name, small_name) = (
        format!("{CACHE}/example/big"),
        format!("{CACHE}/example/small"),
    );
    let ascending = api
        .list(&format!("{REPOSITORIES}?cache={CACHE}&ordering=size"))
        .await;
    assert_eq!(names(&ascending), [small_name.clone(), big_name.clone()]);
    let repos = api
        .list(&format!("{REPOSITORIES}?cache={CACHE}&ordering=-size"))
        .await;
    assert_eq!(names(&repos), [big_name, small_name]);
    assert!(
        repos[0]["size"].as_u64().unwrap() >= LAYER as u64,
        "{}",
        repos[0]
    );
    assert_eq!(repos[0]["tag_count"], 1);
    assert_eq!(repos[0]["cache"], CACHE);
    assert!(repos[0]["last_pulled"].is_string(), "{}", repos[0]);
    assert_eq!(
        api.ok(&format!("{REPOSITORIES}?cache=no-such-cache")).await["count"],
        0
    );
    let bad = api.get(&format!("{REPOSITORIES}?ordering=colour")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.json()["ordering"].is_array(), "{}", bad.text);

    // The tag, with its size; refreshed after it moved upstream (within
    // its TTL a pull would still get the old digest).
    let big_repo = &repos[0];
    let version = big_repo["latest_version_href"].as_str().unwrap();
    let tags = api
        .list(&format!("{TAGS}?repository_version={version}"))
        .await;
    assert_eq!(tags.len(), 1);
    let tag_href = tags[0]["pulp_href"].as_str().unwrap().to_string();
    assert_eq!(tags[0]["digest"], big.digest.as_str());
    assert!(
        tags[0]["size"].as_u64().unwrap() >= LAYER as u64,
        "{}",
        tags[0]
    );
    client.push_image("example/big", "v1", &moved).await;
    let refreshed = api.post(&format!("{tag_href}refresh/"), json!({})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    assert_eq!(refreshed.json()["digest"], moved.digest.as_str());
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("{CACHE}/example/big"), "v1"),
        &moved,
    )
    .await;

    // With the upstream gone a refresh says so (and keeps the tag).
    upstream.stop();
    let down = api.post(&format!("{tag_href}refresh/"), json!({})).await;
    assert!(
        down.status.is_server_error(),
        "{}: {}",
        down.status,
        down.text
    );
    assert!(
        down.json()["detail"].as_str().unwrap().contains("upstream"),
        "{}",
        down.text
    );
    assert_eq!(api.ok(&tag_href).await["digest"], moved.digest.as_str());

    // Pulp's remove/: only this repository's tags; then the tag is gone and
    // the repository has a new version without it.
    let other_tag = format!(
        "{TAGS}{}:v1/",
        repos[1]["pulp_href"]
            .as_str()
            .unwrap()
            .split('/')
            .rev()
            .nth(1)
            .unwrap()
    );
    let href = big_repo["pulp_href"].as_str().unwrap();
    let refused = api
        .post(
            &format!("{href}remove/"),
            json!({"content_units": [other_tag]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    api.task(
        api.post(
            &format!("{href}remove/"),
            json!({"content_units": [tag_href]}),
        )
        .await,
        "remove tag",
    )
    .await;
    assert_eq!(api.get(&tag_href).await.status, StatusCode::NOT_FOUND);
    let after = api.ok(href).await;
    assert_eq!(after["tag_count"], 0, "{after}");
    assert_ne!(
        after["latest_version_href"],
        big_repo["latest_version_href"]
    );
    // The small image is untouched and still served offline.
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("{CACHE}/example/small"), "v1"),
        &small,
    )
    .await;

    // Big JSON answers are gzipped for a client that asks.
    let gz = reqwest::Client::new()
        .get(format!("{}/pulp/api/v3/docs/api.json", ferry.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
}

// ---------------------------------------------------------------------------
// 6. Distribution changes apply at once and persist; config caches are
// read-only through the API.

#[tokio::test]
async fn distribution_changes_apply_at_once_and_config_caches_are_read_only() {
    let (upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_with(&[CacheSpec::new("from-config", &upstream.url())], &[], &[]);
    let api = Api::admin(&ferry);

    // The config cache, as the API shows it.
    let remotes = api.list(REMOTES).await;
    assert_eq!(remotes.len(), 1, "{remotes:?}");
    let config_remote = &remotes[0];
    assert_eq!(config_remote["name"], "from-config");
    assert_eq!(config_remote["ferry_source"], "config");
    assert_eq!(
        config_remote["url"].as_str().unwrap().trim_end_matches('/'),
        upstream.url()
    );
    let config_remote_href = config_remote["pulp_href"].as_str().unwrap().to_string();
    let dists = api.list(DISTRIBUTIONS).await;
    assert_eq!(dists.len(), 1, "{dists:?}");
    assert_eq!(dists[0]["base_path"], "from-config");
    assert_eq!(dists[0]["ferry_source"], "config");
    assert_eq!(dists[0]["remote"], config_remote_href.as_str());
    let config_dist_href = dists[0]["pulp_href"].as_str().unwrap().to_string();
    let refused = [
        api.patch(&config_remote_href, json!({"url": "http://127.0.0.1:9/"}))
            .await,
        api.put(
            &config_remote_href,
            json!({"name": "from-config", "url": "http://127.0.0.1:9/"}),
        )
        .await,
        api.delete(&config_remote_href).await,
        api.patch(&config_dist_href, json!({"private": true})).await,
        api.delete(&config_dist_href).await,
    ];
    for a in refused {
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
        assert!(a.json()["detail"].is_string(), "{}", a.text);
    }
    // Nor can an API distribution take its base path.
    let a = api
        .post(
            DISTRIBUTIONS,
            json!({"name": "squat", "base_path": "from-config/sub", "remote": config_remote_href}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(
        a.json(),
        json!({"base_path": {"base_path": "Overlaps with an existing distribution."}})
    );
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("from-config/{BUSYBOX}"), "1.36"),
        &image,
    )
    .await;

    // An API distribution: served at once.
    let remote = api
        .create_remote(json!({"name": "up", "url": upstream.url()}))
        .await;
    let remote_href = remote["pulp_href"].as_str().unwrap().to_string();
    assert_eq!(remote["ferry_source"], "api");
    let dist_href = api
        .create_distribution("docker-cache", CACHE, &remote_href, false)
        .await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;

    // Moving its base path: the new one serves, the old one is gone.
    api.task(
        api.patch(&dist_href, json!({"base_path": "moved"})).await,
        "PATCH base_path",
    )
    .await;
    assert_eq!(api.ok(&dist_href).await["base_path"], "moved");
    assert_name_unknown(&ferry, &format!("{CACHE}/{BUSYBOX}"), "1.36").await;
    let moved_ref = image_ref(ferry.host(), &format!("moved/{BUSYBOX}"), "1.36");
    assert_skopeo_copy_matches(&moved_ref, &image).await;

    // Everything persists across a restart (SIGTERM, as systemd stops it).
    ferry.stop();
    ferry.start_again();
    let api = Api::admin(&ferry);
    let dist = api.ok(&dist_href).await;
    assert_eq!(dist["base_path"], "moved");
    assert_eq!(dist["remote"], remote_href.as_str());
    assert_eq!(api.ok(&remote_href).await["name"], "up");
    assert_eq!(api.list(DISTRIBUTIONS).await.len(), 2);
    let moved_ref = image_ref(ferry.host(), &format!("moved/{BUSYBOX}"), "1.36");
    assert_skopeo_copy_matches(&moved_ref, &image).await;

    // Deleting it stops serving at once.
    api.task(api.delete(&dist_href).await, "DELETE distribution")
        .await;
    assert_name_unknown(&ferry, &format!("moved/{BUSYBOX}"), "1.36").await;
    assert_name_unknown(&ferry, &format!("moved/{BUSYBOX}"), &image.digest).await;
    let dest = tempfile::tempdir().unwrap();
    let out = skopeo_copy(&moved_ref, dest.path(), None).await;
    assert!(!out.success, "skopeo pulled through a deleted distribution");
    assert_eq!(api.get(&dist_href).await.status, StatusCode::NOT_FOUND);
    // Now the remote may go.
    api.task(api.delete(&remote_href).await, "DELETE remote")
        .await;
    ferry.stop();
    ferry.start_again();
    let api = Api::admin(&ferry);
    assert_eq!(api.get(&dist_href).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get(&remote_href).await.status, StatusCode::NOT_FOUND);
    assert_name_unknown(&ferry, &format!("moved/{BUSYBOX}"), "1.36").await;
    // The config cache is still there and still serves.
    let remotes = api.list(REMOTES).await;
    assert_eq!(remotes.len(), 1);
    assert_eq!(remotes[0]["ferry_source"], "config");
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("from-config/{BUSYBOX}"), "1.36"),
        &image,
    )
    .await;
}

// ---------------------------------------------------------------------------
// 7. includes/excludes.

#[tokio::test]
async fn includes_and_excludes_restrict_which_repositories_a_remote_serves() {
    let (upstream, image) = upstream_with_busybox().await;
    let up = RegistryClient::new(&upstream.url());
    let old = images::busybox(Flavor::Docker, "old");
    let alpine = images::busybox(Flavor::Docker, "alpine");
    up.push_image("library/busybox-old", "1.0", &old).await;
    up.push_image("library/alpine", "3", &alpine).await;
    up.push_image("other/busybox", "1.36", &image).await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = Api::admin(&ferry);
    let remote = api
        .create_remote(json!({
            "name": "filtered",
            "url": upstream.url(),
            "includes": ["library/busy*"],
            "excludes": ["library/busybox-old"],
        }))
        .await;
    assert_eq!(remote["includes"], json!(["library/busy*"]));
    assert_eq!(remote["excludes"], json!(["library/busybox-old"]));
    let remote_href = remote["pulp_href"].as_str().unwrap().to_string();
    api.create_distribution("docker-cache", CACHE, &remote_href, false)
        .await;

    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    for (repo, reference) in [
        ("library/busybox-old", "1.0"),
        ("library/alpine", "3"),
        ("other/busybox", "1.36"),
    ] {
        assert_name_unknown(&ferry, &format!("{CACHE}/{repo}"), reference).await;
        let dest = tempfile::tempdir().unwrap();
        let out = skopeo_copy(&via_ferry(&ferry, repo, reference), dest.path(), None).await;
        assert!(!out.success, "skopeo pulled the filtered {repo}");
    }
    let repos: Vec<String> = api
        .list(REPOSITORIES)
        .await
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(repos, ["docker-cache/library/busybox"]);

    // Widening the filter applies at once.
    api.task(
        api.patch(
            &remote_href,
            json!({"excludes": null, "includes": ["library/*"]}),
        )
        .await,
        "PATCH filters",
    )
    .await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, "library/busybox-old", "1.0"), &old).await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, "library/alpine", "3"), &alpine).await;
    assert_name_unknown(&ferry, &format!("{CACHE}/other/busybox"), "1.36").await;
}

// ---------------------------------------------------------------------------
// 8. The CLI.

#[tokio::test]
async fn cli_manages_remotes_distributions_and_repositories() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = Api::admin(&ferry);
    let cli = |args: &'static [&'static str]| ferry_cli(&ferry, ADMIN_PASSWORD, args);
    let up = upstream.url();

    let out = ferry_cli(
        &ferry,
        ADMIN_PASSWORD,
        &["remote", "create", "up", "--upstream", &up],
    )
    .await
    .expect_ok("ferry remote create");
    let href = out
        .stdout
        .trim()
        .strip_prefix("created remote up (")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("printed {:?}", out.stdout))
        .to_string();
    assert!(href.starts_with(REMOTES), "printed {href:?}");
    assert_eq!(api.ok(&href).await["url"], up.as_str());
    let out = cli(&["remote", "list"])
        .await
        .expect_ok("ferry remote list");
    assert_eq!(lines(&out), [format!("up\t{up}\tapi")]);

    // A remote name that exists: refused, with ferry's message.
    let out = ferry_cli(
        &ferry,
        ADMIN_PASSWORD,
        &["remote", "create", "up", "--upstream", &up],
    )
    .await;
    assert!(!out.success, "duplicate remote accepted");
    assert!(
        out.stderr.contains("This field must be unique."),
        "{}",
        out.stderr
    );

    cli(&[
        "distribution",
        "create",
        "dc",
        "--base-path",
        "docker-cache",
        "--remote",
        "up",
    ])
    .await
    .expect_ok("ferry distribution create");
    cli(&[
        "distribution",
        "create",
        "secret",
        "--base-path",
        "secret",
        "--remote",
        "up",
        "--private",
    ])
    .await
    .expect_ok("ferry distribution create --private");
    let out = cli(&["distribution", "list"])
        .await
        .expect_ok("ferry distribution list");
    assert_eq!(
        lines(&out),
        [
            "dc\tdocker-cache\tprivate=false",
            "secret\tsecret\tprivate=true"
        ]
    );
    let out = cli(&[
        "distribution",
        "create",
        "x",
        "--base-path",
        "x",
        "--remote",
        "nope",
    ])
    .await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("no remote named \"nope\""),
        "{}",
        out.stderr
    );

    // Pull through it; the repository appears in the CLI's list.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let (status, _, _) = raw_manifest_get(&ferry, &format!("secret/{BUSYBOX}"), "1.36").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the --private distribution"
    );
    let repo = api
        .repository("docker-cache/library/busybox")
        .await
        .unwrap();
    let out = cli(&["repository", "list"])
        .await
        .expect_ok("ferry repository list");
    assert_eq!(
        lines(&out),
        [format!(
            "docker-cache/library/busybox\t{}",
            repo["latest_version_href"].as_str().unwrap()
        )]
    );

    // Deleting a remote in use is refused.
    let out = cli(&["remote", "delete", "up"]).await;
    assert!(!out.success, "deleted a remote in use");
    assert!(out.stderr.contains("400"), "{}", out.stderr);

    cli(&["repository", "delete", "docker-cache/library/busybox"])
        .await
        .expect_ok("ferry repository delete");
    let out = cli(&["repository", "list"])
        .await
        .expect_ok("ferry repository list");
    assert_eq!(out.stdout, "");
    assert!(api
        .repository("docker-cache/library/busybox")
        .await
        .is_none());
    let out = cli(&["repository", "delete", "docker-cache/library/busybox"]).await;
    assert!(!out.success);
    assert!(out.stderr.contains("no repository named"), "{}", out.stderr);

    cli(&["distribution", "delete", "dc"])
        .await
        .expect_ok("ferry distribution delete");
    cli(&["distribution", "delete", "secret"])
        .await
        .expect_ok("ferry distribution delete");
    let out = cli(&["distribution", "list"])
        .await
        .expect_ok("ferry distribution list");
    assert_eq!(out.stdout, "");
    assert_name_unknown(&ferry, &format!("{CACHE}/{BUSYBOX}"), "1.36").await;

    cli(&["remote", "delete", "up"])
        .await
        .expect_ok("ferry remote delete");
    let out = cli(&["remote", "list"])
        .await
        .expect_ok("ferry remote list");
    assert_eq!(out.stdout, "");
    assert_eq!(api.ok(REMOTES).await["count"], 0);

    // --url instead of FERRY_URL, and a wrong password.
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(["remote", "list", "--url", &ferry.url()])
        .env_remove("FERRY_URL")
        .env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .current_dir(cwd.path());
    run_bounded(cmd, std::time::Duration::from_secs(60))
        .await
        .expect_ok("ferry remote list --url");
    let out = ferry_cli(&ferry, "wrong", &["remote", "list"]).await;
    assert!(!out.success, "the CLI worked with a wrong password");
    assert!(out.stderr.contains("401"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// 9. The OpenAPI document.

#[tokio::test]
async fn openapi_document_lists_remotes_and_distributions() {
    let ferry = Ferry::start_with(&[], &[], &[]);
    let a = Api::anonymous(&ferry)
        .get("/pulp/api/v3/docs/api.json")
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(
        a.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        a.header("content-type")
    );
    let doc = a.json();
    let version = doc["openapi"]
        .as_str()
        .unwrap_or_else(|| panic!("no openapi field"));
    assert!(version.starts_with("3."), "openapi {version}");
    let paths = doc["paths"].as_object().expect("paths");
    // Pulp's paths and operation ids: an object's path is its href.
    for (path, operations) in [
        (
            REMOTES,
            &[
                ("get", "remotes_container_pull_through_list"),
                ("post", "remotes_container_pull_through_create"),
            ][..],
        ),
        (
            "{container_container_pull_through_remote_href}",
            &[("get", "remotes_container_pull_through_read")][..],
        ),
        (
            DISTRIBUTIONS,
            &[
                ("get", "distributions_container_pull_through_list"),
                ("post", "distributions_container_pull_through_create"),
            ][..],
        ),
        (
            "{container_container_pull_through_distribution_href}",
            &[("get", "distributions_container_pull_through_read")][..],
        ),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("no path {path} in {:?}", paths.keys().collect::<Vec<_>>()));
        for (m, id) in operations {
            assert_eq!(item[*m]["operationId"], *id, "{path} {m}: {item}");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in ["RemoteResponse", "DistributionResponse"] {
        assert!(schemas.contains_key(s), "no schema {s}");
    }
}

// ---------------------------------------------------------------------------
// The generated admin password.

#[tokio::test]
async fn generated_admin_password_is_saved_privately_and_printed_once() {
    use std::os::unix::fs::PermissionsExt;
    // Ferry::start does not set FERRY_ADMIN_PASSWORD.
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let mut ferry = Ferry::start(&[CacheSpec::new(CACHE, &upstream.url())]);
    let path = ferry.data_dir().join("admin-password");
    let password = std::fs::read_to_string(&path).expect("DATA_DIR/admin-password");
    let password = password.trim().to_string();
    assert!(
        password.len() >= 16,
        "a weak generated password: {password:?}"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin-password mode {mode:o}");
    assert_eq!(
        ferry.log().matches(&password).count(),
        1,
        "printed once on stderr"
    );
    assert_eq!(
        Api::as_user(&ferry, "admin", &password)
            .get(REMOTES)
            .await
            .status,
        StatusCode::OK
    );
    ferry.restart();
    assert_eq!(
        Api::as_user(&ferry, "admin", &password)
            .get(REMOTES)
            .await
            .status,
        StatusCode::OK,
        "the password changed across a restart"
    );
    assert_eq!(
        ferry.log().matches(&password).count(),
        1,
        "printed again after a restart"
    );
    assert_eq!(
        Api::as_user(&ferry, "admin", ADMIN_PASSWORD)
            .get(REMOTES)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------
// Acknowledged changes survive a crash.

/// A 201/202 from the API means the change is stored: a crash (SIGKILL)
/// right after the answer must not undo it. Each step is checked after a
/// kill and a restart; all lost changes are reported together.
#[tokio::test]
async fn acknowledged_api_changes_survive_a_crash() {
    let (upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_with(&[], &[], &[]);
    let mut lost = Vec::<String>::new();

    // Creates.
    let api = Api::admin(&ferry);
    let r1 = api
        .create_remote(json!({"name": "r1", "url": upstream.url()}))
        .await;
    let r1 = r1["pulp_href"].as_str().unwrap().to_string();
    let d1 = api.create_distribution("d1", "d1", &r1, false).await;
    ferry.restart(); // SIGKILL, start again
    let api = Api::admin(&ferry);
    for (what, href) in [("POST remote (201)", &r1), ("POST distribution (202)", &d1)] {
        let status = api.get(href).await.status;
        if status != StatusCode::OK {
            lost.push(format!(
                "{what}: GET {href} after the crash answers {status}"
            ));
        }
    }

    // A baseline made durable by a pull (which flushes the store), then a
    // repository delete and a distribution delete.
    let r2 = api
        .create_remote(json!({"name": "r2", "url": upstream.url()}))
        .await;
    let r2 = r2["pulp_href"].as_str().unwrap().to_string();
    let d2 = api.create_distribution("d2", "d2", &r2, false).await;
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("d2/{BUSYBOX}"), "1.36"),
        &image,
    )
    .await;
    let repo = api
        .repository(&format!("d2/{BUSYBOX}"))
        .await
        .expect("repository");
    let repo = repo["pulp_href"].as_str().unwrap().to_string();
    api.task(api.delete(&repo).await, "DELETE repository").await;
    api.task(api.delete(&d2).await, "DELETE distribution").await;
    ferry.restart();
    let api = Api::admin(&ferry);
    for (what, href) in [
        ("DELETE repository (202)", &repo),
        ("DELETE distribution (202)", &d2),
    ] {
        let status = api.get(href).await.status;
        if status != StatusCode::NOT_FOUND {
            lost.push(format!(
                "{what}: GET {href} after the crash answers {status}, not 404"
            ));
        }
    }
    let (status, _, _) = raw_manifest_get(&ferry, &format!("d2/{BUSYBOX}"), "1.36").await;
    if status != StatusCode::NOT_FOUND {
        lost.push(format!(
            "DELETE distribution (202): d2 serves again after the crash ({status})"
        ));
    }
    assert!(
        lost.is_empty(),
        "acknowledged changes lost in a crash:\n{}",
        lost.join("\n")
    );
}
