//! The `ferry remote|distribution|repository` CLI as a management client.

use reqwest::StatusCode;

use crate::support::pulp_api::REMOTES;
use crate::support::util::{run_bounded, CmdOutput};
use crate::support::*;

use super::{assert_name_unknown, ferry_cli, raw_manifest_get};

#[tokio::test]
async fn cli_manages_remotes_distributions_and_repositories() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
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
    assert_refused(
        &out,
        "This field must be unique.",
        "duplicate remote accepted",
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
    assert_refused(
        &out,
        "no remote named \"nope\"",
        "a distribution of no remote",
    );

    // Pull through it; the repository appears in the CLI's list.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    let status = raw_manifest_get(&ferry, &format!("secret/{BUSYBOX}"), "1.36")
        .await
        .status;
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
    assert_refused(&out, "400", "deleted a remote in use");

    cli(&["repository", "delete", "docker-cache/library/busybox"])
        .await
        .expect_ok("ferry repository delete");
    assert_lists_nothing(&ferry, "repository").await;
    assert!(api
        .repository("docker-cache/library/busybox")
        .await
        .is_none());
    let out = cli(&["repository", "delete", "docker-cache/library/busybox"]).await;
    assert_refused(&out, "no repository named", "deleting a deleted repository");

    cli(&["distribution", "delete", "dc"])
        .await
        .expect_ok("ferry distribution delete");
    cli(&["distribution", "delete", "secret"])
        .await
        .expect_ok("ferry distribution delete");
    assert_lists_nothing(&ferry, "distribution").await;
    assert_name_unknown(&ferry, &format!("{CACHE}/{BUSYBOX}"), "1.36").await;

    cli(&["remote", "delete", "up"])
        .await
        .expect_ok("ferry remote delete");
    assert_lists_nothing(&ferry, "remote").await;
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
    assert_refused(&out, "401", "the CLI worked with a wrong password");
}

/// The CLI's stdout, line by line.
fn lines(out: &CmdOutput) -> Vec<String> {
    out.stdout.lines().map(str::to_string).collect()
}

/// Asserts the CLI failed and its stderr says `needle`.
fn assert_refused(out: &CmdOutput, needle: &str, what: &str) {
    assert!(!out.success, "{what}");
    assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
}

/// Runs `ferry WHAT list` and asserts it prints nothing.
async fn assert_lists_nothing(ferry: &Ferry, what: &str) {
    let out = ferry_cli(ferry, ADMIN_PASSWORD, &[what, "list"])
        .await
        .expect_ok(&format!("ferry {what} list"));
    assert_eq!(out.stdout, "", "ferry {what} list");
}
