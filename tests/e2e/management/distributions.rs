//! Distributions: private ones need a login, public ones do not; changes
//! apply at once and persist; config caches are read-only through the API.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::pulp_api::{
    field_of, href_of, sorted_strings, DISTRIBUTIONS, REMOTES, REPO_DISTRIBUTIONS, STATUS,
};
use crate::support::*;

use super::{assert_name_unknown, overlaps, raw_manifest_get};

#[tokio::test]
async fn private_distribution_needs_podman_login_and_public_one_does_not() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let remote = api.remote_href("up", &upstream.url()).await;
    let private_href = api
        .create_distribution("private", "private", &remote, true)
        .await;
    api.create_distribution("public", "public", &remote, false)
        .await;
    assert_eq!(api.ok(&private_href).await["private"], true);
    // The public status page lists only the public cache to anonymous
    // callers; the admin sees both.
    let upstreams = |status: Value| field_of(status["upstreams"].as_array().unwrap(), "base_path");
    let anonymous = PulpApi::anonymous(&ferry).status().await;
    assert_eq!(upstreams(anonymous), ["public"]);
    let mut as_admin = upstreams(api.ok(STATUS).await);
    as_admin.sort();
    assert_eq!(as_admin, ["private", "public"]);
    let private_repo = format!("private/{BUSYBOX}");
    let public_repo = format!("public/{BUSYBOX}");

    // Anonymous: 401 with a Bearer challenge naming ferry's token endpoint.
    let got = raw_manifest_get(&ferry, &private_repo, "1.36").await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    let challenge = got.header("www-authenticate").unwrap();
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
        .assert_pulls(&private_ref, &image.digest, "podman pull after login")
        .await;
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
        .assert_pulls(
            &public_ref,
            &image.digest,
            "anonymous podman pull of a public distribution",
        )
        .await;
    assert_skopeo_copy_matches(&public_ref, &image).await;

    // The catalog hides private repositories from anonymous callers only.
    assert_eq!(
        catalog(&PulpApi::anonymous(&ferry)).await,
        std::slice::from_ref(&public_repo)
    );
    assert_eq!(
        catalog(&api).await,
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

/// `/v2/_catalog` as `caller` sees it, sorted.
async fn catalog(caller: &PulpApi) -> Vec<String> {
    sorted_strings(&caller.ok("/v2/_catalog").await["repositories"])
}

#[tokio::test]
async fn distribution_changes_apply_at_once_and_config_caches_are_read_only() {
    let (upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_with(&[CacheSpec::new("from-config", &upstream.url())], &[], &[]);
    let api = PulpApi::admin(&ferry);

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
    let config_remote_href = href_of(config_remote);
    let dists = api.list(DISTRIBUTIONS).await;
    assert_eq!(dists.len(), 1, "{dists:?}");
    assert_eq!(dists[0]["base_path"], "from-config");
    assert_eq!(dists[0]["ferry_source"], "config");
    assert_eq!(dists[0]["remote"], config_remote_href.as_str());
    let config_dist_href = href_of(&dists[0]);
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
        a.assert_detail(StatusCode::BAD_REQUEST, "a change to a config cache");
    }
    // Nor can an API distribution take its base path.
    api.post(
        DISTRIBUTIONS,
        json!({"name": "squat", "base_path": "from-config/sub", "remote": config_remote_href}),
    )
    .await
    .assert_is(StatusCode::BAD_REQUEST, &overlaps(), "squat");
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("from-config/{BUSYBOX}"), "1.36"),
        &image,
    )
    .await;

    // An API distribution: served at once.
    let remote = api
        .create_remote(json!({"name": "up", "url": upstream.url()}))
        .await;
    let remote_href = href_of(&remote);
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
    let api = PulpApi::admin(&ferry);
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
    let api = PulpApi::admin(&ferry);
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
