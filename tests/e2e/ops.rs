//! Operating ferry: HTTPS with a real client and a certificate swapped on
//! SIGHUP, the metrics an operator graphs, the health endpoints, and a
//! clean stop on SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::inspect::{metrics, tmp_files};
use crate::support::tls::TestCa;
use crate::support::*;

// ---------------------------------------------------------------- TLS ---

/// Replaces `dest` atomically with a copy of `src` (as an operator's
/// certificate renewal would).
fn replace_file(src: &Path, dest: &Path) {
    let tmp = dest.with_extension("new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// GET `https://HOST/v2/` with a fresh client (so a fresh handshake) that
/// trusts only `ca`. Err carries the TLS error.
async fn https_get_trusting(host: &str, ca: &Path) -> Result<StatusCode, String> {
    let pem = std::fs::read(ca).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client
        .get(format!("https://{host}/v2/"))
        .send()
        .await
        .map(|r| r.status())
        .map_err(|e| format!("{e:?}"))
}

/// The request failed because the client does not trust the certificate
/// ferry presented (rustls: issued by a CA it does not know), not for any
/// other reason (a refused connection, a timeout, a crash).
fn assert_untrusted(got: Result<StatusCode, String>, what: &str) {
    match got {
        Err(e) if e.contains("UnknownIssuer") => {}
        other => panic!("{what}: want a certificate from an unknown issuer, got {other:?}"),
    }
}

/// Issue 6 (1): podman pulls over HTTPS verifying ferry's certificate
/// against a test CA; after the certificate files are replaced by one from
/// another CA and ferry gets SIGHUP, clients trusting only the new CA get
/// in (and those trusting only the old one no longer do), same process.
#[tokio::test]
async fn podman_pulls_over_https_and_sighup_swaps_the_certificate() {
    let (upstream, image) = upstream_with_busybox().await;
    let pki = tempfile::tempdir().unwrap();
    let ca1 = TestCa::new("ferry e2e CA one").await;
    let (cert1, key1) = ca1.issue_server_cert().await;
    let live = pki.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("server.crt"), live.join("server.key"));
    replace_file(&cert1, &cert);
    replace_file(&key1, &key);

    let mut ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &upstream.url())],
        &FerryOptions {
            tls: Some((cert.clone(), key.clone())),
            ..Default::default()
        },
    );
    let reference = image_ref(ferry.tls_host(), &format!("{CACHE}/{BUSYBOX}"), "1.36");

    let podman = Podman::new();
    podman
        .pull_verified(&reference, &ca1.trust_dir())
        .await
        .expect_ok("podman pull over HTTPS trusting CA one");
    let (id, digest) = podman.image_id_and_digest(&reference).await;
    assert_eq!(digest, image.digest, "manifest digest over HTTPS");
    assert_eq!(format!("sha256:{id}"), image.config().digest);

    // The second CA: not trusted by ferry's current certificate.
    let ca2 = TestCa::new("ferry e2e CA two").await;
    let (cert2, key2) = ca2.issue_server_cert().await;
    let refused = Podman::new()
        .pull_verified(&reference, &ca2.trust_dir())
        .await;
    assert!(
        !refused.success,
        "podman trusting only CA two pulled before the swap: verification is not on"
    );
    assert!(
        refused.stderr.contains("x509") || refused.stderr.contains("certificate"),
        "podman failed for another reason than the certificate: {}",
        refused.stderr
    );

    // New files on disk change nothing until SIGHUP.
    replace_file(&cert2, &cert);
    replace_file(&key2, &key);
    assert_untrusted(
        https_get_trusting(ferry.tls_host(), &ca2.cert).await,
        "ferry picked up the new certificate without SIGHUP",
    );
    assert_eq!(
        https_get_trusting(ferry.tls_host(), &ca1.cert).await,
        Ok(StatusCode::OK)
    );

    let pid = ferry.pid();
    ferry.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match https_get_trusting(ferry.tls_host(), &ca2.cert).await {
            Ok(status) => {
                assert_eq!(status, StatusCode::OK);
                break;
            }
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "a client trusting only CA two still fails 20 s after SIGHUP: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ferry.is_running(), "ferry died on SIGHUP");
    assert_eq!(ferry.pid(), pid, "ferry was restarted");
    assert!(
        ferry.log().contains("TLS certificate reloaded"),
        "no reload line in the log"
    );
    assert_untrusted(
        https_get_trusting(ferry.tls_host(), &ca1.cert).await,
        "the old certificate is still served after SIGHUP",
    );

    let podman2 = Podman::new();
    podman2
        .pull_verified(&reference, &ca2.trust_dir())
        .await
        .expect_ok("podman pull over HTTPS trusting CA two after SIGHUP");
    let (_, digest) = podman2.image_id_and_digest(&reference).await;
    assert_eq!(digest, image.digest);
}

// ------------------------------------------------------------ metrics ---

/// Issue 6 (2): a cold pull counts misses and upstream bytes; a warm pull
/// of the same image counts hits and fetches nothing more upstream.
#[tokio::test]
async fn metrics_count_misses_then_hits_and_fetch_upstream_once() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let image_size =
        image.manifest.len() as f64 + image.blobs.iter().map(|b| b.data.len() as f64).sum::<f64>();
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    const CACHE_REQ: &str = "ferry_cache_requests_total";
    const FETCHED: &str = "ferry_upstream_fetched_bytes_total";
    const SERVED: &str = "ferry_served_bytes_total";

    let start = metrics(&ferry.url()).await;
    assert_eq!(start.sum(FETCHED, &[]), 0.0, "fresh ferry fetched bytes");

    assert_skopeo_copy_matches(&reference, &image).await;
    let cold = metrics(&ferry.url()).await;
    for kind in ["manifest", "blob"] {
        assert!(
            cold.sum(CACHE_REQ, &[("kind", kind), ("result", "miss")]) > 0.0,
            "no {kind} miss counted after a cold pull:\n{}",
            cold.text
        );
    }
    assert!(
        cold.sum(FETCHED, &[]) >= image_size,
        "upstream fetched {} bytes, image is {image_size}",
        cold.sum(FETCHED, &[])
    );
    assert!(cold.sum(SERVED, &[]) >= image_size);
    assert_eq!(
        cold.sum("ferry_store_objects", &[]),
        image.blobs.len() as f64 + 1.0,
        "store objects (blobs and the manifest) after one image:\n{}",
        cold.text
    );

    assert_skopeo_copy_matches(&reference, &image).await;
    let warm = metrics(&ferry.url()).await;
    for kind in ["manifest", "blob"] {
        let (before, after) = (
            cold.sum(CACHE_REQ, &[("kind", kind), ("result", "hit")]),
            warm.sum(CACHE_REQ, &[("kind", kind), ("result", "hit")]),
        );
        assert!(
            after > before,
            "{kind} hits {before} -> {after} on a warm pull"
        );
        assert_eq!(
            warm.sum(CACHE_REQ, &[("kind", kind), ("result", "miss")]),
            cold.sum(CACHE_REQ, &[("kind", kind), ("result", "miss")]),
            "{kind} misses grew on a warm pull"
        );
    }
    assert_eq!(
        warm.sum(FETCHED, &[]),
        cold.sum(FETCHED, &[]),
        "a warm pull fetched bytes upstream"
    );
    assert!(warm.sum(SERVED, &[]) >= cold.sum(SERVED, &[]) + image_size);

    let manifests = warm.sum(
        "ferry_http_requests_total",
        &[("route", "manifests"), ("method", "GET"), ("status", "200")],
    );
    assert!(
        manifests >= 2.0,
        "route=\"manifests\" GET 200 counted {manifests}:\n{}",
        warm.text
    );
    assert!(warm.sum("ferry_http_requests_total", &[("route", "blobs")]) > 0.0);
    assert_eq!(warm.sum("ferry_downloads_in_flight", &[]), 0.0);
    assert_eq!(warm.sum("ferry_upstream_errors_total", &[]), 0.0);
}

// ------------------------------------------------------------- health ---

/// Issue 6 (3).
#[tokio::test]
async fn healthz_and_readyz_answer_200() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let ferry = Ferry::start_simple(&upstream.url());
    let http = http_client();
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let resp = http
            .get(format!("{}{path}", ferry.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.text().await.unwrap().trim(), body, "{path}");
    }
    let m = metrics(&ferry.url()).await;
    assert!(
        m.sum(
            "ferry_http_requests_total",
            &[("route", "health"), ("status", "200")]
        ) >= 2.0,
        "{}",
        m.text
    );
}

// ----------------------------------------------------------- shutdown ---

/// Issue 6 (4): SIGTERM on an idle ferry (one idle keep-alive connection
/// open) exits 0 well before the drain period, leaving no temp files; the
/// data directory serves again afterwards.
#[tokio::test]
async fn sigterm_when_idle_exits_zero_promptly_without_temp_files() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let mut ferry = Ferry::start_simple(&upstream.url());
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
    // An idle keep-alive connection, as a client's pool would hold.
    let http = http_client();
    let resp = http
        .get(format!("{}/healthz", ferry.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap();

    ferry.signal("TERM");
    let status = ferry
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("ferry still running 10 s after SIGTERM:\n{}", ferry.log()));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    assert!(ferry.log().contains("shutting down"));
    assert_eq!(tmp_files(&ferry.data_dir()), Vec::<PathBuf>::new());

    // What was cached is intact: served with the upstream gone.
    upstream.stop();
    ferry.start_again();
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;
}
