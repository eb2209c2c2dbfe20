//! Complete images and referrers (issue 15). What a user checks: after
//! pulling one platform of a multi-arch image from a cache with
//! `complete_images`, another platform pulls with the upstream stopped,
//! digests equal to what was pushed; after a prefetch with referrers, the
//! referrers API lists the signature/SBOM with the upstream stopped and its
//! bytes are served.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::images::{self, busybox, multi_arch, OCI_INDEX, OCI_MANIFEST};
use crate::support::inspect;
use crate::support::pulp_api::{href_of, DISTRIBUTIONS};
use crate::support::*;

const MULTI: &str = "library/multi";
const METRIC: &str = "ferry_complete_images_total";

/// Polls ferry's metrics until `cache` counts an index completed (bounded:
/// a minute); fails at once if one failed.
async fn completed(ferry: &Ferry, cache: &str) {
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..600 {
        poll.tick().await;
        let m = inspect::metrics(&ferry.url()).await;
        let failed = m.sum(METRIC, &[("cache", cache), ("outcome", "failed")]);
        assert_eq!(failed, 0.0, "a completion failed:\n{}", m.text);
        if m.sum(METRIC, &[("cache", cache), ("outcome", "completed")]) >= 1.0 {
            return;
        }
    }
    panic!("no image completed in {cache} within a minute");
}

/// `ferry` with the admin password from the environment, killed if the
/// test ends first.
fn ferry_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.env("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Asserts ferry serves `image` (manifest and every blob) under `repo`.
async fn assert_served(ferry: &Ferry, repo: &str, image: &Image, what: &str) {
    let client = RegistryClient::new(&ferry.url());
    let m = client.get_manifest(repo, &image.digest).await;
    assert_eq!(m.status, StatusCode::OK, "{what}: manifest");
    assert_eq!(m.body, image.manifest, "{what}: manifest bytes");
    for blob in &image.blobs {
        let b = client.get_blob(repo, &blob.digest).await;
        assert_eq!(b.status, StatusCode::OK, "{what}: blob {}", blob.digest);
        assert_eq!(b.body, blob.data, "{what}: blob {} bytes", blob.digest);
    }
}

/// podman pulls linux/amd64 of a two-platform index through a cache with
/// `complete_images = ["linux/amd64", "linux/arm64"]`; ferry fetches
/// linux/arm64 in the background; with the upstream stopped, podman pulls
/// linux/arm64 by the same tag and gets the pushed image.
#[tokio::test]
async fn pulling_one_platform_completes_the_others_for_an_offline_pull() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let index = multi_arch(Flavor::Oci, "complete");
    RegistryClient::new(&upstream.url())
        .push_image(MULTI, "1", &index)
        .await;
    let cache = CacheSpec::new(CACHE, &upstream.url())
        .toml(r#"complete_images = ["linux/amd64", "linux/arm64"]"#);
    let ferry = Ferry::start_with(&[cache], &[], &[]);
    let podman = Podman::new();
    let reference = via_ferry(&ferry, MULTI, "1");

    podman
        .pull(&reference, Some("amd64"), None)
        .await
        .expect_ok("podman pull --arch amd64");
    completed(&ferry, CACHE).await;
    upstream.stop();

    podman
        .pull(&reference, Some("arm64"), None)
        .await
        .expect_ok("podman pull --arch arm64 with the upstream stopped");
    let arm64 = index.child("arm64");
    let (id, _) = podman.image_id_and_digest(&reference).await;
    assert_eq!(
        format!("sha256:{id}"),
        arm64.config().digest,
        "arm64 config"
    );
    let repo_digests = podman.inspect(&reference, "{{json .RepoDigests}}").await;
    assert!(
        repo_digests.contains(&arm64.digest),
        "{repo_digests} lacks {}",
        arm64.digest
    );
    assert_served(&ferry, &format!("{CACHE}/{MULTI}"), arm64, "arm64 offline").await;
}

/// A remote made through the API with `complete_images: "all"`: a pull of
/// the index by digest (Docker manifest list) completes both platforms,
/// served with the upstream stopped. The field reads back as written,
/// resets with null, and a bad value is refused with the field named.
#[tokio::test]
async fn complete_images_through_the_api_all_then_reset() {
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let list = multi_arch(Flavor::Docker, "api");
    RegistryClient::new(&upstream.url())
        .push_image(MULTI, "2", &list)
        .await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let remote = api
        .create_remote(json!({"name": "up", "url": upstream.url(), "complete_images": "all"}))
        .await;
    assert_eq!(remote["complete_images"], "all", "{remote}");
    let remote_href = href_of(&remote);
    api.create_distribution("up", "up", &remote_href, false)
        .await;

    let client = RegistryClient::new(&ferry.url());
    let got = client
        .get_manifest(&format!("up/{MULTI}"), &list.digest)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, list.manifest);
    completed(&ferry, "up").await;
    upstream.stop();
    for arch in ["amd64", "arm64"] {
        assert_served(&ferry, &format!("up/{MULTI}"), list.child(arch), arch).await;
    }

    let listed = api
        .patch(&remote_href, json!({"complete_images": ["linux/arm64"]}))
        .await;
    api.task(listed, "patch complete_images").await;
    assert_eq!(
        api.ok(&remote_href).await["complete_images"],
        json!(["linux/arm64"])
    );
    let reset = api
        .patch(&remote_href, json!({"complete_images": null}))
        .await;
    api.task(reset, "reset complete_images").await;
    assert_eq!(api.ok(&remote_href).await["complete_images"], Value::Null);
    for bad in [json!("some"), json!(["linux"])] {
        let refused = api
            .patch(&remote_href, json!({"complete_images": bad}))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
        assert!(refused.text.contains("complete_images"), "{}", refused.text);
    }
}

/// An SBOM with `subject` pushed as cosign and oras do on a registry
/// without the referrers API (docker-registry 2.8): the artifact by digest
/// and an index of it under the `sha256-<hex>` tag; and a cosign signature
/// under `sha256-<hex>.sig`. A prefetch with referrers fetches them; with
/// the upstream stopped, ferry's referrers API lists the SBOM and serves
/// its bytes, and the signature tag is served.
#[tokio::test]
async fn prefetch_with_referrers_serves_them_offline() {
    const APP: &str = "example/app";
    const SBOM: &str = "application/vnd.example.sbom.v1";
    let mut upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let subject = busybox(Flavor::Oci, "signed");
    direct.push_image(APP, "v1", &subject).await;
    let sbom = images::artifact(&subject, SBOM, "{\"packages\":[]}");
    direct.push_image(APP, &sbom.digest, &sbom).await;
    let schema_tag = subject.digest.replace(':', "-");
    let referrers_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sbom.digest,
                       "size": sbom.manifest.len(), "artifactType": SBOM}],
    }))
    .unwrap();
    direct
        .push_manifest(
            APP,
            &schema_tag,
            OCI_INDEX,
            &bytes::Bytes::from(referrers_index),
        )
        .await;
    let signature = busybox(Flavor::Oci, "cosign signature");
    direct
        .push_image(APP, &format!("{schema_tag}.sig"), &signature)
        .await;

    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let distribution = api
        .list(DISTRIBUTIONS)
        .await
        .into_iter()
        .find(|d| d["base_path"] == CACHE)
        .map(|d| href_of(&d))
        .expect("the cache's distribution");
    let answer = api
        .post(
            &format!("{distribution}prefetch/"),
            json!({"references": [format!("{APP}:v1")], "referrers": true}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let task_href = answer.json()["task"].as_str().unwrap().to_string();
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let mut task = Value::Null;
    for _ in 0..600 {
        poll.tick().await;
        task = api.ok(&task_href).await;
        if task["state"] != "running" {
            break;
        }
    }
    assert_eq!(task["state"], "completed", "{task}");
    let bytes = task["progress_reports"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["code"] == "ferry.prefetch.bytes"))
        .map(|r| r["done"].as_u64().unwrap_or(0));
    let distinct: std::collections::BTreeMap<&str, u64> = [&subject, &sbom, &signature]
        .iter()
        .flat_map(|i| i.blobs.iter())
        .map(|b| (b.digest.as_str(), b.data.len() as u64))
        .collect();
    assert_eq!(
        bytes,
        Some(distinct.values().sum()),
        "the referrers' blobs count: {task}"
    );

    // The command line asks the same (`--referrers`): all is there now.
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), format!("{APP}:v1\n")).unwrap();
    let mut cmd = ferry_command();
    cmd.arg("prefetch").arg("--file").arg(list.path()).args([
        "--url",
        &ferry.url(),
        "--distribution",
        CACHE,
        "--referrers",
    ]);
    let cli = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("ferry prefetch finished within a minute")
        .expect("ferry prefetch ran");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{cli:?}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("completed: images 1/1,"),
        "{stdout}"
    );

    upstream.stop();
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{APP}");
    let listed = client
        .fetch(
            Method::GET,
            &format!("/v2/{repo}/referrers/{}", subject.digest),
            &[],
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let index: Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(
        index["manifests"],
        json!([{"mediaType": OCI_MANIFEST, "digest": sbom.digest,
                "size": sbom.manifest.len(), "artifactType": SBOM}]),
        "referrers with the upstream stopped: {index}"
    );
    assert_served(&ferry, &repo, &sbom, "the SBOM offline").await;
    assert_served(&ferry, &repo, &subject, "the image offline").await;
    let sig = client
        .get_manifest(&repo, &format!("{schema_tag}.sig"))
        .await;
    assert_eq!(sig.status, StatusCode::OK, "the cosign signature tag");
    assert_eq!(sig.body, signature.manifest);
    assert_served(&ferry, &repo, &signature, "the signature offline").await;
}

/// A platform that cannot be fetched (its layer deleted upstream) fails
/// the completion in the background only: the client's pull of the other
/// platform succeeds with the pushed bytes, the failure is counted in
/// `ferry_complete_images_total{outcome="failed"}` and logged with the
/// cause, and nothing counts as completed.
#[tokio::test]
async fn a_failed_completion_is_counted_and_logged_never_shown_to_the_client() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let direct = RegistryClient::new(&upstream.url());
    let index = multi_arch(Flavor::Oci, "broken arm64");
    direct.push_image(MULTI, "3", &index).await;
    let gone = &index.child("arm64").layers()[0].digest;
    let deleted = direct
        .send(
            Method::DELETE,
            &format!("/v2/{MULTI}/blobs/{gone}"),
            &[],
            None,
        )
        .await;
    assert_eq!(
        deleted.status(),
        StatusCode::ACCEPTED,
        "delete {gone} upstream"
    );
    let cache = CacheSpec::new(CACHE, &upstream.url()).toml(r#"complete_images = "all""#);
    let ferry = Ferry::start_with(&[cache], &[], &[]);

    assert_skopeo_copy_matches(&via_ferry(&ferry, MULTI, "3"), index.child("amd64")).await;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let mut failed = 0.0;
    for _ in 0..600 {
        poll.tick().await;
        let m = inspect::metrics(&ferry.url()).await;
        failed = m.sum(METRIC, &[("cache", CACHE), ("outcome", "failed")]);
        if failed >= 1.0 {
            assert_eq!(
                m.sum(METRIC, &[("cache", CACHE), ("outcome", "completed")]),
                0.0
            );
            break;
        }
    }
    // At least once: a pull after a failure tries again (skopeo may ask
    // for the index twice).
    assert!(failed >= 1.0, "the failed completion is counted");
    let log = ferry.log();
    assert!(
        log.contains("could not complete the image") && log.contains(gone.as_str()),
        "the failure is logged with the blob: {log}"
    );
}
