//! A Docker-registry token issuer (the `realm` of a Bearer challenge), like
//! auth.docker.io: `GET /token?service=..&scope=repository:NAME:pull` answers
//! `{"token", "access_token", "expires_in"}` with an RS256 JWT that
//! docker-registry accepts because its `x5c` certificate is the
//! `rootcertbundle`. JWTs are signed by shelling out to `openssl`, so no
//! crypto crate is needed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;
use warp::Filter;

use super::tls::TestCa;
use super::tls_front::TlsFront;
use super::util::{run_bounded, BackgroundServer};

pub const SERVICE: &str = "ferry-e2e-registry";
pub const ISSUER: &str = "ferry-e2e-issuer";

pub struct TokenIssuer {
    /// The `realm` to put in docker-registry's config.
    pub realm: String,
    /// PEM certificate whose key signs the tokens (docker-registry's
    /// `rootcertbundle`).
    pub cert_path: PathBuf,
    requests: Arc<AtomicUsize>,
    _server: BackgroundServer,
    /// The HTTPS front of [`TokenIssuer::start_https`].
    _front: Option<TlsFront>,
    _dir: tempfile::TempDir,
}

struct Signer {
    key_path: PathBuf,
    /// Base64 (standard) DER of the certificate, for the JWT `x5c` header.
    cert_der_b64: String,
}

impl TokenIssuer {
    /// Starts an issuer. With `required` credentials, requests without the
    /// matching Basic `Authorization` get 401 (as Docker Hub does for private
    /// repositories).
    pub async fn start(required: Option<(&str, &str)>) -> TokenIssuer {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.pem");
        let cert_path = dir.path().join("cert.pem");
        let mut cmd = tokio::process::Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=issuer",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path);
        run_bounded(cmd, Duration::from_secs(60))
            .await
            .expect_ok("openssl req");
        // A PEM body is exactly the standard base64 of the DER.
        let pem = std::fs::read_to_string(&cert_path).unwrap();
        let cert_der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();

        let signer = Arc::new(Signer {
            key_path,
            cert_der_b64,
        });
        let requests = Arc::new(AtomicUsize::new(0));
        let expected_auth =
            required.map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));

        let counter = requests.clone();
        let route = warp::get()
            .and(warp::path("token"))
            .and(warp::path::end())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("authorization"))
            .then(move |query: String, auth: Option<String>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let signer = signer.clone();
                let expected_auth = expected_auth.clone();
                async move { answer(&signer, &query, auth, expected_auth).await }
            });
        let server = BackgroundServer::start(move |l| warp::serve(route).incoming(l).run());
        TokenIssuer {
            realm: format!("{}/token", server.url()),
            cert_path,
            requests,
            _server: server,
            _front: None,
            _dir: dir,
        }
    }

    /// The same issuer served over HTTPS with a certificate of `ca`, like
    /// auth.docker.io: ferry sends upstream credentials to a realm on
    /// another origin only over HTTPS.
    pub async fn start_https(required: Option<(&str, &str)>, ca: &TestCa) -> TokenIssuer {
        let mut issuer = TokenIssuer::start(required).await;
        let (cert, key) = ca.issue_server_cert().await;
        let front = TlsFront::start(&cert, &key, issuer._server.addr);
        issuer.realm = format!("{}/token", front.url());
        issuer._front = Some(front);
        issuer
    }

    /// How many token requests were received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn answer(
    signer: &Signer,
    query: &str,
    auth: Option<String>,
    expected: Option<String>,
) -> warp::reply::Response {
    use warp::Reply;
    let subject = match (&expected, &auth) {
        (None, _) => "anonymous".to_string(),
        (Some(want), Some(got)) if want == got => "user".to_string(),
        _ => {
            let body = json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]});
            let reply = warp::reply::with_status(
                warp::reply::json(&body),
                warp::http::StatusCode::UNAUTHORIZED,
            );
            return warp::reply::with_header(reply, "www-authenticate", "Basic realm=\"token\"")
                .into_response();
        }
    };
    let access: Vec<_> = query_values(query, "scope")
        .iter()
        .filter_map(|s| scope_access(s))
        .collect();
    let jwt = signer.sign(&subject, access).await;
    warp::reply::json(&json!({"token": jwt, "access_token": jwt, "expires_in": 300}))
        .into_response()
}

/// `repository:library/busybox:pull,push` → the JWT `access` entry granting
/// exactly what was asked.
fn scope_access(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
}

/// All values of `key` in a raw query string, percent-decoded.
fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Signer {
    async fn sign(&self, subject: &str, access: Vec<serde_json::Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [self.cert_der_b64]});
        let claims = json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", rand_suffix()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        // `openssl dgst -sha256 -sign` writes the PKCS#1 v1.5 signature,
        // which is exactly RS256's.
        let sig = openssl_sign(&self.key_path, signing_input.as_bytes()).await;
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn rand_suffix() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn openssl_sign(key: &std::path::Path, data: &[u8]) -> Vec<u8> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn openssl dgst");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(data).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("openssl dgst timed out")
        .unwrap();
    assert!(
        out.status.success(),
        "openssl dgst: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
