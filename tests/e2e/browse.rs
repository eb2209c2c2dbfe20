//! Browsing without a login: with `browse = "public"` (the default) anyone
//! reads what public caches hold through the management API, read-only,
//! and nothing of a private distribution; `browse = "admin"` closes the
//! API's content reads, `/v2/_catalog` and tag lists to anonymous clients
//! (pulls stay as they are).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::images::{self, Flavor};
use crate::support::pulp_api::{
    field_of, href_of, results, DISTRIBUTIONS, MANIFESTS, REMOTES, REPOSITORIES,
    REPO_DISTRIBUTIONS, STATUS, TAGS, TASKS,
};
use crate::support::*;

/// The admin's credentials as skopeo takes them.
const ADMIN: Option<(&str, &str)> = Some(("admin", ADMIN_PASSWORD));

/// Pulp's answer to a call without credentials where they are needed.
fn credentials_needed() -> Value {
    json!({"detail": "Authentication credentials were not provided."})
}

/// The string `field` of each result of a list page.
fn names(page: &Value, field: &str) -> Vec<String> {
    field_of(results(page), field)
}

#[tokio::test]
async fn anonymous_visitors_read_public_caches_and_nothing_private() {
    let (upstream, image) = upstream_with_busybox().await;
    // An image only the private distribution ever pulls.
    let secret = images::busybox(Flavor::Docker, "secret");
    RegistryClient::new(&upstream.url())
        .push_image("library/secret", "1", &secret)
        .await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let (admin, anonymous) = (PulpApi::admin(&ferry), PulpApi::anonymous(&ferry));
    let remote = admin.remote_href("up", &upstream.url()).await;
    for (name, private) in [("public", false), ("private", true)] {
        let a = admin
            .post(
                DISTRIBUTIONS,
                json!({"name": name, "base_path": name, "remote": remote, "private": private}),
            )
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    }
    // An anonymous pull through the public cache; the admin pulls through
    // the private one.
    assert_skopeo_copy_matches(
        &image_ref(ferry.host(), &format!("public/{BUSYBOX}"), "1.36"),
        &image,
    )
    .await;
    let dest = tempfile::tempdir().unwrap();
    for (repo, tag) in [(BUSYBOX, "1.36"), ("library/secret", "1")] {
        skopeo_copy(
            &image_ref(ferry.host(), &format!("private/{repo}"), tag),
            &dest.path().join(tag),
            ADMIN,
        )
        .await
        .expect_ok("admin pull through the private distribution");
    }

    // Repositories: the admin sees all three, anyone else the public one.
    let public_repo = format!("public/{BUSYBOX}");
    let all = admin.ok(REPOSITORIES).await;
    assert_eq!(
        names(&all, "name"),
        [
            format!("private/{BUSYBOX}"),
            "private/library/secret".into(),
            public_repo.clone()
        ]
    );
    let visible = anonymous.ok(REPOSITORIES).await;
    assert_eq!(visible["count"], 1, "{visible}");
    assert_eq!(names(&visible, "name"), std::slice::from_ref(&public_repo));
    let public = &visible["results"][0];
    assert_eq!(public["tag_count"], 1);
    assert_eq!(
        public["pull_reference"],
        format!("{public_repo}:1.36"),
        "the pull line names a tag the repository has"
    );
    // Searching by name never reaches a private repository either.
    let found = anonymous
        .ok(&format!("{REPOSITORIES}?name__contains=secret"))
        .await;
    assert_eq!(found["count"], 0, "{found}");

    // A private repository by id, its versions, its tags: as if absent.
    let private_repo = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "private/library/secret")
        .unwrap()
        .clone();
    let private_href = private_repo["pulp_href"].as_str().unwrap();
    let private_id = private_href
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap();
    let private_version = private_repo["latest_version_href"].as_str().unwrap();
    for path in [
        private_href.to_string(),
        format!("{private_href}versions/"),
        private_version.to_string(),
        format!("{TAGS}{private_id}:1/"),
        format!("{REPO_DISTRIBUTIONS}{private_id}/"),
        format!("{MANIFESTS}{}/", secret.digest),
    ] {
        anonymous.get(&path).await.assert_is(
            StatusCode::NOT_FOUND,
            &json!({"detail": "Not found."}),
            &format!("anonymous GET {path}"),
        );
        assert_eq!(
            admin.get(&path).await.status,
            StatusCode::OK,
            "admin GET {path}"
        );
    }
    let filtered = anonymous
        .ok(&format!("{TAGS}?repository_version={private_version}"))
        .await;
    assert_eq!(filtered["count"], 0, "{filtered}");

    // Tags and manifests of the public cache: what upstream has.
    let tags = anonymous.ok(TAGS).await;
    assert_eq!(tags["count"], 1, "{tags}");
    assert_eq!(tags["results"][0]["repository"], public_repo.as_str());
    assert_eq!(tags["results"][0]["digest"], image.digest.as_str());
    let manifest = anonymous.ok(&format!("{MANIFESTS}{}/", image.digest)).await;
    assert_eq!(manifest["digest"], image.digest.as_str());
    let manifests = anonymous.ok(MANIFESTS).await;
    assert!(
        !manifests.to_string().contains(&secret.digest),
        "{manifests}"
    );

    // Distributions: the public one only.
    let dists = anonymous.ok(DISTRIBUTIONS).await;
    assert_eq!(names(&dists, "base_path"), ["public"]);
    let private_dist =
        href_of(&admin.ok(&format!("{DISTRIBUTIONS}?name=private")).await["results"][0]);
    assert_eq!(
        anonymous.get(&private_dist).await.status,
        StatusCode::NOT_FOUND
    );
    let repo_dists = anonymous.ok(REPO_DISTRIBUTIONS).await;
    assert_eq!(
        names(&repo_dists, "name"),
        std::slice::from_ref(&public_repo)
    );

    // The registry's catalog lists the same repositories.
    let catalog: Value = serde_json::from_slice(
        &RegistryClient::new(&ferry.url())
            .fetch(Method::GET, "/v2/_catalog", &[])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(catalog["repositories"], json!([public_repo]));

    // Reading is all: every change, remotes and tasks need the admin, and
    // wrong credentials are refused rather than read as anonymous.
    let public_href = public["pulp_href"].as_str().unwrap();
    let tag_href = tags["results"][0]["pulp_href"].as_str().unwrap();
    for (method, path, body) in [
        (Method::DELETE, public_href.to_string(), None),
        (
            Method::POST,
            format!("{public_href}remove/"),
            Some(json!({"content_units": [tag_href]})),
        ),
        (Method::POST, format!("{tag_href}refresh/"), None),
        (
            Method::POST,
            DISTRIBUTIONS.to_string(),
            Some(json!({"name": "x", "base_path": "x", "remote": remote})),
        ),
        (Method::GET, REMOTES.to_string(), None),
        (Method::GET, TASKS.to_string(), None),
    ] {
        anonymous.call(method.clone(), &path, body).await.assert_is(
            StatusCode::UNAUTHORIZED,
            &credentials_needed(),
            &format!("anonymous {method} {path}"),
        );
    }
    let wrong = PulpApi::as_user(&ferry, "admin", "not-the-password")
        .get(REPOSITORIES)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert_eq!(
        anonymous.ok(REPOSITORIES).await["count"],
        1,
        "nothing changed"
    );
}

#[tokio::test]
async fn browse_admin_closes_content_reads_catalog_and_tag_lists() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &upstream.url())],
        &FerryOptions {
            browse: Some("admin".into()),
            ..Default::default()
        },
    );
    // Pulls stay open.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    // The password ferry generated at first start, where the admin finds it.
    let password = std::fs::read_to_string(ferry.data_dir().join("admin-password")).unwrap();
    let (user, password) = ("admin", password.trim());
    let admin = Some((user, password));
    let (admin_api, anonymous) = (
        PulpApi::as_user(&ferry, user, password),
        PulpApi::anonymous(&ferry),
    );
    let repo = format!("{CACHE}/{BUSYBOX}");

    for path in [REPOSITORIES, TAGS, DISTRIBUTIONS, MANIFESTS] {
        anonymous.get(path).await.assert_is(
            StatusCode::UNAUTHORIZED,
            &credentials_needed(),
            &format!("anonymous GET {path}"),
        );
        assert_eq!(
            admin_api.get(path).await.status,
            StatusCode::OK,
            "admin GET {path}"
        );
    }
    assert_eq!(anonymous.get(STATUS).await.status, StatusCode::OK);

    // The catalog and the tag list: 401 with the Bearer challenge, to
    // anonymous clients and to those holding an anonymous token alike.
    let host = ferry.host();
    for (path, scope) in [
        ("/v2/_catalog".to_string(), "registry:catalog:*".to_string()),
        (
            format!("/v2/{repo}/tags/list"),
            format!("repository:{repo}:pull"),
        ),
    ] {
        let a = anonymous.get(&path).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "GET {path}: {}", a.text);
        assert_eq!(
            a.header("www-authenticate"),
            Some(
                format!("Bearer realm=\"http://{host}/token\",service=\"ferry\",scope=\"{scope}\"")
                    .as_str()
            ),
            "GET {path}"
        );
        assert_eq!(error_code(a.text.as_bytes()), "UNAUTHORIZED");
        let with_token = RegistryClient::new(&ferry.url())
            .fetch(Method::GET, &path, &[])
            .await;
        assert_eq!(
            with_token.status,
            StatusCode::UNAUTHORIZED,
            "anonymous token, {path}"
        );
        // The admin's token opens both.
        let as_admin = RegistryClient::new(&ferry.url())
            .with_credentials(user, password)
            .fetch(Method::GET, &path, &[])
            .await;
        assert_eq!(as_admin.status, StatusCode::OK, "admin, {path}");
        assert!(
            String::from_utf8_lossy(&as_admin.body).contains(BUSYBOX),
            "{path}"
        );
    }
    // And as skopeo sees it.
    let anonymous = skopeo_list_tags(&format!("{host}/{repo}"), None).await;
    assert!(
        !anonymous.success,
        "anonymous list-tags: {}",
        anonymous.stdout
    );
    let listed = skopeo_list_tags(&format!("{host}/{repo}"), admin)
        .await
        .expect_ok("skopeo list-tags as the admin");
    let tags: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(tags["Tags"], json!(["1.36"]));
}
