//! `/pulp/api/v3/repositories/container/container/` (the local repositories
//! pulls create, each with one current version) and
//! `/pulp/api/v3/distributions/container/container/` (their distributions).

use serde::Serialize;
use serde_json::{json, Map, Value};
use warp::http::Method;
use warp::reply::Response as Reply;

use super::hrefs::{self, REPOSITORIES as COLLECTION};
use super::http::{filter, ok, paginate, timestamp_millis, timestamp_secs, ApiError, Request};
use super::Api;
use std::collections::HashMap;

use crate::manage::{Counts, ImportMark, PinTarget, Pins, RepoRecord, RepoSummary};
use crate::visibility::Viewer;

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RepositoryResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub versions_href: String,
    pub pulp_labels: Map<String, Value>,
    pub latest_version_href: String,
    pub name: String,
    pub description: Option<String>,
    pub retain_repo_versions: u32,
    pub retain_checkpoints: Option<u32>,
    pub remote: Option<String>,
    pub manifest_signing_service: Option<String>,
    /// ferry's additions: the cache (pull-through base path) it belongs to,
    /// its tags, its bytes on disk (manifests and blobs; a blob shared with
    /// another repository counts in both) and the last pull of any tag.
    pub cache: String,
    pub tag_count: u64,
    pub size: u64,
    pub last_pulled: Option<String>,
    /// What `podman pull` can name to get something the repository holds:
    /// `<name>:<tag>` of its most recently pulled tag, else
    /// `<name>@<digest>` of a manifest; absent when it holds none.
    pub pull_reference: Option<String>,
    /// Whether quota eviction keeps all its tags: the repository or its
    /// cache is pinned (ferry's addition; a single pinned tag shows on the tag).
    pub pinned: bool,
    /// The latest import that brought one of its tags, while that tag still
    /// points there (ferry's addition); null otherwise.
    pub imported: Option<super::bundles_import::ImportedResponse>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RepositoryVersionResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub number: u64,
    pub repository: String,
    pub base_version: Option<String>,
    /// `added`/`removed`/`present`, each `{"container.tag": {count, href}, ...}`.
    #[schema(value_type = Object)]
    pub content_summary: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RepositoryDistributionResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub name: String,
    pub base_path: String,
    pub registry_path: String,
    pub repository: String,
    pub repository_version: Option<String>,
    pub remote: Option<String>,
    pub private: bool,
    pub description: Option<String>,
    pub hidden: bool,
    pub pulp_labels: Map<String, Value>,
    pub content_guard: Option<String>,
}

fn repository(
    name: &str,
    r: &RepoRecord,
    summary: &RepoSummary,
    pins: &Pins,
    imports: &HashMap<String, ImportMark>,
) -> RepositoryResponse {
    RepositoryResponse {
        pulp_href: hrefs::repository(&r.id),
        prn: format!("prn:container.containerrepository:{}", r.id),
        pulp_created: timestamp_secs(r.created_at),
        pulp_last_updated: timestamp_secs(r.updated_at),
        versions_href: format!("{COLLECTION}{}/versions/", r.id),
        pulp_labels: Map::new(),
        latest_version_href: hrefs::version(&r.id, r.version),
        name: name.to_string(),
        description: None,
        retain_repo_versions: 1,
        retain_checkpoints: None,
        remote: None,
        manifest_signing_service: None,
        cache: r.cache.clone(),
        tag_count: summary.tags,
        size: summary.bytes,
        last_pulled: (summary.last_pulled > 0).then(|| timestamp_millis(summary.last_pulled)),
        pull_reference: summary.pull_reference.clone(),
        pinned: pins.holds_repository(&r.cache, name),
        imported: imports.get(name).cloned().map(Into::into),
    }
}

/// Every repository `viewer` may see as the API shows it, in the order
/// `ordering` asks (`name`, `size`, `last_pulled`, `pulp_created`; `-` for
/// descending).
async fn listed(
    api: &Api,
    req: &Request,
    viewer: &Viewer,
) -> Result<Vec<RepositoryResponse>, ApiError> {
    let mut repos = api.manager.repository_summaries(viewer).await?;
    let ordering = req.query.get("ordering").map_or("name", String::as_str);
    let (descending, key) = match ordering.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, ordering),
    };
    match key {
        "name" => {}
        "size" => repos.sort_by_key(|(_, _, s)| s.bytes),
        "last_pulled" => repos.sort_by_key(|(_, _, s)| s.last_pulled),
        "pulp_created" => repos.sort_by_key(|(_, r, _)| r.created_at),
        other => {
            return Err(ApiError::bad_request(json!({
                "ordering": [format!("Unknown ordering \"{other}\": use name, size, last_pulled or pulp_created, with - for descending.")]
            })))
        }
    }
    if descending {
        repos.reverse();
    }
    let pins = api.manager.pins().await?;
    let imports = api.manager.latest_imports().await?;
    Ok(repos
        .iter()
        .map(|(name, r, summary)| repository(name, r, summary, &pins, &imports))
        .collect())
}

fn summary_part(counts: Counts, version: &str, filter_key: &str) -> Value {
    let mut part = Map::new();
    for (kind, path, count) in [
        ("container.blob", "blobs", counts.blobs),
        ("container.manifest", "manifests", counts.manifests),
        ("container.tag", "tags", counts.tags),
    ] {
        if count > 0 {
            part.insert(
                kind.into(),
                json!({ "count": count, "href": format!("/pulp/api/v3/content/container/{path}/?{filter_key}={version}") }),
            );
        }
    }
    Value::Object(part)
}

async fn version(
    api: &Api,
    name: &str,
    r: &RepoRecord,
) -> Result<RepositoryVersionResponse, ApiError> {
    let content = api.manager.repository_content(name).await?;
    let present = Counts {
        tags: content.tags.len() as u64,
        manifests: content.manifests.len() as u64,
        blobs: content.blobs.len() as u64,
    };
    let v = hrefs::version(&r.id, r.version);
    Ok(RepositoryVersionResponse {
        pulp_href: v.clone(),
        prn: format!("prn:core.repositoryversion:{}-{}", r.id, r.version),
        pulp_created: timestamp_secs(r.updated_at),
        pulp_last_updated: timestamp_secs(r.updated_at),
        number: r.version,
        repository: hrefs::repository(&r.id),
        base_version: None,
        content_summary: json!({
            "added": summary_part(r.last_change.added, &v, "repository_version_added"),
            "removed": summary_part(r.last_change.removed, &v, "repository_version_removed"),
            "present": summary_part(present, &v, "repository_version"),
        }),
    })
}

fn distribution(
    api: &Api,
    req: &Request,
    name: &str,
    r: &RepoRecord,
) -> RepositoryDistributionResponse {
    let private = api.manager.serves_privately(&r.cache);
    RepositoryDistributionResponse {
        pulp_href: hrefs::repository_distribution(&r.id),
        prn: format!("prn:container.containerdistribution:{}", r.id),
        pulp_created: timestamp_secs(r.created_at),
        pulp_last_updated: timestamp_secs(r.updated_at),
        name: name.to_string(),
        base_path: name.to_string(),
        registry_path: format!("{}/{name}", req.host()),
        repository: hrefs::repository(&r.id),
        repository_version: None,
        remote: None,
        private,
        description: None,
        hidden: false,
        pulp_labels: Map::new(),
        content_guard: None,
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(super) struct RemoveInput {
    /// Hrefs of tags of this repository (`/pulp/api/v3/content/container/tags/<id>/`).
    pub content_units: Vec<String>,
}

/// `POST <repository>/remove/ {"content_units": [tag hrefs]}`, as in Pulp:
/// the tags leave the repository (a new version), and what nothing else
/// references is freed.
async fn remove_content(api: &Api, req: &Request, name: &str, id: &str) -> Result<Reply, ApiError> {
    let input: RemoveInput = req.json()?;
    let mut tags = Vec::new();
    for href in &input.content_units {
        match hrefs::tag_of(href) {
            Some((repo_id, tag)) if repo_id == id => tags.push(tag),
            _ => {
                return Err(ApiError::bad_request(json!({
                    "content_units": [format!("{href} is not a tag of this repository (only tags can be removed).")]
                })))
            }
        }
    }
    for tag in tags {
        let freed = api.manager.delete_tag(name, &tag).await?;
        tracing::info!(repository = %name, %tag, bytes_freed = freed, "tag removed through the API");
    }
    api.task_reply("ferry.repository.remove", vec![]).await
}

pub(super) async fn handle(
    api: &Api,
    req: &Request,
    rest: &[&str],
    viewer: &Viewer,
) -> Result<Reply, ApiError> {
    match (rest, &req.method) {
        ([], &Method::GET) => paginate(filter(listed(api, req, viewer).await?, req), req),
        ([id], &Method::GET) => {
            let (name, r) = api.manager.repository(viewer, id).await?;
            let summary = api.manager.repository_summary(&name).await?;
            let pins = api.manager.pins().await?;
            let imports = api.manager.latest_imports().await?;
            ok(&repository(&name, &r, &summary, &pins, &imports))
        }
        ([id, action @ ("pin" | "unpin")], &Method::POST) => {
            let (name, r) = api.manager.repository(viewer, id).await?;
            let target = PinTarget::Repository(&name, &r);
            if *action == "pin" {
                ok(&api.manager.pin(target).await?)
            } else {
                ok(&api.manager.unpin(target).await?)
            }
        }
        ([id, "remove"], &Method::POST) => {
            let (name, _) = api.manager.repository(viewer, id).await?;
            remove_content(api, req, &name, id).await
        }
        ([id], &Method::DELETE) => {
            let (name, _) = api.manager.repository(viewer, id).await?;
            let freed = api.manager.delete_repository(&name).await?;
            tracing::info!(repository = %name, bytes_freed = freed, "repository deleted through the API");
            api.task_reply("ferry.repository.delete", vec![]).await
        }
        ([id, "versions"], &Method::GET) => {
            let (name, r) = api.manager.repository(viewer, id).await?;
            paginate(vec![version(api, &name, &r).await?], req)
        }
        ([id, "versions", number], &Method::GET) => {
            let (name, r) = api.manager.repository(viewer, id).await?;
            if number.parse::<u64>().ok() != Some(r.version) {
                // Only the current version is kept.
                return Err(ApiError::not_found());
            }
            ok(&version(api, &name, &r).await?)
        }
        (_, other) if !matches!(*other, Method::GET) => Err(ApiError::method_not_allowed(other)),
        _ => Err(ApiError::not_found()),
    }
}

pub(super) async fn handle_distributions(
    api: &Api,
    req: &Request,
    rest: &[&str],
    viewer: &Viewer,
) -> Result<Reply, ApiError> {
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let items = api
                .manager
                .repositories(viewer)
                .await?
                .iter()
                .map(|(n, r)| distribution(api, req, n, r))
                .collect();
            paginate(filter(items, req), req)
        }
        ([id], &Method::GET) => {
            let (name, r) = api.manager.repository(viewer, id).await?;
            ok(&distribution(api, req, &name, &r))
        }
        (_, other) if !matches!(*other, Method::GET) => Err(ApiError::method_not_allowed(other)),
        _ => Err(ApiError::not_found()),
    }
}
