//! How much the metadata database grows under churn: 10,000 tags updated
//! 1,000,000 times in total (what months of TTL revalidations do), then the
//! database's size on disk against the live data.
//!
//! `cargo bench --bench sled_growth` runs the full measurement; under
//! `cargo test` (no `--bench` argument) it runs a small version that
//! asserts: every tag reads back as last written, and rewriting the same
//! tags ten times over leaves the database's size bounded (it does not grow
//! with the number of rewrites).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use ferry::domain::{Digest, MediaType};
use ferry::store::{MetaStore, TagRecord};

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Repository and tag name of tag number `tag`.
fn names(tag: u64) -> (String, String) {
    (
        format!("docker-cache/library/repo{}", tag % 100),
        format!("tag{tag}"),
    )
}

/// Updates `tags` tags round-robin, updates `from..to` (each a new digest),
/// keeping what was written last in `live`.
fn churn(meta: &MetaStore, tags: u64, from: u64, to: u64, live: &mut HashMap<u64, TagRecord>) {
    let media_type = MediaType::new(MediaType::OCI_MANIFEST);
    for i in from..to {
        let tag = i % tags;
        let record = TagRecord {
            digest: Digest::sha256_of(&i.to_le_bytes()),
            media_type: media_type.clone(),
            size: 1234,
            confirmed_at: i,
            last_pulled: i,
        };
        let (repo, name) = names(tag);
        meta.blocking().put_tag(&repo, &name, &record).expect("put");
        live.insert(tag, record);
    }
    meta.blocking().flush().expect("flush");
}

/// Live data: keys plus encoded values, as stored.
fn live_bytes(live: &HashMap<u64, TagRecord>) -> u64 {
    live.iter()
        .map(|(tag, r)| {
            let (repo, name) = names(*tag);
            let key = repo.len() + 1 + name.len();
            key as u64 + ferry::store::encode(r).map_or(0, |v| v.len() as u64)
        })
        .sum()
}

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        measure(10_000, 1_000_000);
    } else {
        assert_bounded();
    }
}

fn measure(tags: u64, updates: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = MetaStore::open(dir.path()).expect("open sled");
    let started = Instant::now();
    let mut live = HashMap::new();
    churn(&meta, tags, 0, updates, &mut live);
    let elapsed = started.elapsed();
    drop(meta);
    let on_disk = dir_size(dir.path());
    let live_bytes = live_bytes(&live);
    println!(
        "sled: {tags} tags, {updates} updates in {:.1}s; on disk {} bytes, live data {} bytes, ratio {:.1}x",
        elapsed.as_secs_f64(),
        on_disk,
        live_bytes,
        on_disk as f64 / live_bytes as f64
    );
}

/// The test mode: 100 tags rewritten 100 times, then 1,000 times more.
fn assert_bounded() {
    const TAGS: u64 = 100;
    const ROUND: u64 = 100 * TAGS;
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = MetaStore::open(dir.path()).expect("open sled");
    let mut live = HashMap::new();
    churn(&meta, TAGS, 0, ROUND, &mut live);
    let after_first = dir_size(dir.path());
    churn(&meta, TAGS, ROUND, 11 * ROUND, &mut live);
    for (tag, record) in &live {
        let (repo, name) = names(*tag);
        let stored = meta
            .blocking()
            .tag(&repo, &name)
            .expect("read")
            .expect("tag lost");
        assert_eq!(
            stored.digest, record.digest,
            "{repo}:{name} is not as last written"
        );
    }
    drop(meta);
    let after_all = dir_size(dir.path());
    println!(
        "sled: {TAGS} tags; on disk after {ROUND} updates {after_first} bytes, after {} {after_all} bytes (live data {} bytes)",
        11 * ROUND,
        live_bytes(&live)
    );
    assert!(
        after_all <= 2 * after_first,
        "the database grows with rewrites of the same {TAGS} tags: {after_first} bytes after {ROUND} updates, {after_all} after {}",
        11 * ROUND
    );
}
