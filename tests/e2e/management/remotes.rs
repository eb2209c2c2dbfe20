//! Remotes: list pagination and filters, changes answering tasks, secrets
//! that are write-only and never logged, and includes/excludes.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::images::{self, Flavor};
use crate::support::pulp_api::{
    field_of, href_of, results, DISTRIBUTIONS, OPENAPI, REMOTES, REPOSITORIES, STATUS,
};
use crate::support::*;

use super::{assert_name_unknown, ferry_cli, raw_manifest_get};

/// List pagination and filters, and PUT/PATCH/DELETE answering tasks.
#[tokio::test]
async fn remote_lists_paginate_and_filter_and_changes_answer_tasks() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let up = upstream.url();
    for name in ["alpha", "beta", "gamma-cache", "delta-cache"] {
        api.create_remote(json!({"name": name, "url": up})).await;
    }
    let page = api.ok(&format!("{REMOTES}?limit=2")).await;
    assert_eq!(page["count"], 4, "{page}");
    assert_eq!(page["previous"], Value::Null, "{page}");
    let names = |page: &Value| field_of(results(page), "name");
    let first = names(&page);
    assert_eq!(first.len(), 2);
    let next = page["next"].as_str().expect("next link").to_string();
    assert!(
        next.contains("offset=2") && next.contains("limit=2"),
        "{next}"
    );
    // `next` is absolute; follow it as a client would.
    let page2 = api.get(&next).await.json();
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
    let href = href_of(&beta);
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

#[tokio::test]
async fn remote_secrets_appear_in_no_response_and_no_log() {
    let marker = format!("mk{}x{}", std::process::id(), rand_tag());
    let secret = |field: &str| format!("{marker}-{field}");
    // A real upstream wanting Basic credentials: ferry must send them, and
    // still never show or log them.
    let (upstream, image) = upstream_with_busybox_behind_basic_auth().await;
    let ferry = Ferry::start_with(&[], &[], &[("RUST_LOG", "debug")]);
    let api = PulpApi::admin(&ferry);
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
    let href = href_of(&created.json());
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
    let used_href = href_of(&used.json());
    api.create_distribution("secretive", "secretive", &href, false)
        .await;
    api.create_distribution("docker-cache", CACHE, &used_href, false)
        .await;
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    // The unreachable one fails, and logs why, without its secrets.
    let status = raw_manifest_get(&ferry, &format!("secretive/{BUSYBOX}"), "1.36")
        .await
        .status;
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
        STATUS.into(),
        OPENAPI.into(),
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
    assert_eq!(read_hidden(&api, &href, &mut seen).await, all_set);
    // PATCH a new password: still hidden; null clears it.
    let a = api
        .patch(&href, json!({"password": secret("password2")}))
        .await;
    seen.push(a.text.clone());
    api.task(a, "PATCH password").await;
    assert_eq!(read_hidden(&api, &href, &mut seen).await, all_set);
    api.task(
        api.patch(&href, json!({"password": null})).await,
        "clear password",
    )
    .await;
    let mut expected = all_set.clone();
    expected[1].1 = false;
    assert_eq!(
        read_hidden(&api, &href, &mut seen).await,
        expected,
        "password cleared"
    );
    // PUT repeats everything a client sends back: still write-only.
    let a = api
        .put(
            &href,
            json!({"name": "secretive", "url": upstream.url(), "client_key": secret("client_key2")}),
        )
        .await;
    seen.push(a.text.clone());
    api.task(a, "PUT remote").await;
    assert_eq!(
        read_hidden(&api, &href, &mut seen)
            .await
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

/// `hidden_fields` of a remote: (name, is_set), sorted by name.
fn hidden(remote: &Value) -> Vec<(String, bool)> {
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
}

/// GETs the remote at `href` (its text goes to `seen`, to be searched for
/// secrets); returns its `hidden_fields`.
async fn read_hidden(api: &PulpApi, href: &str, seen: &mut Vec<String>) -> Vec<(String, bool)> {
    let read = api.get(href).await;
    seen.push(read.text.clone());
    hidden(&read.json())
}

/// A per-process unique suffix without a `rand` dependency.
fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// includes/excludes restrict which upstream repositories are served, and
/// a change applies at once.
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
    let api = PulpApi::admin(&ferry);
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
    let remote_href = href_of(&remote);
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
    assert_eq!(
        field_of(&api.list(REPOSITORIES).await, "name"),
        ["docker-cache/library/busybox"]
    );

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
