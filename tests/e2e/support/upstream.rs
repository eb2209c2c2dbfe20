//! A real upstream registry: Debian's `docker-registry` (CNCF distribution
//! 2.8) on a free 127.0.0.1 port, storing in a temp dir. It can be stopped
//! and started again on the same port and storage to simulate an outage.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::token::{TokenIssuer, ISSUER, SERVICE};
use super::util::{free_port, http_client, run_bounded};

pub const USER: &str = "ferryuser";
pub const PASSWORD: &str = "s3cret-pass";

/// How the upstream authenticates clients.
pub enum UpstreamAuth<'a> {
    None,
    /// htpasswd (bcrypt) Basic auth for `USER`/`PASSWORD`.
    Basic,
    /// Bearer tokens from `issuer` (Docker Hub style).
    Token(&'a TokenIssuer),
}

pub struct Upstream {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Serves HTTPS (`http.tls`) instead of plain HTTP.
    tls: bool,
}

impl Upstream {
    pub async fn start(auth: UpstreamAuth<'_>) -> Upstream {
        Upstream::start_inner(auth, None).await
    }

    /// An unauthenticated upstream serving HTTPS with the PEM certificate
    /// chain `cert` and its key `key` (docker-registry's `http.tls`).
    pub async fn start_tls(cert: &Path, key: &Path) -> Upstream {
        Upstream::start_inner(UpstreamAuth::None, Some((cert, key))).await
    }

    async fn start_inner(auth: UpstreamAuth<'_>, tls: Option<(&Path, &Path)>) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth_yaml = match auth {
            UpstreamAuth::None => String::new(),
            UpstreamAuth::Basic => {
                let mut cmd = tokio::process::Command::new("htpasswd");
                cmd.args(["-Bbn", USER, PASSWORD]);
                let out = run_bounded(cmd, Duration::from_secs(30)).await.expect_ok("htpasswd");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, out.stdout).unwrap();
                format!("auth:\n  htpasswd:\n    realm: ferry-e2e\n    path: {}\n", path.display())
            }
            UpstreamAuth::Token(issuer) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                issuer.realm,
                issuer.cert_path.display()
            ),
        };
        let tls_yaml = tls.map_or_else(String::new, |(cert, key)| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        });
        // Health checks off: they only add log noise. Upload purging off: it
        // would race with nothing here but wakes a goroutine for no reason.
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: ferry-e2e-secret\n{tls_yaml}\
             health:\n  storagedriver:\n    enabled: false\n\
             {auth_yaml}",
            root = dir.path().join("storage").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut up = Upstream {
            port,
            dir,
            child: None,
            tls: tls.is_some(),
        };
        up.start_again().await;
        up
    }

    /// (Re)starts the registry process on the same port and storage.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "upstream already running");
        // The access log goes to stdout, the application log to stderr; both
        // are appended to files so a restart keeps the history.
        let open = |name: &str| {
            File::options()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .unwrap()
        };
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(open("access.log"))
            .stderr(open("registry.log"))
            .spawn()
            .expect("spawn docker-registry (apt: docker-registry)");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Polls `/v2/` until it answers (any status; 401 counts), failing fast
    /// with the registry's log if the process exits (e.g. port in use).
    async fn wait_ready(&mut self) {
        let url = format!("{}/v2/", self.url());
        // Readiness only: whether the certificate verifies is the tests' job.
        let http = if self.tls {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("build reqwest client")
        } else {
            http_client()
        };
        for _ in 0..600 {
            if http.get(&url).send().await.is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                panic!("docker-registry exited ({status}) before answering:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not answer {url} within 30 s");
    }

    /// Stops the registry (SIGKILL and reap): connections are refused until
    /// `start_again`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://` when started with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `127.0.0.1:PORT`, as used in image references and `?ns=`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}
