//! Pulp's own command-line client, pulp-cli (PyPI `pulp-cli`, which pulls
//! in pulp-glue), against ferry: the commands README names as working.
//!
//! The `pulp` program is named by `FERRY_PULP_CLI` (scripts/test.sh installs
//! pulp-cli 0.41.1 into a venv and sets it). Without it the test fails and
//! says how to install it: a skipped test would read as a passing one.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::pulp_api::REMOTES;
use crate::support::util::run_bounded;
use crate::support::*;

/// ferry's admin account (its password: `ADMIN_PASSWORD`).
const ADMIN: &str = "admin";

/// `pulp` with ferry's address and the admin's credentials; its API
/// description cache and config lookups kept in a directory of its own.
struct PulpCli {
    program: PathBuf,
    base_url: String,
    home: tempfile::TempDir,
}

impl PulpCli {
    fn new(ferry: &Ferry) -> PulpCli {
        let program = std::env::var_os("FERRY_PULP_CLI").map(PathBuf::from).unwrap_or_else(|| {
            panic!(
                "FERRY_PULP_CLI is not set: it names the `pulp` program of pulp-cli. Install it with\n  \
                 python3 -m venv target/pulp-cli && target/pulp-cli/bin/pip install pulp-cli==0.41.1\n\
                 and run with FERRY_PULP_CLI=$PWD/target/pulp-cli/bin/pulp (scripts/test.sh does both)"
            )
        });
        PulpCli {
            program,
            base_url: ferry.url(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs `pulp ARGS`, asserts it succeeded and parses its JSON output.
    async fn json(&self, args: &[&str]) -> Value {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(["--base-url", &self.base_url])
            .args(["--username", ADMIN, "--password", ADMIN_PASSWORD])
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env_remove("PULP_CA_BUNDLE");
        let out = run_bounded(cmd, Duration::from_secs(60))
            .await
            .expect_ok(&format!("pulp {}", args.join(" ")));
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("pulp {}: not JSON ({e}):\n{}", args.join(" "), out.stdout))
    }
}

/// The first result of a `pulp ... list` whose `key` is `value`.
fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|item| item[key] == value)
        .unwrap_or_else(|| panic!("no {key} {value} in {list}"))
}

#[tokio::test]
async fn pulp_cli_reads_status_tasks_repositories_distributions_and_tags() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let pulp = PulpCli::new(&ferry);
    let repo_name = format!("{CACHE}/{BUSYBOX}");

    // `status` answers with the components the API document declares (else
    // pulp-cli would report its cached API description outdated).
    let status = pulp.json(&["status"]).await;
    let versions: Vec<(&str, &str)> = status["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["component"].as_str().unwrap(),
                v["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("core", "3.123.1"),
            ("container", "2.30.0"),
            ("ferry", env!("CARGO_PKG_VERSION"))
        ]
    );
    assert_eq!(status["upstreams"][0]["base_path"], CACHE, "{status}");

    // A task, from deleting a remote made for it.
    let api = PulpApi::admin(&ferry);
    let remote = api
        .post(
            REMOTES,
            json!({ "name": "for-a-task", "url": upstream.url() }),
        )
        .await
        .json();
    let remote_href = remote["pulp_href"].as_str().expect("pulp_href");
    let deleted = api.delete(remote_href).await.json();
    let task_href = deleted["task"].as_str().expect("task href");
    let task = pulp.json(&["task", "show", "--href", task_href]).await;
    assert_eq!(
        (&task["pulp_href"], &task["state"]),
        (&json!(task_href), &json!("completed"))
    );

    // Repositories: list, show by name and by href.
    let repos = pulp.json(&["container", "repository", "list"]).await;
    let repo = find(&repos, "name", &repo_name);
    let repo_href = repo["pulp_href"].as_str().expect("pulp_href");
    let shown = pulp
        .json(&["container", "repository", "show", "--name", &repo_name])
        .await;
    assert_eq!(shown["pulp_href"], repo_href);
    let by_href = pulp
        .json(&["container", "repository", "show", "--href", repo_href])
        .await;
    assert_eq!(by_href["name"], repo_name.as_str());
    // Fields chosen as pulp-cli asks for them.
    let names = pulp
        .json(&["container", "repository", "list", "--field", "name"])
        .await;
    assert_eq!(names, json!([{ "name": repo_name }]));

    // Distributions: the per-repository one a pull created.
    let dists = pulp.json(&["container", "distribution", "list"]).await;
    let dist = find(&dists, "base_path", &repo_name);
    assert_eq!(dist["repository"], repo_href);
    let shown = pulp
        .json(&["container", "distribution", "show", "--name", &repo_name])
        .await;
    assert_eq!(shown["pulp_href"], dist["pulp_href"]);
    assert!(
        shown["registry_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&repo_name)),
        "{shown}"
    );

    // Content: the tag and the manifest digest skopeo got, and the blobs.
    let tags = pulp.json(&["container", "content", "list"]).await;
    let tag = find(&tags, "name", "1.36");
    assert_eq!(tag["digest"], image.digest.as_str());
    let in_version = pulp
        .json(&[
            "container",
            "content",
            "list",
            "--repository-version",
            repo["latest_version_href"].as_str().expect("version href"),
            "--name-in",
            "1.36",
            "--name-in",
            "no-such-tag",
        ])
        .await;
    assert_eq!(in_version.as_array().map(Vec::len), Some(1), "{in_version}");
    let manifests = pulp
        .json(&["container", "content", "--type", "manifest", "list"])
        .await;
    find(&manifests, "digest", &image.digest);
    let blobs = pulp
        .json(&["container", "content", "--type", "blob", "list"])
        .await;
    for blob in &image.blobs {
        find(&blobs, "digest", &blob.digest);
    }
}
