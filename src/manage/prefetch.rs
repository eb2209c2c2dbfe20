//! Pre-warm: `POST <distribution>prefetch/` fills a cache from a list of
//! references before anyone pulls. The work runs in the background through
//! the cache's normal paths (manifests by tag or digest, blobs through the
//! single-flight downloads), so a pull that arrives meanwhile shares the
//! download. Its task lives in memory: running, then finished with a report
//! (images and bytes done and total, each failed reference named).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{invalid, ManageError, Manager};
use crate::cache::{Cache, ImageParts};
use crate::config::{valid_wildcard, wildcard_match};
use crate::domain::{Digest, Platforms, Reference, RepoName, Tag};
use crate::store::unix_micros;

/// At most this many lines in one request, and images after expansion.
const MAX_REFERENCES: usize = 1000;
/// Images fetched at once by one prefetch: enough to overlap round trips,
/// few enough to leave the uplink to pulls.
const IMAGES_AT_ONCE: usize = 3;
/// Prefetches running at once; more are refused (409) until one ends.
const MAX_RUNNING: usize = 4;
/// Finished prefetch reports kept (the oldest go first), and for how long.
const MAX_KEPT: usize = 100;
const KEPT_MICROS: u64 = 24 * 3600 * 1_000_000;

/// One line of a list: a repository and a tag (maybe a wildcard) or digest.
#[derive(Clone, Debug)]
struct Wanted {
    line: String,
    repo: RepoName,
    what: WantedRef,
}

#[derive(Clone, Debug)]
enum WantedRef {
    Digest(Digest),
    Tag(Tag),
    Pattern(String),
}

/// What a prefetch fetches of each image.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Platforms of an index.
    pub platforms: Platforms,
    /// Also the referrers (signatures, SBOMs, attestations) of each image.
    pub referrers: bool,
}

/// What `GET <task>` shows of a prefetch.
#[derive(Debug, Default)]
pub(crate) struct PrefetchReport {
    pub id: String,
    pub created: u64,
    pub finished: Option<u64>,
    pub images_total: u64,
    pub images_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Reference → why it failed.
    pub errors: Vec<(String, String)>,
    /// Blobs counted in `bytes_total` (images share layers: each counts once).
    counted: HashSet<Digest>,
}

impl PrefetchReport {
    /// A copy to answer with (without the set of blobs counted).
    fn snapshot(&self) -> PrefetchReport {
        PrefetchReport {
            id: self.id.clone(),
            created: self.created,
            finished: self.finished,
            images_total: self.images_total,
            images_done: self.images_done,
            bytes_total: self.bytes_total,
            bytes_done: self.bytes_done,
            errors: self.errors.clone(),
            counted: HashSet::new(),
        }
    }

    /// Pulp's states: a prefetch with any failed reference is `failed`, so
    /// a script never takes a partial pre-warm for a complete one.
    pub(crate) fn state(&self) -> &'static str {
        match (self.finished, self.errors.is_empty()) {
            (None, _) => "running",
            (Some(_), true) => "completed",
            (Some(_), false) => "failed",
        }
    }

    /// Pulp's `progress_reports`.
    pub(crate) fn progress_reports(&self) -> Vec<Value> {
        let state = if self.finished.is_some() {
            "completed"
        } else {
            "running"
        };
        vec![
            json!({"message": "Prefetching images", "code": "ferry.prefetch.images",
                   "state": state, "total": self.images_total, "done": self.images_done}),
            json!({"message": "Prefetching bytes", "code": "ferry.prefetch.bytes",
                   "state": state, "total": self.bytes_total, "done": self.bytes_done}),
        ]
    }

    /// Pulp's `error`: a description and, ferry's addition, each reference.
    pub(crate) fn error(&self) -> Option<Value> {
        if self.errors.is_empty() || self.finished.is_none() {
            return None;
        }
        let lines: Vec<String> = self
            .errors
            .iter()
            .map(|(r, e)| format!("{r}: {e}"))
            .collect();
        let by_reference: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(r, e)| (r.clone(), Value::String(e.clone())))
            .collect();
        Some(json!({
            "description": format!("{} of {} references failed: {}",
                self.errors.len(), self.images_total, lines.join("; ")),
            "references": by_reference,
        }))
    }
}

type Shared = Arc<Mutex<PrefetchReport>>;

/// The prefetches of this process, running and recently finished.
#[derive(Default)]
pub(crate) struct Prefetches {
    tasks: Mutex<HashMap<String, Shared>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses one line: `repo:tag`, `repo@sha256:...`, `repo:v1.*`, `repo`.
fn parse_line(line: &str) -> Result<Wanted, String> {
    let (name, what) = if let Some((name, digest)) = line.split_once('@') {
        let digest = digest
            .parse::<Digest>()
            .map_err(|e| format!("invalid digest: {e}"))?;
        (name, WantedRef::Digest(digest))
    } else {
        let tag_at = line.rfind(':').filter(|&i| !line[i..].contains('/'));
        let (name, tag) = match tag_at {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, "latest"),
        };
        let what = if tag.contains(['*', '?']) {
            if !valid_wildcard(&tag.to_ascii_lowercase()) || tag.contains('/') {
                return Err("invalid tag wildcard".into());
            }
            WantedRef::Pattern(tag.to_string())
        } else {
            WantedRef::Tag(Tag::parse(tag).ok_or("invalid tag")?)
        };
        (name, what)
    };
    let repo = RepoName::parse(name).map_err(|e| format!("invalid repository name: {e}"))?;
    Ok(Wanted {
        line: line.to_string(),
        repo,
        what,
    })
}

impl Manager {
    /// Starts a prefetch into the cache of distribution `id`; answers the
    /// task id at once. Refuses an empty or oversized list, and names every
    /// line it cannot read.
    pub(crate) async fn start_prefetch(
        &self,
        distribution_id: &str,
        references: Vec<String>,
        options: Options,
    ) -> Result<String, ManageError> {
        let d = self.distribution(distribution_id).await?;
        let lines: Vec<&str> = references
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty() && !r.starts_with('#'))
            .collect();
        if lines.is_empty() {
            return Err(invalid("references", "Name at least one image reference."));
        }
        if lines.len() > MAX_REFERENCES {
            return Err(invalid(
                "references",
                &format!("At most {MAX_REFERENCES} references per prefetch."),
            ));
        }
        let mut wanted = Vec::new();
        let mut bad = Vec::new();
        for line in lines {
            match parse_line(line) {
                Ok(w) => wanted.push(w),
                Err(e) => bad.push(Value::String(format!("{line}: {e}"))),
            }
        }
        if !bad.is_empty() {
            return Err(ManageError::Invalid(json!({ "references": bad })));
        }
        let cache = self.caches.serving(&d.base_path).ok_or_else(|| {
            ManageError::Conflict("the distribution's cache is not running".into())
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        let report: Shared = Arc::new(Mutex::new(PrefetchReport {
            id: id.clone(),
            created: unix_micros(),
            ..PrefetchReport::default()
        }));
        {
            let mut tasks = lock(&self.prefetches.tasks);
            let now = unix_micros();
            tasks.retain(|_, r| {
                lock(r)
                    .finished
                    .is_none_or(|at| now.saturating_sub(at) < KEPT_MICROS)
            });
            let running = tasks
                .values()
                .filter(|r| lock(r).finished.is_none())
                .count();
            if running >= MAX_RUNNING {
                return Err(ManageError::Conflict(format!(
                    "{MAX_RUNNING} prefetches are running; wait for one to finish"
                )));
            }
            while tasks.len() >= MAX_KEPT {
                let oldest = tasks
                    .iter()
                    .filter(|(_, r)| lock(r).finished.is_some())
                    .min_by_key(|(_, r)| lock(r).created)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => tasks.remove(&k),
                    None => break,
                };
            }
            tasks.insert(id.clone(), report.clone());
        }
        tracing::info!(task = %id, base_path = %d.base_path, references = wanted.len(), "prefetch started");
        tokio::spawn(run(cache, wanted, options, report));
        Ok(id)
    }

    /// A prefetch task's report, while it is kept.
    pub(crate) fn prefetch_report(&self, id: &str) -> Option<PrefetchReport> {
        let tasks = lock(&self.prefetches.tasks);
        tasks.get(id).map(|r| lock(r).snapshot())
    }
}

/// Expands wildcards, then fetches the images a few at a time.
async fn run(cache: Arc<Cache>, wanted: Vec<Wanted>, options: Options, report: Shared) {
    let mut images: Vec<(String, RepoName, Reference)> = Vec::new();
    for w in wanted {
        let reference = match w.what {
            WantedRef::Digest(d) => Reference::Digest(d),
            WantedRef::Tag(t) => Reference::Tag(t),
            WantedRef::Pattern(pattern) => {
                match cache.tags(&w.repo).await {
                    Ok(tags) => {
                        let matched: Vec<Tag> = tags
                            .iter()
                            .filter(|t| wildcard_match(&pattern, t))
                            .filter_map(|t| Tag::parse(t))
                            .collect();
                        if matched.is_empty() {
                            fail_expansion(&report, &w.line, "no tag matches".into());
                        }
                        for tag in matched {
                            let line = format!("{}:{}", w.repo.as_str(), tag.as_str());
                            images.push((line, w.repo.clone(), Reference::Tag(tag)));
                        }
                    }
                    Err(e) => fail_expansion(&report, &w.line, format!("cannot list tags: {e}")),
                }
                continue;
            }
        };
        images.push((w.line, w.repo, reference));
    }
    if images.len() > MAX_REFERENCES {
        let line = format!("(the list: {} images after expansion)", images.len());
        let why = format!("more than {MAX_REFERENCES}; the first {MAX_REFERENCES} are fetched");
        fail(&report, &line, why);
        images.truncate(MAX_REFERENCES);
    }
    lock(&report).images_total += images.len() as u64;
    futures_util::stream::iter(images)
        .map(|(line, repo, reference)| {
            let (cache, options, report) = (cache.clone(), options.clone(), report.clone());
            async move {
                match image(&cache, &repo, &reference, &options, &report).await {
                    Ok(()) => lock(&report).images_done += 1,
                    Err(e) => fail(&report, &line, e),
                }
            }
        })
        .buffer_unordered(IMAGES_AT_ONCE)
        .for_each(|()| async {})
        .await;
    let mut done = lock(&report);
    done.finished = Some(unix_micros());
    tracing::info!(task = %done.id, images = done.images_done, failed = done.errors.len(), "prefetch finished");
}

fn fail(report: &Shared, line: &str, error: String) {
    lock(report).errors.push((line.to_string(), error));
}

/// A wildcard that expands to nothing counts as one image, failed.
fn fail_expansion(report: &Shared, line: &str, error: String) {
    lock(report).images_total += 1;
    fail(report, line, error);
}

/// One image: its manifest (and the chosen platforms' of an index), then
/// every blob they name, through the cache's walk (`Cache::image_parts`);
/// with `referrers`, then the referrers of those manifests and their blobs.
async fn image(
    cache: &Arc<Cache>,
    repo: &RepoName,
    reference: &Reference,
    options: &Options,
    report: &Shared,
) -> Result<(), String> {
    let parts = cache
        .image_parts(repo, reference, &options.platforms)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(offered) = &parts.unmatched {
        return Err(format!(
            "the index has no manifest for the platforms asked (it has {})",
            offered.join(", ")
        ));
    }
    fetch_blobs(cache, repo, &parts, report).await?;
    if options.referrers {
        let referrers = cache
            .referrer_parts(repo, &parts.manifests)
            .await
            .map_err(|e| format!("referrers: {e}"))?;
        fetch_blobs(cache, repo, &referrers, report).await?;
    }
    Ok(())
}

/// The blobs of `parts`, counted in the report's bytes.
async fn fetch_blobs(
    cache: &Cache,
    repo: &RepoName,
    parts: &ImageParts,
    report: &Shared,
) -> Result<(), String> {
    // Only this image's first sight of a blob counts its bytes; a blob
    // another image of the list counted is still fetched (a download under
    // way is joined, a stored one is skipped).
    let counted: Vec<bool> = {
        let mut r = lock(report);
        let first: Vec<bool> = parts
            .blobs
            .iter()
            .map(|(d, _)| r.counted.insert(d.clone()))
            .collect();
        r.bytes_total += parts
            .blobs
            .iter()
            .zip(&first)
            .filter(|(_, f)| **f)
            .map(|((_, s), _)| s)
            .sum::<u64>();
        first
    };
    for ((digest, size), counts) in parts.blobs.iter().zip(counted) {
        cache.fetch_blob(repo, digest).await?;
        if counts {
            lock(report).bytes_done += size;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_lines() {
        assert!(
            matches!(parse_line("alpine").unwrap().what, WantedRef::Tag(t) if t.as_str() == "latest")
        );
        assert!(
            matches!(parse_line("lib/alpine:v1.*").unwrap().what, WantedRef::Pattern(p) if p == "v1.*")
        );
        let w = parse_line("org/app:1.2").unwrap();
        assert_eq!(w.repo.as_str(), "org/app");
        assert!(matches!(w.what, WantedRef::Tag(t) if t.as_str() == "1.2"));
        // A list names repositories of the distribution, not registry hosts.
        assert!(parse_line("host:5000/x:1").is_err());
        assert!(parse_line("a@sha256:zz").is_err());
        assert!(parse_line("UPPER:1").is_err());
    }
}
