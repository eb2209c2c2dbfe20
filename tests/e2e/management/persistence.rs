//! What outlives the process: the generated admin password, and every
//! change the API acknowledged (across a crash).

use reqwest::StatusCode;

use crate::support::pulp_api::{self, REMOTES};
use crate::support::*;

use super::raw_manifest_get;

/// The generated admin password.
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
        PulpApi::as_user(&ferry, "admin", &password)
            .get(REMOTES)
            .await
            .status,
        StatusCode::OK
    );
    ferry.restart();
    assert_eq!(
        PulpApi::as_user(&ferry, "admin", &password)
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
        PulpApi::as_user(&ferry, "admin", ADMIN_PASSWORD)
            .get(REMOTES)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// A 201/202 from the API means the change is stored: a crash (SIGKILL)
/// right after the answer must not undo it. Each step is checked after a
/// kill and a restart; all lost changes are reported together.
#[tokio::test]
async fn acknowledged_api_changes_survive_a_crash() {
    let (upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_with(&[], &[], &[]);
    let mut lost = Vec::<String>::new();

    // Creates.
    let api = PulpApi::admin(&ferry);
    let r1 = api.remote_href("r1", &upstream.url()).await;
    let d1 = api.create_distribution("d1", "d1", &r1, false).await;
    ferry.restart(); // SIGKILL, start again
    let api = PulpApi::admin(&ferry);
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
    let r2 = api.remote_href("r2", &upstream.url()).await;
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
    let repo = pulp_api::href_of(&repo);
    api.task(api.delete(&repo).await, "DELETE repository").await;
    api.task(api.delete(&d2).await, "DELETE distribution").await;
    ferry.restart();
    let api = PulpApi::admin(&ferry);
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
    let status = raw_manifest_get(&ferry, &format!("d2/{BUSYBOX}"), "1.36")
        .await
        .status;
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
