//! Small shared helpers: ports, digests, deterministic bytes, bounded
//! commands, HTTP clients and a background server thread.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A port that was free a moment ago, for servers whose port must be known
/// before they start (docker-registry's config file; everything in-process
/// binds port 0 instead). Taken from 20000-32767, below Linux's ephemeral
/// range, so that port-0 listeners and outgoing connections of parallel
/// tests cannot grab it while the registry is (re)starting.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    let _ = NEXT.compare_exchange(0, seed | 1, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(7919, Ordering::SeqCst);
        let port = 20000 + (n % 12768) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767");
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `sha256:<hex>`, the OCI digest of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// Deterministic pseudo-random bytes (xorshift64*): reproducible test data
/// without a `rand` dependency.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Output of an external command that ran to completion within its bound.
pub struct CmdOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// Panics with the command's output if it failed.
    pub fn expect_ok(self, what: &str) -> Self {
        assert!(
            self.success,
            "{what} failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion, panicking (with a clear message) if it takes
/// longer than `limit`. The child is killed when the future is dropped.
pub async fn run_bounded(mut cmd: tokio::process::Command, limit: Duration) -> CmdOutput {
    let desc = format!("{:?}", cmd.as_std());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let out: Output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(res) => res.unwrap_or_else(|e| panic!("wait {desc}: {e}")),
        Err(_) => panic!("command did not finish within {limit:?}: {desc}"),
    };
    CmdOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An HTTP client for talking to registries in tests: no redirects followed
/// (we want to see what the server answered), no env proxies, and an overall
/// bound so a hung server fails the test instead of hanging it.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("build reqwest client")
}

/// What `http_client` is built from, for clients that need more (a CA).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
}

/// An in-process server (token issuer, fake proxy) running on its own thread
/// and runtime. Tests block their own runtime while running skopeo/podman or
/// starting processes; a server on the test's runtime would then stall.
/// Dropping the handle stops the runtime, which drops every open connection.
pub struct BackgroundServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// `serve` receives a listener already bound to 127.0.0.1:0 and returns
    /// the future that serves it, e.g. `warp::serve(f).incoming(l).run()`.
    pub fn start<S, Fut>(serve: S) -> Self
    where
        S: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let std_listener = StdListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                tokio::select! {
                    _ = serve(listener) => {}
                    _ = rx => {}
                }
            });
            // Cancel in-flight connections (e.g. deliberately stalled ones).
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        BackgroundServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response body read to the end (or to the point where it broke),
/// hashed on the fly so large bodies are not kept.
pub struct BodyRead {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub len: u64,
    pub digest: String,
    /// Set when the connection failed before the body ended (e.g. it was
    /// aborted short of its Content-Length).
    pub error: Option<String>,
}

impl BodyRead {
    /// The client got every promised byte without a transport error.
    pub fn complete(&self) -> bool {
        let promised = self
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        self.error.is_none() && promised.is_none_or(|n| n == self.len)
    }
}

pub async fn read_body(resp: reqwest::Response) -> BodyRead {
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut resp = resp;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut error = None;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                len += c.len() as u64;
                hasher.update(&c);
            }
            Ok(None) => break,
            Err(e) => {
                error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    BodyRead {
        status,
        headers,
        len,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        error,
    }
}

/// GET `url` and read the body with [`read_body`]; a failure to even get a
/// response is reported as an error with status 0 semantics (`None`).
pub async fn get_body(url: &str, headers: &[(&str, &str)]) -> Result<BodyRead, String> {
    let mut rb = http_client().get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    match rb.send().await {
        Ok(resp) => Ok(read_body(resp).await),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Parses an OCI error body and returns its first `code`.
pub fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no errors[0].code in {v}"))
        .to_string()
}
