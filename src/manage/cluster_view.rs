//! The whole cluster's repositories and tags, for `status/` and the
//! dashboard: each member publishes what it holds as one object,
//! `state/views/<member>.json` (rewritten only when it changed), and a
//! reader merges every member's last published view with its own. Reading
//! the bucket keeps this cheap and free of requests between members: a
//! member that is down still counts with what it held, and a member whose
//! view cannot be read is named in `partial`. The stored bytes and objects
//! are the bucket's own listing (the blobs are shared, so each counts once).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ManageError, Manager};
use crate::cluster::Cluster;
use crate::domain::Digest;
use crate::store::{SharedState, WriteIf};

/// A view lists at most this many repositories, each with at most this
/// many tags: bounds what one member writes and every reader reads.
const MAX_REPOSITORIES: usize = 20_000;
const MAX_TAGS_PER_REPOSITORY: usize = 2_000;
const MAX_VIEW_BYTES: u64 = 64 * 1024 * 1024;
/// The bucket's listing is reused this long (it walks every object).
const STORED_TOTALS_FOR: Duration = Duration::from_secs(30);

/// One member's published view: its repositories by cache, with tags.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct View {
    pub(super) member: String,
    /// cache base path → repository name → tags
    pub(super) caches: BTreeMap<String, BTreeMap<String, Vec<ViewTag>>>,
}

/// A tag in a view: with its manifest and when the upstream confirmed it
/// (what other members adopt, `adopt.rs`); views written before that
/// carry the name only, and are still read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub(super) enum ViewTag {
    At {
        tag: String,
        digest: String,
        confirmed_at: u64,
    },
    Name(String),
}

impl ViewTag {
    pub(super) fn name(&self) -> &str {
        match self {
            ViewTag::At { tag, .. } | ViewTag::Name(tag) => tag,
        }
    }
}

/// The cluster's totals, as `status/` shows them.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct ClusterStatus {
    /// This member's address, and every member's.
    pub me: String,
    pub members: Vec<String>,
    /// Distinct repositories and tags over all members.
    pub repositories: u64,
    pub tags: u64,
    /// The bucket's blobs and manifests (each once, whoever stored it);
    /// null while the bucket cannot be listed.
    pub stored_bytes: Option<u64>,
    pub stored_objects: Option<u64>,
    /// Members whose view could not be read: the totals leave them out.
    pub partial: Vec<String>,
}

/// Repositories and tags of one cache over the cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct CacheCounts {
    pub repositories: u64,
    pub tags: u64,
}

/// The views read, by object name (with its e-tag), this member's own at
/// the metadata's content version it was walked at, and the bucket's
/// totals with when they were counted.
#[derive(Default)]
pub(super) struct Views {
    read: Mutex<HashMap<String, (Option<String>, View)>>,
    own: Mutex<Option<(u64, View)>>,
    published: Mutex<Option<Vec<u8>>>,
    stored: Mutex<Option<(Instant, (u64, u64))>>,
}

fn view_name(member: &url::Url) -> String {
    let digest = Digest::sha256_of(member.as_str().as_bytes());
    format!("views/{}.json", &digest.hex()[..16])
}

impl Manager {
    /// This member's repositories and tags as a view. The follow loop asks
    /// every 2 s: the walk of every repository and tag is made again only
    /// after the metadata's content changed (`content_version`).
    pub(super) async fn own_view(&self) -> Result<View, ManageError> {
        let version = self.meta.content_version();
        if let Some((_, view)) = self
            .views
            .own
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, _)| *at == version)
        {
            return Ok(view.clone());
        }
        let meta = self.meta.clone();
        let me = self.cluster_me();
        let caches = crate::cache::blocking(move || {
            let meta = meta.blocking();
            let mut caches: BTreeMap<String, BTreeMap<String, Vec<ViewTag>>> = BTreeMap::new();
            for (name, record) in meta.repos()?.into_iter().take(MAX_REPOSITORIES) {
                let tags = meta
                    .tags_of(&name)?
                    .into_iter()
                    .take(MAX_TAGS_PER_REPOSITORY)
                    .map(|(tag, t)| ViewTag::At {
                        tag,
                        digest: t.digest.to_string(),
                        confirmed_at: t.confirmed_at,
                    })
                    .collect();
                caches.entry(record.cache).or_default().insert(name, tags);
            }
            Ok(caches)
        })
        .await?;
        let view = View { member: me, caches };
        // Walked after `version` was read: a write meanwhile bumped it, and
        // the next call walks again.
        *self.views.own.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, view.clone()));
        Ok(view)
    }

    /// Writes this member's view when it changed since it was last written.
    pub(super) async fn publish_view(
        &self,
        shared: &SharedState,
        view: &View,
    ) -> Result<(), ManageError> {
        let Some(cluster) = self.caches.storage().cluster() else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(view).map_err(|e| ManageError::Conflict(e.to_string()))?;
        if self
            .views
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            == Some(&bytes)
        {
            return Ok(());
        }
        shared
            .put(&view_name(cluster.me()), bytes.clone(), WriteIf::Always)
            .await
            .map_err(|e| ManageError::Unavailable(e.to_string()))?;
        *self
            .views
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(())
    }

    /// Every other member's last published view, `None` where it is
    /// missing or unreadable.
    pub(super) async fn other_views(
        &self,
        cluster: &Cluster,
        shared: &SharedState,
    ) -> Vec<(url::Url, Option<View>)> {
        let listed = shared.list("views").await.ok();
        let mut views = Vec::new();
        for member in cluster.members().iter().filter(|m| &m.url != cluster.me()) {
            let name = view_name(&member.url);
            let e_tag = listed
                .as_ref()
                .and_then(|l| l.iter().find(|e| e.name == name))
                .map(|e| e.e_tag.clone());
            views.push((
                member.url.clone(),
                self.read_view(shared, &name, e_tag).await,
            ));
        }
        views
    }

    /// The cluster's repositories and tags per cache, and its totals (none
    /// outside a cluster). Views that cannot be read are named, not fatal.
    pub(crate) async fn cluster_view(
        &self,
    ) -> Result<Option<(ClusterStatus, BTreeMap<String, CacheCounts>)>, ManageError> {
        let (Some(cluster), Some(shared)) = (
            self.caches.storage().cluster().cloned(),
            self.caches.storage().shared_state().cloned(),
        ) else {
            return Ok(None);
        };
        let own = self.own_view().await?;
        let mut views = vec![own];
        let mut partial = Vec::new();
        for (member, view) in self.other_views(&cluster, &shared).await {
            match view {
                Some(view) => views.push(view),
                None => partial.push(member.to_string()),
            }
        }
        let mut per_cache: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for view in &views {
            for (cache, repos) in &view.caches {
                let (names, tags) = per_cache.entry(cache.clone()).or_default();
                for (repo, repo_tags) in repos {
                    names.insert(repo.clone());
                    tags.extend(repo_tags.iter().map(|t| format!("{repo}:{}", t.name())));
                }
            }
        }
        let counts: BTreeMap<String, CacheCounts> = per_cache
            .iter()
            .map(|(cache, (names, tags))| {
                (
                    cache.clone(),
                    CacheCounts {
                        repositories: names.len() as u64,
                        tags: tags.len() as u64,
                    },
                )
            })
            .collect();
        let stored = self.bucket_totals().await;
        let status = ClusterStatus {
            me: cluster.me().to_string(),
            members: cluster
                .members()
                .iter()
                .map(|m| m.url.to_string())
                .collect(),
            repositories: counts.values().map(|c| c.repositories).sum(),
            tags: counts.values().map(|c| c.tags).sum(),
            stored_bytes: stored.map(|s| s.0),
            stored_objects: stored.map(|s| s.1),
            partial,
        };
        Ok(Some((status, counts)))
    }

    /// A member's view: the copy read before while its e-tag is the same,
    /// else read again; `None` when it is missing or unreadable.
    async fn read_view(
        &self,
        shared: &SharedState,
        name: &str,
        listed: Option<Option<String>>,
    ) -> Option<View> {
        let listed = listed?;
        if let Some((e_tag, view)) = self
            .views
            .read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            if e_tag.is_some() && e_tag == &listed {
                return Some(view.clone());
            }
        }
        let got = shared.get(name, MAX_VIEW_BYTES).await.ok()??;
        let view: View = serde_json::from_slice(&got.bytes).ok()?;
        self.views
            .read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), (listed, view.clone()));
        Some(view)
    }

    /// Bytes and objects in the bucket, counted at most every
    /// [`STORED_TOTALS_FOR`]; `None` when it cannot be listed.
    async fn bucket_totals(&self) -> Option<(u64, u64)> {
        if let Some((at, totals)) = *self.views.stored.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < STORED_TOTALS_FOR {
                return Some(totals);
            }
        }
        let blobs = self.caches.storage().blobs().clone();
        let totals = crate::cache::blocking(move || {
            let stored = blobs.stored()?;
            Ok((stored.iter().map(|s| s.size).sum(), stored.len() as u64))
        })
        .await
        .ok()?;
        *self.views.stored.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), totals));
        Some(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_with_digests_and_the_older_name_only_views_are_read() {
        let old = r#"{"member":"http://a/","caches":{"c":{"c/r":["1","latest"]}}}"#;
        let view: View = serde_json::from_str(old).unwrap();
        let names: Vec<&str> = view.caches["c"]["c/r"].iter().map(ViewTag::name).collect();
        assert_eq!(names, ["1", "latest"]);
        let new = View {
            member: "http://a/".into(),
            caches: BTreeMap::from([(
                "c".to_string(),
                BTreeMap::from([(
                    "c/r".to_string(),
                    vec![ViewTag::At {
                        tag: "1".into(),
                        digest: format!("sha256:{}", "a".repeat(64)),
                        confirmed_at: 7,
                    }],
                )]),
            )]),
        };
        let read: View = serde_json::from_slice(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(read, new);
    }
}
