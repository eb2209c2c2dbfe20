//! What a hostile upstream or another web page can make a browser do with
//! ferry: manifests only ever served as manifests (never as a page), data
//! answers that no browser runs, and a management API that takes only JSON
//! bodies, read whole within a limit, and refuses writes from other
//! origins. The headless-Chromium side is in tests/browser/trust.test.js.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::inspect::has_blob;
use crate::support::pulp_api::{field_of, results, REMOTES};
use crate::support::*;

const LOGIN: &str = "/pulp/api/v3/login/";
const DATA_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

fn assert_data_only(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(
        headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        headers
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap()),
        Some(DATA_CSP),
        "{what}"
    );
}

async fn json_of(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {body:?}"))
}

/// The names of the remotes, as the admin lists them, sorted.
async fn remote_names(ferry: &Ferry) -> Vec<String> {
    let page = PulpApi::admin(ferry).ok(REMOTES).await;
    let mut names = field_of(results(&page), "name");
    names.sort();
    names
}

fn remote(name: &str) -> String {
    json!({ "name": name, "url": "http://127.0.0.1:9" }).to_string()
}

#[tokio::test]
async fn manifest_labelled_html_upstream_is_refused_unstored() {
    let (upstream, image) = upstream_with_busybox().await;
    let proxy = FakeFaultProxy::start(&upstream.url());
    proxy.set_fault(Fault::ManifestAs("text/html"));
    let ferry = Ferry::start_simple(&proxy.url());
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{BUSYBOX}");

    for reference in ["1.36", image.digest.as_str()] {
        let got = client.get_manifest(&repo, reference).await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{reference}");
        assert_eq!(error_code(&got.body), "UNKNOWN", "{reference}");
        let message = String::from_utf8_lossy(&got.body).into_owned();
        assert!(message.contains("text/html"), "{reference}: {message}");
        assert_data_only(&got.headers, reference);
    }
    assert!(
        proxy.count("GET", PathKind::Manifest) >= 2,
        "upstream was asked"
    );
    assert!(
        !has_blob(&ferry.data_dir(), &image.digest),
        "the refused manifest was stored"
    );

    // The upstream mends its ways: the same manifest now comes through, with
    // the type it declares.
    proxy.set_fault(Fault::None);
    let got = client.get_manifest(&repo, "1.36").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(digest_of(&got.body), image.digest);
    assert_eq!(got.header("content-type"), Some(image.media_type.as_str()));
}

#[tokio::test]
async fn manifests_carry_their_declared_type_and_data_headers() {
    let (upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());
    let client = RegistryClient::new(&ferry.url());
    let repo = format!("{CACHE}/{BUSYBOX}");
    for round in ["cold", "warm"] {
        let got = client.get_manifest(&repo, "1.36").await;
        assert_eq!(got.status, StatusCode::OK, "{round}");
        assert_eq!(digest_of(&got.body), image.digest, "{round}");
        assert_eq!(
            got.header("content-type"),
            Some("application/vnd.docker.distribution.manifest.v2+json"),
            "{round}"
        );
        assert_data_only(&got.headers, round);
    }
    let blob = client.get_blob(&repo, &image.layers()[0].digest).await;
    assert_eq!(blob.status, StatusCode::OK);
    assert_data_only(&blob.headers, "blob");
    let missing = client.get_manifest(&repo, "no-such-tag").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_data_only(&missing.headers, "OCI error");

    let http = http_client();
    for path in ["/pulp/api/v3/status/", REMOTES] {
        let resp = http
            .get(format!("{}{path}", ferry.url()))
            .send()
            .await
            .unwrap();
        assert_data_only(resp.headers(), path);
    }
}

/// `data` as a body of unknown length, sent chunked in `piece`-byte parts.
fn chunked(data: &[u8], piece: usize) -> reqwest::Body {
    let parts: Vec<Result<bytes::Bytes, std::io::Error>> = data
        .chunks(piece)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(parts))
}

#[tokio::test]
async fn api_takes_only_json_bodies_whole_and_bounded() {
    let (upstream, _) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let http = http_client();
    let url = format!("{}{REMOTES}", ferry.url());
    let admin = |rb: reqwest::RequestBuilder| rb.basic_auth("admin", Some(ADMIN_PASSWORD));

    // A text/plain body (what a form on any web page can send) is refused.
    let resp = admin(http.post(&url))
        .header("content-type", "text/plain")
        .body(remote("plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body = json_of(resp).await;
    assert!(
        body["detail"].as_str().unwrap().contains("text/plain"),
        "{body}"
    );

    // A chunked JSON body is read for real.
    let resp = admin(http.post(&url))
        .header("content-type", "application/json")
        .body(chunked(remote("chunked").as_bytes(), 11))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["name"], "chunked");

    // Past the 1 MiB limit: 413, with a length or chunked, and nothing changed.
    let href = created["pulp_href"].as_str().unwrap().to_string();
    let padding = "x".repeat(1100 * 1024);
    let big = json!({ "url": "http://127.0.0.1:10", "padding": padding }).to_string();
    let resp = admin(http.patch(format!("{}{href}", ferry.url())))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = admin(http.patch(format!("{}{href}", ferry.url())))
        .header("content-type", "application/json")
        .body(chunked(big.as_bytes(), 64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let now = json_of(
        admin(http.get(format!("{}{href}", ferry.url())))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        now["url"], "http://127.0.0.1:9",
        "the PATCH changed nothing"
    );

    // A write without a body is not read as `{}`.
    let resp = admin(http.patch(format!("{}{href}", ferry.url())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let names = remote_names(&ferry).await;
    assert!(names.contains(&"chunked".to_string()), "{names:?}");
    assert!(!names.contains(&"plain".to_string()), "{names:?}");
}

#[tokio::test]
async fn cross_origin_writes_are_refused_and_browsers_get_no_basic_challenge() {
    let (upstream, _) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let http = http_client();
    let url = format!("{}{REMOTES}", ferry.url());

    // Even with the password (a browser that cached it), a write another
    // origin's page sends is refused.
    for (header, value) in [
        ("origin", "http://127.0.0.1:1"),
        ("origin", "null"),
        ("sec-fetch-site", "same-site"),
    ] {
        let resp = http
            .post(&url)
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .header("content-type", "application/json")
            .header(header, value)
            .body(remote("forged"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{header}: {value}");
    }
    let names = remote_names(&ferry).await;
    assert!(!names.contains(&"forged".to_string()), "{names:?}");

    // A browser asking without credentials gets a 401 it will not turn into
    // a password prompt; scripts (HTTPie, curl, pulp-cli) still get the
    // Basic challenge they answer.
    let resp = http
        .get(&url)
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers().get("www-authenticate"), None);
    let httpie = Httpie::with_netrc("admin", "wrong-password");
    let out = httpie
        .script(
            "http --ignore-stdin --headers GET \"$URL\"",
            &[("URL", &url)],
        )
        .await;
    assert!(out.stdout.contains("401 Unauthorized"), "{}", out.stdout);
    assert!(
        out.stdout
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"ferry\""),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn dashboard_login_is_an_http_only_session_bound_to_its_origin() {
    let (upstream, _) = upstream_with_busybox().await;
    let ferry = Ferry::start_with(&[CacheSpec::new(CACHE, &upstream.url())], &[], &[]);
    let http = http_client();
    let base = ferry.url();
    let own = base.clone();

    let resp = http
        .post(format!("{base}{LOGIN}"))
        .basic_auth("admin", Some("wrong"))
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("set-cookie").is_none());

    let resp = http
        .post(format!("{base}{LOGIN}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain-HTTP page: {set_cookie}"
    );
    assert!(!set_cookie.contains(ADMIN_PASSWORD));
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let with_cookie = |method: Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .header("cookie", &cookie)
    };
    let resp = with_cookie(Method::GET, LOGIN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json_of(resp).await, json!({ "username": "admin" }));

    // A write with the cookie must show ferry's own page sent it.
    let post = |origin: Option<&str>| {
        let mut rb = with_cookie(Method::POST, REMOTES).header("content-type", "application/json");
        if let Some(origin) = origin {
            rb = rb.header("origin", origin.to_string());
        }
        rb
    };
    let resp = post(None).body(remote("no-origin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(Some("http://127.0.0.1:1"))
        .body(remote("other-port"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(Some(&own))
        .body(remote("own-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let names = remote_names(&ferry).await;
    assert!(names.contains(&"own-page".to_string()), "{names:?}");
    assert!(!names.contains(&"no-origin".to_string()), "{names:?}");

    // Over HTTPS the cookie is Secure.
    let resp = http
        .post(format!("{base}{LOGIN}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("origin", own.replace("http://", "https://"))
        .header("host", ferry.host())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));

    // Logging out ends the session.
    let resp = with_cookie(Method::DELETE, LOGIN)
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = with_cookie(Method::GET, REMOTES).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
