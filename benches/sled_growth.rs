//! How much the metadata database grows under churn: 10,000 tags updated
//! 1,000,000 times in total (what months of TTL revalidations do), then the
//! database's size on disk against the live data.
//!
//! `cargo bench --bench sled_growth` runs the full measurement; under
//! `cargo test` (no `--bench` argument) it runs a small smoke version.

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

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (tags, updates) = if full {
        (10_000u64, 1_000_000u64)
    } else {
        (100, 1_000)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = MetaStore::open(dir.path()).expect("open sled");
    let media_type = MediaType::new(MediaType::OCI_MANIFEST);
    let started = Instant::now();
    let mut live = std::collections::HashMap::new();
    for i in 0..updates {
        let tag = i % tags;
        let record = TagRecord {
            digest: Digest::sha256_of(&i.to_le_bytes()),
            media_type: media_type.clone(),
            size: 1234,
            confirmed_at: i,
            last_pulled: i,
        };
        let repo = format!("docker-cache/library/repo{}", tag % 100);
        meta.blocking()
            .put_tag(&repo, &format!("tag{tag}"), &record)
            .expect("put");
        live.insert((repo, tag), record);
    }
    meta.blocking().flush().expect("flush");
    let elapsed = started.elapsed();
    // Live data: keys plus encoded values, as stored.
    let live_bytes: u64 = live
        .iter()
        .map(|((repo, tag), r)| {
            let key = repo.len() + 1 + format!("tag{tag}").len();
            key as u64 + ferry::store::encode(r).map_or(0, |v| v.len() as u64)
        })
        .sum();
    drop(meta);
    let on_disk = dir_size(dir.path());
    println!(
        "sled: {tags} tags, {updates} updates in {:.1}s; on disk {} bytes, live data {} bytes, ratio {:.1}x",
        elapsed.as_secs_f64(),
        on_disk,
        live_bytes,
        on_disk as f64 / live_bytes as f64
    );
}
