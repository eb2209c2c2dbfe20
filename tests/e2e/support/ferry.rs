//! The ferry process under test: started with CLI flags (or a TOML config
//! when a cache needs credentials or timeouts), ready once it prints
//! `listening on 127.0.0.1:PORT` on stdout, killed on drop, restartable on
//! the same data dir.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test: the one cargo built for this test run, unless
/// `FERRY_BIN` points at another build (e.g. the static release binary).
pub fn ferry_bin() -> PathBuf {
    std::env::var_os("FERRY_BIN").map_or_else(|| env!("CARGO_BIN_EXE_ferry").into(), PathBuf::from)
}

/// Base path under which the default cache is served.
pub const CACHE: &str = "docker-cache";

/// One `[[cache]]` entry.
#[derive(Clone, Debug, Default)]
pub struct CacheSpec {
    pub base_path: String,
    pub upstream: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tag_ttl_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub read_timeout_secs: Option<u64>,
    /// `revalidate_timeout_ms`: how long a stale tag's check may hold a pull.
    pub revalidate_timeout_ms: Option<u64>,
    /// `ca_file`: extra CA certificates (PEM file) for an HTTPS upstream.
    pub ca_file: Option<PathBuf>,
    /// `ca_cert`: extra CA certificates as inline PEM.
    pub ca_cert: Option<String>,
    /// `tls_validation` (ferry's default is `true`).
    pub tls_validation: Option<bool>,
    /// `proxy_url`: the HTTP(S) proxy for this upstream.
    pub proxy_url: Option<String>,
    /// `proxy_username`/`proxy_password`.
    pub proxy_credentials: Option<(String, String)>,
    /// Further lines of the entry, as TOML (e.g. `stale_if = []`).
    pub extra_toml: Vec<String>,
}

impl CacheSpec {
    pub fn new(base_path: &str, upstream: &str) -> Self {
        CacheSpec {
            base_path: base_path.into(),
            upstream: upstream.into(),
            ..Default::default()
        }
    }

    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.username = Some(user.into());
        self.password = Some(password.into());
        self
    }

    pub fn tag_ttl(mut self, secs: u64) -> Self {
        self.tag_ttl_secs = Some(secs);
        self
    }

    pub fn timeouts(mut self, connect_secs: u64, read_secs: u64) -> Self {
        self.connect_timeout_secs = Some(connect_secs);
        self.read_timeout_secs = Some(read_secs);
        self
    }

    pub fn revalidate_timeout_ms(mut self, ms: u64) -> Self {
        self.revalidate_timeout_ms = Some(ms);
        self
    }

    /// Trusts the CA certificates in the PEM file `path` for the upstream.
    pub fn ca_file(mut self, path: &Path) -> Self {
        self.ca_file = Some(path.to_path_buf());
        self
    }

    /// Trusts the CA certificates in `pem` (inline in the config).
    pub fn ca_cert(mut self, pem: &str) -> Self {
        self.ca_cert = Some(pem.into());
        self
    }

    /// `tls_validation = false` accepts any upstream certificate.
    pub fn tls_validation(mut self, on: bool) -> Self {
        self.tls_validation = Some(on);
        self
    }

    /// Reaches the upstream through the proxy at `url` (`http://HOST:PORT`).
    pub fn proxy_url(mut self, url: &str) -> Self {
        self.proxy_url = Some(url.into());
        self
    }

    /// Credentials for the proxy (Basic `Proxy-Authorization`).
    pub fn proxy_credentials(mut self, user: &str, password: &str) -> Self {
        self.proxy_credentials = Some((user.into(), password.into()));
        self
    }

    /// One more line of the entry, as TOML.
    pub fn toml(mut self, line: &str) -> Self {
        self.extra_toml.push(line.into());
        self
    }

    /// Whether only the config file can express this entry.
    fn needs_config(&self) -> bool {
        self.username.is_some()
            || self.connect_timeout_secs.is_some()
            || self.read_timeout_secs.is_some()
            || self.revalidate_timeout_ms.is_some()
            || self.ca_file.is_some()
            || self.ca_cert.is_some()
            || self.tls_validation.is_some()
            || self.proxy_url.is_some()
            || self.proxy_credentials.is_some()
            || !self.extra_toml.is_empty()
    }
}

/// The admin password `start_with` gives ferry (FERRY_ADMIN_PASSWORD).
pub const ADMIN_PASSWORD: &str = "e2e-admin-pw-7f3a";

pub struct Ferry {
    args: Vec<String>,
    /// Extra environment for the ferry process (applied after RUST_LOG).
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    addr: String,
    /// The HTTPS listener's address, when started with TLS.
    tls_addr: Option<String>,
}

impl Ferry {
    /// ferry with one cache `docker-cache` → `upstream` and default TTL.
    pub fn start_simple(upstream: &str) -> Ferry {
        Ferry::start(&[CacheSpec::new(CACHE, upstream)])
    }

    /// ferry with one cache `docker-cache` → `upstream` and a tag TTL.
    pub fn start_with_ttl(upstream: &str, ttl: u64) -> Ferry {
        Ferry::start(&[CacheSpec::new(CACHE, upstream).tag_ttl(ttl)])
    }

    /// Uses CLI flags when every cache fits `--cache NAME=URL` (and one
    /// common TTL), else writes a TOML config and passes `--config`.
    pub fn start(caches: &[CacheSpec]) -> Ferry {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let ttls: Vec<_> = caches.iter().map(|c| c.tag_ttl_secs).collect();
        let cli_ok =
            !caches.iter().any(CacheSpec::needs_config) && ttls.windows(2).all(|w| w[0] == w[1]);
        let mut args: Vec<String> = vec!["serve".into()];
        if cli_ok {
            args.extend([
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
                data_dir.display().to_string(),
            ]);
            for c in caches {
                args.extend(["--cache".into(), format!("{}={}", c.base_path, c.upstream)]);
            }
            if let Some(Some(ttl)) = ttls.first() {
                args.extend(["--tag-ttl-secs".into(), ttl.to_string()]);
            }
        } else {
            let path = dir.path().join("ferry.toml");
            std::fs::write(&path, config_toml(&data_dir, caches)).unwrap();
            args.extend(["--config".into(), path.display().to_string()]);
        }
        Ferry::launch(dir, args, Vec::new())
    }

    /// ferry from a config file holding `caches` (none at all is fine: then
    /// it serves only what is created through the API), with `extra_args`
    /// after it (e.g. `--tag-ttl-secs 0`) and `env` on top of
    /// `FERRY_ADMIN_PASSWORD=ADMIN_PASSWORD` (`env` may override it).
    pub fn start_with(caches: &[CacheSpec], extra_args: &[&str], env: &[(&str, &str)]) -> Ferry {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, config_toml(&data_dir, caches)).unwrap();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            path.display().to_string(),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut vars = vec![(
            "FERRY_ADMIN_PASSWORD".to_string(),
            ADMIN_PASSWORD.to_string(),
        )];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Ferry::launch(dir, args, vars)
    }

    /// Starts ferry with `args` and `env`, its files kept in `dir`. In an
    /// object-store run (`FERRY_E2E_STORAGE=s3`) its blobs go to the shared
    /// SeaweedFS under a prefix of its own: the config file gets the
    /// `[storage]` section (one is written when ferry runs on flags only).
    fn launch(dir: tempfile::TempDir, args: Vec<String>, env: Vec<(String, String)>) -> Ferry {
        let args = if super::seaweed::s3_mode() {
            with_run_storage(dir.path(), args)
        } else {
            args
        };
        let mut ferry = Ferry {
            args,
            env,
            dir,
            child: None,
            addr: String::new(),
            tls_addr: None,
        };
        ferry.spawn();
        ferry
    }

    fn spawn(&mut self) {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = Command::new(ferry_bin())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("FERRY_E2E_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", ferry_bin().display()));
        // Read stdout on a thread so the wait for the line is bounded.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (tls_tx, tls_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                } else if let Some(addr) = line.strip_prefix("listening (TLS) on ") {
                    let _ = tls_tx.send(addr.trim().to_string());
                }
            }
        });
        self.child = Some(child);
        let wants_tls = self.args.iter().any(|a| a == "--tls-listen");
        let addr = rx.recv_timeout(Duration::from_secs(30)).and_then(|addr| {
            if wants_tls {
                self.tls_addr = Some(tls_rx.recv_timeout(Duration::from_secs(30))?);
            }
            Ok(addr)
        });
        match addr {
            Ok(addr) => self.addr = addr,
            Err(_) => {
                self.kill();
                panic!(
                    "ferry did not print `listening on ADDR` within 30 s (args {:?}); stderr:\n{}",
                    self.args,
                    self.log()
                );
            }
        }
    }

    /// Kills ferry and starts it again with the same arguments and data dir.
    /// The port changes (it listens on :0).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The config file it was started with (`start_opts`; the cluster
    /// tests rewrite it before a SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ferry.toml")
    }

    /// SIGKILL and reap: afterwards the data dir is free for a new process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, for image references.
    pub fn host(&self) -> &str {
        &self.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ferry.stderr.log")
    }

    /// ferry's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill();
        // Keep logs of failing tests findable: print the path on panic.
        if std::thread::panicking() {
            eprintln!(
                "--- ferry stderr ({}):\n{}",
                self.log_path().display(),
                tail(&self.log(), 60)
            );
        }
    }
}

/// `args` with the shared object store's `[storage]` in their config.
fn with_run_storage(dir: &Path, mut args: Vec<String>) -> Vec<String> {
    let storage = super::seaweed::fresh_storage_toml(&dir.join("data"));
    match args.iter().position(|a| a == "--config") {
        Some(i) => {
            let path = PathBuf::from(&args[i + 1]);
            let mut text = std::fs::read_to_string(&path).unwrap();
            if !text.contains("[storage]") {
                text.push_str(&storage);
                std::fs::write(&path, text).unwrap();
            }
        }
        None => {
            let path = dir.join("storage.toml");
            std::fs::write(&path, storage).unwrap();
            args.splice(1..1, ["--config".into(), path.display().to_string()]);
        }
    }
    args
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn config_toml(data_dir: &Path, caches: &[CacheSpec]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap(); // a JSON string is a valid TOML basic string
    let mut t = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {}\n",
        q(&data_dir.display().to_string())
    );
    for c in caches {
        let _ = write!(
            t,
            "\n[[cache]]\nbase_path = {}\nupstream = {}\n",
            q(&c.base_path),
            q(&c.upstream)
        );
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            let _ = write!(t, "username = {}\npassword = {}\n", q(u), q(p));
        }
        for (key, v) in [
            ("tag_ttl_secs", c.tag_ttl_secs),
            ("connect_timeout_secs", c.connect_timeout_secs),
            ("read_timeout_secs", c.read_timeout_secs),
            ("revalidate_timeout_ms", c.revalidate_timeout_ms),
        ] {
            if let Some(v) = v {
                let _ = writeln!(t, "{key} = {v}");
            }
        }
        if let Some(path) = &c.ca_file {
            let _ = writeln!(t, "ca_file = {}", q(&path.display().to_string()));
        }
        if let Some(pem) = &c.ca_cert {
            let _ = writeln!(t, "ca_cert = {}", q(pem));
        }
        if let Some(on) = c.tls_validation {
            let _ = writeln!(t, "tls_validation = {on}");
        }
        if let Some(url) = &c.proxy_url {
            let _ = writeln!(t, "proxy_url = {}", q(url));
        }
        if let Some((u, p)) = &c.proxy_credentials {
            let _ = write!(t, "proxy_username = {}\nproxy_password = {}\n", q(u), q(p));
        }
        for line in &c.extra_toml {
            let _ = writeln!(t, "{line}");
        }
    }
    t
}

/// Server-wide settings for [`Ferry::start_opts`]: what ops and storage
/// tests need beyond the caches.
#[derive(Clone, Debug, Default)]
pub struct FerryOptions {
    /// `max_size` in the config file, e.g. `"20MiB"`.
    pub max_size: Option<String>,
    /// `gc_interval_secs` in the config file.
    pub gc_interval_secs: Option<u64>,
    /// PEM certificate chain and key: ferry also listens for HTTPS on
    /// 127.0.0.1:0 (`--tls-listen/--tls-cert/--tls-key`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `browse` in the config file (`"public"` or `"admin"`).
    pub browse: Option<String>,
    /// Further top-level config lines, as TOML (e.g. timeouts).
    pub extra_toml: Option<String>,
    /// A `[storage]` section (a test's own object store, `seaweed.rs`).
    /// Unset: the run's storage (`FERRY_E2E_STORAGE`).
    pub storage_toml: Option<String>,
    /// `--listen` (e.g. `127.0.0.1:PORT`, for a cluster member whose
    /// address the others must know beforehand). Unset: `127.0.0.1:0`.
    pub listen: Option<String>,
}

/// What a maintenance command (`ferry gc`, `ferry verify`) did.
#[derive(Debug)]
pub struct Offline {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ferry {
    /// ferry from a config file with `caches` and the server-wide `opts`.
    pub fn start_opts(caches: &[CacheSpec], opts: &FerryOptions) -> Ferry {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut toml = String::new();
        if let Some(max) = &opts.max_size {
            let _ = writeln!(toml, "max_size = {}", serde_json::to_string(max).unwrap());
        }
        if let Some(secs) = opts.gc_interval_secs {
            let _ = writeln!(toml, "gc_interval_secs = {secs}");
        }
        if let Some(browse) = &opts.browse {
            let _ = writeln!(toml, "browse = {}", serde_json::to_string(browse).unwrap());
        }
        if let Some(extra) = &opts.extra_toml {
            let _ = writeln!(toml, "{extra}");
        }
        toml.push_str(&config_toml(&data_dir, caches));
        if let Some(storage) = &opts.storage_toml {
            toml.push_str(storage);
        }
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, toml).unwrap();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            path.display().to_string(),
        ];
        if let Some(listen) = &opts.listen {
            args.extend(["--listen".into(), listen.clone()]);
        }
        if let Some((cert, key)) = &opts.tls {
            args.extend([
                "--tls-listen".into(),
                "127.0.0.1:0".into(),
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ]);
        }
        Ferry::launch(dir, args, Vec::new())
    }

    /// `127.0.0.1:PORT` of the HTTPS listener (started with TLS only).
    pub fn tls_host(&self) -> &str {
        self.tls_addr
            .as_deref()
            .expect("ferry was started without TLS")
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("ferry is not running");
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid} failed");
    }

    /// Waits (polling, at most `limit`) for the process to exit and reaps
    /// it; `None` if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then asserts a clean exit (status 0) within 20 s.
    pub fn stop(&mut self) {
        self.signal("TERM");
        match self.wait_exit(Duration::from_secs(20)) {
            Some(status) => assert!(
                status.success(),
                "ferry exited with {status} after SIGTERM; stderr:\n{}",
                tail(&self.log(), 40)
            ),
            None => panic!(
                "ferry still running 20 s after SIGTERM; stderr:\n{}",
                tail(&self.log(), 40)
            ),
        }
    }

    /// Starts ferry again after `stop`/`kill` (same arguments and data dir;
    /// the ports change).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "ferry is still running");
        self.spawn();
    }

    /// Runs `ferry SUBCOMMAND --data-dir DATA_DIR` (ferry must be stopped),
    /// bounded to 120 s.
    pub async fn offline(&self, subcommand: &str) -> Offline {
        assert!(
            self.child.is_none(),
            "stop ferry before `ferry {subcommand}`"
        );
        let mut cmd = tokio::process::Command::new(ferry_bin());
        cmd.arg(subcommand).arg("--data-dir").arg(self.data_dir());
        // On the object store: the `[storage]` of its config file.
        if let Some(i) = self.args.iter().position(|a| a == "--config") {
            let config = &self.args[i + 1];
            if std::fs::read_to_string(config).is_ok_and(|t| t.contains("[storage]")) {
                cmd.arg("--config").arg(config);
            }
        }
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("spawn ferry");
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("ferry {subcommand} did not finish within 120 s"))
            .expect("wait for ferry");
        Offline {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
