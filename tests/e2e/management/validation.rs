//! Validation errors and authentication, with exact bodies (Pulp's
//! DRF-style field errors, 404 `Not found.`, 401 with a Basic challenge).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::pulp_api::{
    field_of, DISTRIBUTIONS, NO_SUCH_ID, OPENAPI, REMOTES, REPOSITORIES, REPO_DISTRIBUTIONS,
    STATUS, TAGS, TASKS,
};
use crate::support::*;

use super::{invalid_url, overlaps, required, unique};

#[tokio::test]
async fn validation_errors_and_authentication_answer_like_pulp() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let up = upstream.url();

    // Remotes.
    let cases: Vec<(Value, Value)> = vec![
        (json!({"name": "no-url"}), required(&["url"])),
        (json!({"url": up}), required(&["name"])),
        (
            json!({"name": "bad-url", "url": "not a url"}),
            invalid_url(),
        ),
        (
            json!({"name": "ftp-url", "url": "ftp://127.0.0.1/"}),
            invalid_url(),
        ),
    ];
    for (body, expected) in &cases {
        api.post(REMOTES, body.clone()).await.assert_is(
            StatusCode::BAD_REQUEST,
            expected,
            &format!("POST remote {body}"),
        );
    }
    let remote_href = api.remote_href("up", &up).await;
    api.post(REMOTES, json!({"name": "up", "url": up}))
        .await
        .assert_is(StatusCode::BAD_REQUEST, &unique("name"), "second up");
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
    api.patch(&remote_href, json!({"url": "nope"}))
        .await
        .assert_is(StatusCode::BAD_REQUEST, &invalid_url(), "PATCH url");
    api.put(&remote_href, json!({"url": up})).await.assert_is(
        StatusCode::BAD_REQUEST,
        &required(&["name"]),
        "PUT without name",
    );
    assert_eq!(api.ok(&remote_href).await["url"], up.as_str());
    let remotes = api.list(REMOTES).await;
    assert_eq!(
        remotes.len(),
        1,
        "rejected creates left remotes behind: {remotes:?}"
    );

    // Distributions.
    let unknown_remote = format!("{REMOTES}{NO_SUCH_ID}/");
    api.post(
        DISTRIBUTIONS,
        json!({"name": "d", "base_path": "d", "remote": unknown_remote}),
    )
    .await
    .assert_is(
        StatusCode::BAD_REQUEST,
        &json!({"remote": ["Invalid hyperlink - Object does not exist."]}),
        "unknown remote",
    );
    api.post(DISTRIBUTIONS, json!({})).await.assert_is(
        StatusCode::BAD_REQUEST,
        &required(&["name", "base_path", "remote"]),
        "empty distribution",
    );
    api.create_distribution("cache-a", "cache-a", &remote_href, false)
        .await;
    api.create_distribution("cache-b", "team/cache-b", &remote_href, false)
        .await;
    let overlap = overlaps();
    for base_path in ["cache-a", "cache-a/sub", "team", "team/cache-b/x"] {
        api.post(
            DISTRIBUTIONS,
            json!({"name": format!("new-{base_path}"), "base_path": base_path, "remote": remote_href}),
        )
        .await
        .assert_is(
            StatusCode::BAD_REQUEST,
            &overlap,
            &format!("base_path {base_path}"),
        );
    }
    api.post(
        DISTRIBUTIONS,
        json!({"name": "cache-a", "base_path": "elsewhere", "remote": remote_href}),
    )
    .await
    .assert_is(StatusCode::BAD_REQUEST, &unique("name"), "second cache-a");
    let dists = api.list(DISTRIBUTIONS).await;
    assert_eq!(field_of(&dists, "name"), ["cache-a", "cache-b"]);

    // A remote in use cannot be deleted.
    let v = api
        .delete(&remote_href)
        .await
        .assert_detail(StatusCode::BAD_REQUEST, "DELETE remote in use");
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
        api.get(&path)
            .await
            .assert_is(StatusCode::NOT_FOUND, &not_found, &format!("GET {path}"));
    }
    for path in [
        format!("{REMOTES}{NO_SUCH_ID}/"),
        format!("{DISTRIBUTIONS}{NO_SUCH_ID}/"),
    ] {
        for a in [
            api.patch(&path, json!({"name": "x"})).await,
            api.delete(&path).await,
        ] {
            a.assert_is(StatusCode::NOT_FOUND, &not_found, &path);
        }
    }
    api.delete(&format!("{REPOSITORIES}{NO_SUCH_ID}/"))
        .await
        .assert_is(StatusCode::NOT_FOUND, &not_found, "DELETE repository");

    // Authentication: none, a wrong password, a wrong user.
    let anonymous = PulpApi::anonymous(&ferry);
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
        let wrong_password = PulpApi::as_user_from(&ferry, "admin", "not-the-password", source);
        let wrong_user = PulpApi::as_user_from(&ferry, "root", ADMIN_PASSWORD, source);
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
            let what = format!("{who} GET {path}");
            a.assert_is(StatusCode::UNAUTHORIZED, &json!({"detail": detail}), &what);
            assert_eq!(
                a.header("www-authenticate"),
                Some("Basic realm=\"ferry\""),
                "{what}"
            );
        }
    }
    // Nor can they change anything.
    let wrong_password = PulpApi::as_user_from(&ferry, "admin", "not-the-password", [127, 0, 0, 9]);
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
    for path in [STATUS, OPENAPI] {
        assert_eq!(anonymous.get(path).await.status, StatusCode::OK, "{path}");
    }
}
