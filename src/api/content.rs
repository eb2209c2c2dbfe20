//! `/pulp/api/v3/content/container/{tags,manifests,blobs}/`: what the local
//! repositories hold, filterable by `repository_version`, `name`, `digest`
//! and `media_type`. Manifests and blobs are named by digest in hrefs.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};
use warp::http::Method;
use warp::reply::Response as Reply;

use super::http::{
    filter, ok, page_of, page_reply, paginate, timestamp_millis, timestamp_secs, ApiError, Request,
};
use super::{hrefs, Api};
use crate::domain::Digest;
use crate::manage::{ManifestDetails, ManifestRecord, PinTarget, RepoContent, TagRecord};
use crate::visibility::Viewer;

fn tag_response(repo_id: &str, repo: &str, tag: String, t: &TagRecord) -> TagResponse {
    TagResponse {
        pulp_href: hrefs::tag(repo_id, &tag),
        prn: format!("prn:container.tag:{repo_id}:{tag}"),
        pulp_created: timestamp_secs(t.confirmed_at),
        pulp_last_updated: timestamp_secs(t.confirmed_at),
        pulp_labels: Map::new(),
        tagged_manifest: hrefs::manifest(&t.digest),
        repository: repo.to_string(),
        digest: t.digest.to_string(),
        media_type: t.media_type.to_string(),
        last_confirmed: timestamp_secs(t.confirmed_at),
        last_pulled: (t.last_pulled > 0).then(|| timestamp_millis(t.last_pulled)),
        name: tag,
        size: 0,
        platforms: Vec::new(),
        pinned: false,
        imported: None,
    }
}

/// Fills in what only the stored content knows (size, platforms), for
/// the tags of one page only.
async fn with_details(api: &Api, tags: &mut [TagResponse]) -> Result<(), ApiError> {
    let digests = tags
        .iter()
        .filter_map(|t| t.digest.parse::<Digest>().ok())
        .collect();
    let details = api.manager.tag_details(digests).await?;
    for (tag, detail) in tags.iter_mut().zip(details) {
        tag.size = detail.size;
        tag.platforms = detail.platforms;
    }
    let names: Vec<(&str, &str)> = tags
        .iter()
        .map(|t| (t.repository.as_str(), t.name.as_str()))
        .collect();
    let pinned = api.manager.pinned_tags(&names).await?;
    let marks = api.manager.import_marks(&names).await?;
    for (tag, pinned) in tags.iter_mut().zip(pinned) {
        tag.pinned = pinned;
    }
    for (tag, mark) in tags.iter_mut().zip(marks) {
        tag.imported = mark.map(Into::into);
    }
    Ok(())
}

/// `GET`, and `POST .../refresh/` (ferry's addition: ask the upstream
/// where the tag points now, whatever its TTL), on one tag.
async fn one_tag(api: &Api, viewer: &Viewer, id: &str, refresh: bool) -> Result<Reply, ApiError> {
    let (repo_id, tag) = id.split_once(':').ok_or_else(ApiError::not_found)?;
    let (name, repo) = api.manager.repository(viewer, repo_id).await?;
    let record = if refresh {
        api.manager.refresh_tag(&repo, tag).await?
    } else {
        api.manager.tag(&name, tag).await?
    };
    if refresh {
        tracing::info!(repository = %name, %tag, digest = %record.digest, "tag refreshed through the API");
    }
    let mut one = [tag_response(repo_id, &name, tag.to_string(), &record)];
    with_details(api, &mut one).await?;
    let [one] = one;
    ok(&one)
}

/// `POST .../pin/` and `.../unpin/` (ferry's addition) on one cached tag.
async fn pin_tag(api: &Api, viewer: &Viewer, id: &str, pin: bool) -> Result<Reply, ApiError> {
    let (repo_id, tag) = id.split_once(':').ok_or_else(ApiError::not_found)?;
    let (name, repo) = api.manager.repository(viewer, repo_id).await?;
    let target = PinTarget::Tag(&name, &repo, tag);
    if pin {
        // Only a cached tag can be pinned: its content is what is weighed.
        api.manager.tag(&name, tag).await?;
        ok(&api.manager.pin(target).await?)
    } else {
        ok(&api.manager.unpin(target).await?)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TagResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub pulp_labels: Map<String, Value>,
    pub name: String,
    pub tagged_manifest: String,
    /// ferry's additions: the repository, the digest and media type the tag
    /// points at, and when upstream last confirmed it.
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    pub last_confirmed: String,
    /// When a client last pulled the tag (absent if never recorded).
    pub last_pulled: Option<String>,
    /// Bytes of the manifest, its children and all their blobs.
    pub size: u64,
    /// For an index: the platforms it lists (`os/architecture[/variant]`).
    pub platforms: Vec<String>,
    /// Whether quota eviction keeps it: pinned itself, or its repository or
    /// cache is (ferry's addition).
    pub pinned: bool,
    /// Where an import brought it from, while it points there (ferry's
    /// addition); null otherwise.
    pub imported: Option<super::bundles_import::ImportedResponse>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ManifestResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub pulp_labels: Map<String, Value>,
    pub digest: String,
    pub schema_version: u32,
    pub media_type: String,
    pub listed_manifests: Vec<String>,
    pub config_blob: Option<String>,
    pub blobs: Vec<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub compressed_image_size: Option<u64>,
    pub annotations: BTreeMap<String, String>,
    pub artifact_type: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct BlobResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub pulp_labels: Map<String, Value>,
    pub digest: String,
    /// ferry's addition: bytes on disk (absent until the blob was pulled).
    pub size: Option<u64>,
}

fn manifest_response(
    digest: &Digest,
    record: &ManifestRecord,
    details: ManifestDetails,
) -> ManifestResponse {
    let (config_blob, layers) = match record.blobs.split_first() {
        Some((config, layers)) if !record.media_type.is_index() => {
            (Some(hrefs::blob(config)), layers)
        }
        _ => (None, &record.blobs[..]),
    };
    ManifestResponse {
        pulp_href: hrefs::manifest(digest),
        prn: format!("prn:container.manifest:{digest}"),
        pulp_created: timestamp_secs(record.stored_at),
        pulp_last_updated: timestamp_secs(record.stored_at),
        pulp_labels: Map::new(),
        digest: digest.to_string(),
        schema_version: 2,
        media_type: record.media_type.to_string(),
        listed_manifests: record.children.iter().map(hrefs::manifest).collect(),
        config_blob,
        blobs: layers.iter().map(hrefs::blob).collect(),
        kind: if record.media_type.is_index() {
            "index"
        } else if record.subject.is_some() {
            "artifact"
        } else {
            "image"
        },
        architecture: details.architecture,
        os: details.os,
        compressed_image_size: details.compressed_image_size,
        annotations: details.annotations,
        artifact_type: record.artifact_type.clone(),
    }
}

/// The repositories a request's `repository_version` filter selects: one
/// (its current version) or, without the filter, all `viewer` may see.
async fn selected(
    api: &Api,
    req: &Request,
    viewer: &Viewer,
) -> Result<Vec<(String, RepoContent)>, ApiError> {
    let repos = api.manager.repositories(viewer).await?;
    let wanted = req.query.get("repository_version").map(|href| {
        let rest = href.split(hrefs::REPOSITORIES).nth(1).unwrap_or_default();
        let mut parts = rest.trim_end_matches('/').split('/');
        (
            parts.next().map(str::to_string),
            parts.nth(1).and_then(|n| n.parse::<u64>().ok()),
        )
    });
    let mut out = Vec::new();
    for (name, record) in repos {
        if let Some((id, number)) = &wanted {
            if id.as_deref() != Some(record.id.as_str()) || *number != Some(record.version) {
                continue;
            }
        }
        let content = api.manager.repository_content(&name).await?;
        out.push((name, content));
    }
    Ok(out)
}

/// A detail URL (`.../<digest>/`) answers its one item or 404; a list URL
/// a filtered page.
fn one_or_page<T: Serialize>(items: Vec<T>, one: bool, req: &Request) -> Result<Reply, ApiError> {
    if one {
        return items
            .into_iter()
            .next()
            .map_or_else(|| Err(ApiError::not_found()), |item| ok(&item));
    }
    paginate(filter(items, req), req)
}

pub(super) async fn handle(
    api: &Api,
    req: &Request,
    rest: &[&str],
    viewer: &Viewer,
) -> Result<Reply, ApiError> {
    if let (["tags", id, "refresh"], &Method::POST) = (rest, &req.method) {
        return one_tag(api, viewer, id, true).await;
    }
    if let (["tags", id, action @ ("pin" | "unpin")], &Method::POST) = (rest, &req.method) {
        return pin_tag(api, viewer, id, *action == "pin").await;
    }
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(&req.method));
    }
    match rest {
        ["tags"] => {
            // Pulls noted in memory first, so `last_pulled` is current.
            api.manager.flush_recency().await?;
            let ids: HashMap<String, String> = api
                .manager
                .repositories(viewer)
                .await?
                .into_iter()
                .map(|(name, r)| (name, r.id))
                .collect();
            let mut items = Vec::new();
            for (name, content) in selected(api, req, viewer).await? {
                let repo_id = ids.get(&name).map_or("", String::as_str);
                for (tag, t) in content.tags {
                    items.push(tag_response(repo_id, &name, tag, &t));
                }
            }
            let mut page = page_of(filter(items, req), req);
            with_details(api, &mut page.results).await?;
            page_reply(&page, req)
        }
        ["tags", id] => one_tag(api, viewer, id, false).await,
        ["manifests"] | ["manifests", _] => {
            let mut digests = BTreeMap::new();
            for (_, content) in selected(api, req, viewer).await? {
                for (d, r) in content.manifests {
                    if let Some(r) = r {
                        digests.insert(d, r);
                    }
                }
            }
            if let ["manifests", one] = rest {
                digests.retain(|d, _| d.to_string() == *one);
            }
            let items: Vec<_> = api
                .manager
                .manifest_details(digests.into_iter().collect())
                .await?
                .into_iter()
                .map(|(d, r, details)| manifest_response(&d, &r, details))
                .collect();
            one_or_page(items, rest.len() == 2, req)
        }
        ["blobs"] | ["blobs", _] => {
            let mut digests = std::collections::BTreeSet::new();
            for (_, content) in selected(api, req, viewer).await? {
                digests.extend(content.blobs);
            }
            if let ["blobs", one] = rest {
                digests.retain(|d| d.to_string() == *one);
            }
            let items: Vec<_> = api
                .manager
                .blobs(digests)
                .await?
                .into_iter()
                .map(|(d, record)| {
                    let at = record.as_ref().map_or(0, |r| r.stored_at);
                    BlobResponse {
                        pulp_href: hrefs::blob(&d),
                        prn: format!("prn:container.blob:{d}"),
                        pulp_created: timestamp_secs(at),
                        pulp_last_updated: timestamp_secs(at),
                        pulp_labels: Map::new(),
                        digest: d.to_string(),
                        size: record.map(|r| r.size),
                    }
                })
                .collect();
            one_or_page(items, rest.len() == 2, req)
        }
        _ => Err(ApiError::not_found()),
    }
}
