//! Several ferry nodes on one object store (`[cluster]`): each with its own
//! data directory and port, all on the run's SeaweedFS under one key
//! prefix, each listing all of them.

use std::net::TcpListener;

use super::ferry::{CacheSpec, Ferry, FerryOptions, ADMIN_PASSWORD};
use super::seaweed::Seaweed;

/// The members, in the order of their addresses in `nodes`.
pub struct TestCluster {
    pub nodes: Vec<Ferry>,
    /// `http://127.0.0.1:PORT/` of each node, as the config names them.
    pub urls: Vec<String>,
    /// The key prefix all members share in the bucket.
    pub prefix: String,
}

impl TestCluster {
    /// Starts `n` members serving `caches` (each with the same config),
    /// with `extra_toml` top-level lines (e.g. `local_cache`) on each.
    pub fn start(n: usize, caches: &[CacheSpec], extra_toml: Option<&str>) -> TestCluster {
        TestCluster::start_on(super::seaweed::shared(), n, caches, extra_toml)
    }

    /// The same on a SeaweedFS of the test's own (one it stops, say).
    pub fn start_on(
        seaweed: &Seaweed,
        n: usize,
        caches: &[CacheSpec],
        extra_toml: Option<&str>,
    ) -> TestCluster {
        TestCluster::start_on_with_storage(seaweed, n, caches, extra_toml, "")
    }

    /// The same with `storage_lines` added to each member's `[storage]`
    /// (e.g. `local_cache = "64MiB"`).
    pub fn start_on_with_storage(
        seaweed: &Seaweed,
        n: usize,
        caches: &[CacheSpec],
        extra_toml: Option<&str>,
        storage_lines: &str,
    ) -> TestCluster {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/"))
            .collect();
        let prefix = format!(
            "cluster-{}-{}/",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let list = urls
            .iter()
            .map(|u| format!("{u:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = ports
            .iter()
            .zip(&urls)
            .map(|(port, me)| {
                // Members share the admin password (ferry refuses to start
                // one with a generated password).
                let storage = format!(
                    "{}{storage_lines}\n[cluster]\nself = {me:?}\nnodes = [{list}]\n",
                    seaweed.storage_toml(&prefix)
                );
                let extra = format!(
                    "admin_password = {ADMIN_PASSWORD:?}\n{}",
                    extra_toml.unwrap_or_default()
                );
                Ferry::start_opts(
                    caches,
                    &FerryOptions {
                        storage_toml: Some(storage),
                        extra_toml: Some(extra),
                        listen: Some(format!("127.0.0.1:{port}")),
                        ..FerryOptions::default()
                    },
                )
            })
            .collect();
        TestCluster {
            nodes,
            urls,
            prefix,
        }
    }
}

impl TestCluster {
    /// The index of the member responsible for `key` (a digest, or
    /// `<base_path>/<repository>`) among `alive` (indexes into `nodes`):
    /// the same rendezvous hashing as `src/cluster/` (highest
    /// `sha256(url, 0, key)`), written again here so a test can pick
    /// which member a key lands on.
    pub fn owner_among(&self, key: &str, alive: &[usize]) -> usize {
        use sha2::{Digest, Sha256};
        let score = |i: usize| {
            let url = &self.urls[i];
            let mut h = Sha256::new();
            h.update(url.as_bytes());
            h.update([0]);
            h.update(key.as_bytes());
            let d = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            (u64::from_be_bytes(first), url.clone())
        };
        *alive.iter().max_by_key(|&&i| score(i)).unwrap()
    }

    /// The owner of `key` while every member is alive.
    pub fn owner(&self, key: &str) -> usize {
        self.owner_among(key, &(0..self.nodes.len()).collect::<Vec<_>>())
    }
}

/// A port free now (the node binds it a moment later; a clash fails the
/// start loudly, never silently).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
