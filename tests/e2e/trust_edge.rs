//! The connection edge: private pulls over ferry's HTTPS listener, the
//! token realm and API links built from the listener (never an unchecked
//! Host), tokens scoped to the repositories asked for, time limits on slow
//! and idle clients, the connection cap, throttled password guessing, and
//! a busy port failing before anything is created.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::pulp_api::{DISTRIBUTIONS, REMOTES};
use crate::support::tls::TestCa;
use crate::support::*;

/// ferry from a config file with `extra` top-level lines (the admin
/// password is set there, as `start_opts` passes no environment).
fn ferry_with(extra: &str, tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Ferry {
    Ferry::start_opts(
        &[],
        &FerryOptions {
            tls,
            extra_toml: Some(format!("admin_password = {ADMIN_PASSWORD:?}\n{extra}")),
            ..Default::default()
        },
    )
}

/// Creates a remote for `upstream` and one distribution per `(base_path,
/// private)`, through the management API as the admin.
async fn distributions(ferry: &Ferry, upstream: &str, wanted: &[(&str, bool)]) {
    let api = PulpApi::admin(ferry);
    let remote = api.remote_href("up", upstream).await;
    for (base_path, private) in wanted {
        let body = json!({"name": base_path, "base_path": base_path,
            "remote": remote, "private": private});
        let resp = api.post(DISTRIBUTIONS, body).await;
        assert!(
            resp.status.is_success(),
            "create {base_path}: {}",
            resp.status
        );
    }
}

/// The `realm="..."` of a Bearer challenge.
fn realm(challenge: &str) -> &str {
    challenge
        .split("realm=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no realm in {challenge:?}"))
}

#[tokio::test]
async fn private_pulls_over_https_with_skopeo_and_podman_follow_an_https_realm() {
    let (upstream, image) = upstream_with_busybox().await;
    let ca = TestCa::new("ferry-edge-ca").await;
    let (cert, key) = ca.issue_server_cert().await;
    let ferry = ferry_with("", Some((cert, key)));
    distributions(&ferry, &upstream.url(), &[("private", true)]).await;
    let repo = format!("private/{BUSYBOX}");

    // The challenge on the HTTPS listener sends clients to HTTPS.
    let url = format!("https://{}/v2/{repo}/manifests/1.36", ferry.tls_host());
    let resp = ca.http_client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert_eq!(
        realm(challenge),
        format!("https://{}/token", ferry.tls_host()),
        "challenge: {challenge}"
    );

    let image_ref = image_ref(ferry.tls_host(), &repo, "1.36");
    let dest = tempfile::tempdir().unwrap();
    skopeo_copy(&image_ref, dest.path(), Some(("admin", ADMIN_PASSWORD)))
        .await
        .expect_ok("skopeo copy over HTTPS with --src-creds");
    assert_dir_matches(dest.path(), &image);

    let podman = Podman::new();
    podman
        .login(ferry.tls_host(), "admin", ADMIN_PASSWORD)
        .await
        .expect_ok("podman login over HTTPS");
    podman
        .assert_pulls(
            &image_ref,
            &image.digest,
            "podman pull over HTTPS after login",
        )
        .await;
}

#[tokio::test]
async fn a_host_header_with_quotes_is_reflected_neither_in_the_realm_nor_in_links() {
    let (upstream, _image) = upstream_with_busybox().await;
    let ferry = ferry_with("", None);
    distributions(
        &ferry,
        &upstream.url(),
        &[("private", true), ("other", false)],
    )
    .await;
    let evil = "evil.example\",foo=\"bar";
    let http = http_client();

    let resp = http
        .get(format!(
            "{}/v2/private/{BUSYBOX}/manifests/1.36",
            ferry.url()
        ))
        .header("host", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(!challenge.contains("evil"), "Host reflected: {challenge}");
    assert_eq!(realm(challenge), format!("{}/token", ferry.url()));

    // The API's `next` link of a paged list.
    let resp = http
        .get(format!("{}{DISTRIBUTIONS}?limit=1", ferry.url()))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("host", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let next = page["next"].as_str().expect("a next link");
    assert!(!next.contains("evil"), "Host reflected: {next}");
    assert!(
        next.starts_with(&format!("{}/", ferry.url())),
        "next: {next}"
    );
}

#[tokio::test]
async fn a_token_scoped_to_one_private_repository_does_not_open_another() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = ferry_with("", None);
    distributions(&ferry, &upstream.url(), &[("alpha", true), ("beta", true)]).await;
    let (a, b) = (format!("alpha/{BUSYBOX}"), format!("beta/{BUSYBOX}"));
    let http = http_client();
    let token = PulpApi::admin(&ferry)
        .get(&format!(
            "/token?service=ferry&scope=repository:{a}:pull,push"
        ))
        .await
        .json();
    let token = token["token"].as_str().unwrap().to_string();
    let manifest = |repo: String| {
        http.get(format!("{}/v2/{repo}/manifests/1.36", ferry.url()))
            .bearer_auth(&token)
            .header(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
    };
    let opened = manifest(a).await.unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(opened.bytes().await.unwrap(), image.manifest);
    let refused = manifest(b.clone()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!("scope=\"repository:{b}:pull\"")),
        "challenge: {challenge}"
    );
}

/// Reads until the server closes the connection (EOF or reset), bounded
/// by `limit`; returns what was read. Panics if it stays open.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection still open after {limit:?}");
    got
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_cut_off() {
    let ferry = ferry_with(
        "client_header_timeout_secs = 2\nclient_idle_timeout_secs = 3",
        None,
    );
    let limit = Duration::from_secs(60);

    // A client that never sends anything.
    let mut silent = TcpStream::connect(ferry.host()).await.unwrap();
    read_until_closed(&mut silent, limit).await;

    // A kept-alive connection after one answered request.
    let mut kept = TcpStream::connect(ferry.host()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut kept, limit).await;
    assert!(
        String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );

    // A client sending its headers a byte at a time, forever (bounded):
    // ferry closes it, so a write fails or a read sees the end.
    let mut slow = TcpStream::connect(ferry.host()).await.unwrap();
    let header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut closed = false;
    for i in 0..600 {
        let byte = header.get(i).copied().unwrap_or(b'a');
        if slow.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            // A 408 answer, or nothing yet.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    assert!(closed, "a client trickling its headers was never cut off");
}

#[tokio::test]
async fn a_flood_past_the_connection_cap_is_refused_while_health_checks_answer() {
    let ferry = ferry_with("max_connections = 8", None);
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(TcpStream::connect(ferry.host()).await.unwrap());
    }
    // Wait (bounded) for answers: refused connections may be closed at once
    // while the short-lived refusal slots are taken.
    let http = http_client();
    let answer = |path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", ferry.url());
        async move {
            for _ in 0..300 {
                if let Ok(resp) = http.get(&url).send().await {
                    let status = resp.status();
                    return (status, resp.text().await.unwrap_or_default());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no answer on {url} in 300 tries");
        }
    };
    let (status, body) = answer("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = answer("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = answer("/v2/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("too many connections"), "{body}");
    drop(flood);
    // Once the flood is gone, normal requests are served again.
    let mut metrics = String::new();
    for _ in 0..300 {
        let (status, body) = answer("/metrics").await;
        if status == StatusCode::OK {
            metrics = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferry_connections_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refused-connections metric in:\n{metrics}"));
    assert!(refused >= 1);
}

#[tokio::test]
async fn wrong_admin_passwords_are_throttled_per_address_and_counted() {
    let ferry = ferry_with("", None);
    let http = http_client();
    let statuses = |url: String, password: &'static str, client: reqwest::Client| async move {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let resp = client
                .get(&url)
                .basic_auth("admin", Some(password))
                .send()
                .await
                .unwrap();
            seen.push(resp.status());
        }
        seen
    };
    let api = format!("{}{REMOTES}", ferry.url());
    let token = format!("{}/token?service=ferry", ferry.url());
    let seen = statuses(api.clone(), "wrong-guess", http.clone()).await;
    assert_eq!(seen[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "API: {seen:?}"
    );
    let seen = statuses(token, "wrong-guess", http.clone()).await;
    assert!(
        seen.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "/token after the API's failures: {seen:?}"
    );
    // The right password from this address waits too; from another works.
    let here = PulpApi::admin(&ferry).get(REMOTES).await;
    assert_eq!(here.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(here.header("retry-after").is_some());
    let elsewhere = PulpApi::as_user_from(&ferry, "admin", ADMIN_PASSWORD, [127, 0, 0, 2])
        .get(REMOTES)
        .await;
    assert_eq!(elsewhere.status, StatusCode::OK);

    let metrics = http
        .get(format!("{}/metrics", ferry.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |needle: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("ferry_login_failures_total") && l.contains(needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(count("wrong_password") >= 5, "{metrics}");
    assert!(count("throttled") >= 10, "{metrics}");
    let log = ferry.log();
    assert!(log.contains("admin login failed"), "no failure logged");
    assert!(!log.contains("wrong-guess"), "a password was logged");
}

#[tokio::test]
async fn a_tls_handshake_on_the_plain_port_gets_a_400_and_no_error_log() {
    let ferry = ferry_with("", None);
    let mut stream = TcpStream::connect(ferry.host()).await.unwrap();
    // The start of a TLS ClientHello, as podman's probe sends.
    stream
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Still serving, and nothing alarming in the log.
    let health = PulpApi::anonymous(&ferry).get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    let log = ferry.log();
    assert!(
        !log.lines().any(|l| l.contains("ERROR")),
        "error logged for a TLS probe:\n{log}"
    );
}

#[tokio::test]
async fn a_busy_port_fails_first_and_creates_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data_dir)
        .env_remove("FERRY_ADMIN_PASSWORD")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("ferry did not exit within 60 s on a busy port")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!data_dir.exists(), "the data dir was created: {stderr}");
    drop(taken);
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stored_blob_is_cut_off() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let image = crate::support::images::large(32 << 20);
    RegistryClient::new(&upstream.url())
        .push_image(BUSYBOX, "big", &image)
        .await;
    let ferry = Ferry::start_opts(
        &[CacheSpec::new(CACHE, &upstream.url())],
        &FerryOptions {
            extra_toml: Some("client_write_timeout_secs = 2".into()),
            ..Default::default()
        },
    );
    let layer = &image.layers()[0];
    let path = format!("/v2/{CACHE}/{BUSYBOX}/blobs/{}", layer.digest);
    // Stored first, by a client that reads it all.
    let full = get_body(&format!("{}{path}", ferry.url()), &[])
        .await
        .unwrap();
    assert!(full.complete());

    let mut stalled = TcpStream::connect(ferry.host()).await.unwrap();
    stalled
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // ferry gives up on the write (observable in its log) ...
    let mut gave_up = false;
    for _ in 0..600 {
        if ferry
            .log()
            .contains("the client stopped reading the response")
        {
            gave_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gave_up, "ferry kept a reader that stopped reading");
    // ... and closed the connection before the blob was through.
    let got = read_until_closed(&mut stalled, Duration::from_secs(60)).await;
    assert!(got.len() < layer.data.len(), "the whole blob arrived");
}
