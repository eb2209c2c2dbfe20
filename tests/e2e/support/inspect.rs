//! Looking at a ferry from the outside: its data directory (blob tree,
//! temp files), its `/metrics`, its process status; and a bounded poll.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::seaweed;
use super::util::http_client;

/// One file of the blob tree `DATA_DIR/blobs/<alg>/<xx>/<hex>`.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// `<alg>:<hex>`, as the file's place names it.
    pub digest: String,
    pub path: PathBuf,
    pub size: u64,
}

fn entries(dir: &Path) -> Vec<std::fs::DirEntry> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    }
}

/// Every file under `DATA_DIR/blobs` (manifests included: ferry keeps them
/// in the same tree); in an object-store run, every object of its prefix
/// (its `path` is then `s3:<key>`).
pub fn blob_files(data_dir: &Path) -> Vec<StoredFile> {
    if let Some(prefix) = seaweed::prefix_of(data_dir) {
        assert!(
            entries(&data_dir.join("blobs/sha256")).is_empty(),
            "an object-store ferry stored blobs on local disk"
        );
        let dir = format!("{prefix}blobs/sha256");
        return seaweed::shared()
            .list(&dir)
            .into_iter()
            .map(|(hex, size)| StoredFile {
                digest: format!("sha256:{hex}"),
                path: PathBuf::from(format!("s3:{dir}/{hex}")),
                size,
            })
            .collect();
    }
    let mut out = Vec::new();
    for alg in entries(&data_dir.join("blobs")) {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        for prefix in entries(&alg.path()) {
            for file in entries(&prefix.path()) {
                let meta = file.metadata().unwrap();
                out.push(StoredFile {
                    digest: format!("{alg_name}:{}", file.file_name().to_string_lossy()),
                    path: file.path(),
                    size: meta.len(),
                });
            }
        }
    }
    out
}

/// Bytes of all files under `DATA_DIR/blobs`.
pub fn blobs_total(data_dir: &Path) -> u64 {
    blob_files(data_dir).iter().map(|f| f.size).sum()
}

/// Whether the blob tree holds `digest` (`sha256:<hex>`).
pub fn has_blob(data_dir: &Path, digest: &str) -> bool {
    if seaweed::prefix_of(data_dir).is_some() {
        return blob_files(data_dir).iter().any(|f| f.digest == digest);
    }
    blob_path(data_dir, digest).is_file()
}

/// Where ferry stores `digest` (`s3:<key>` in an object-store run).
pub fn blob_path(data_dir: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("alg:hex");
    if let Some(prefix) = seaweed::prefix_of(data_dir) {
        return PathBuf::from(format!("s3:{prefix}blobs/{alg}/{hex}"));
    }
    data_dir.join("blobs").join(alg).join(&hex[..2]).join(hex)
}

/// The bytes at a `blob_path` (a file, or an object).
pub fn read_stored(path: &Path) -> Vec<u8> {
    match path.to_str().and_then(|p| p.strip_prefix("s3:")) {
        Some(key) => seaweed::shared()
            .get(key)
            .unwrap_or_else(|| panic!("no object {key}")),
        None => std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
    }
}

/// Replaces the bytes at a `blob_path` (to damage a stored blob).
pub fn write_stored(path: &Path, bytes: &[u8]) {
    match path.to_str().and_then(|p| p.strip_prefix("s3:")) {
        Some(key) => seaweed::shared().put(key, bytes),
        None => std::fs::write(path, bytes).unwrap(),
    }
}

/// What `ferry verify` quarantined of `digest`, if anything.
pub fn quarantined(data_dir: &Path, digest: &str) -> Option<Vec<u8>> {
    let name = digest.replacen(':', "-", 1);
    match seaweed::prefix_of(data_dir) {
        Some(prefix) => seaweed::shared().get(&format!("{prefix}quarantine/{name}")),
        None => std::fs::read(data_dir.join("quarantine").join(name)).ok(),
    }
}

/// The files in `DATA_DIR/tmp`.
pub fn tmp_files(data_dir: &Path) -> Vec<PathBuf> {
    entries(&data_dir.join("tmp"))
        .into_iter()
        .map(|e| e.path())
        .collect()
}

/// SHA-256 of a file, read in blocks (or of an object, `s3:<key>`).
pub fn sha256_file(path: &Path) -> String {
    if path.to_str().is_some_and(|p| p.starts_with("s3:")) {
        return format!("sha256:{}", hex::encode(Sha256::digest(read_stored(path))));
    }
    let mut file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Asserts that every file of the blob tree hashes to its name; returns
/// how many there are.
pub fn assert_blob_tree_intact(data_dir: &Path) -> usize {
    let files = blob_files(data_dir);
    for f in &files {
        assert!(
            f.digest.starts_with("sha256:"),
            "unexpected algorithm: {}",
            f.path.display()
        );
        assert_eq!(
            sha256_file(&f.path),
            f.digest,
            "{} does not hash to its name",
            f.path.display()
        );
    }
    files.len()
}

/// Polls `cond` every 50 ms until it holds; panics after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A scrape of ferry's `/metrics`.
pub struct Metrics {
    pub text: String,
}

/// GET `<ferry_url>/metrics`.
pub async fn metrics(ferry_url: &str) -> Metrics {
    let resp = http_client()
        .get(format!("{ferry_url}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET /metrics");
    Metrics {
        text: resp.text().await.unwrap(),
    }
}

impl Metrics {
    /// The series of `name` as (labels, value).
    pub fn series(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let mut out = Vec::new();
        for line in self.text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (head, value) = match line.rsplit_once(' ') {
                Some(p) => p,
                None => continue,
            };
            let (metric, labels) = match head.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            if metric != name {
                continue;
            }
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .filter_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("metric value in {line:?}: {e}"));
            out.push((labels, value));
        }
        out
    }

    /// The sum of the series of `name` carrying all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name)
            .iter()
            .filter(|(have, _)| {
                labels
                    .iter()
                    .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// A `/proc/PID/status` field in KiB (`VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
