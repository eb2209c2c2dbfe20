//! `/pulp/api/v3/distributions/container/pull-through/`: base paths served
//! through a remote. Changes answer 202 with a (finished) task, as Pulp's do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use warp::http::Method;
use warp::reply::Response as Reply;

use super::http::{
    filter, id_from_href, nullable, ok, paginate, timestamp, ApiError, Request, Target,
};
use super::{hrefs, remotes, Api};
use crate::domain::Platforms;
use crate::manage::{DistributionRecord, PinTarget, PrefetchOptions};
use crate::visibility::Viewer;

pub(crate) const COLLECTION: &str = "/pulp/api/v3/distributions/container/pull-through/";

pub(crate) fn href(id: &str) -> String {
    format!("{COLLECTION}{id}/")
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DistributionResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub name: String,
    pub base_path: String,
    pub remote: String,
    /// The per-repository distributions pulls created.
    pub distributions: Vec<String>,
    pub private: bool,
    pub description: Option<String>,
    pub hidden: bool,
    pub pulp_labels: BTreeMap<String, String>,
    pub content_guard: Option<String>,
    pub repository: Option<String>,
    pub repository_version: Option<String>,
    /// ferry's addition: "config" for caches from the config file, else "api".
    pub ferry_source: &'static str,
    /// ferry's addition: whether the whole cache is pinned (`pin/`).
    pub pinned: bool,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct DistributionInput {
    pub name: Option<String>,
    pub base_path: Option<String>,
    pub remote: Option<String>,
    pub private: Option<bool>,
    #[serde(deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub hidden: Option<bool>,
    pub pulp_labels: Option<BTreeMap<String, String>>,
}

impl DistributionInput {
    fn apply(self, d: &mut DistributionRecord) -> Result<(), ApiError> {
        if let Some(remote) = self.remote {
            d.remote_id = id_from_href(&remote, remotes::COLLECTION)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        json!({ "remote": ["Invalid hyperlink - No URL match."] }),
                    )
                })?
                .to_string();
        }
        if let Some(v) = self.name {
            d.name = v;
        }
        if let Some(v) = self.base_path {
            d.base_path = v.trim_matches('/').to_string();
        }
        if let Some(v) = self.private {
            d.private = v;
        }
        if let Some(v) = self.description {
            d.description = v;
        }
        if let Some(v) = self.hidden {
            d.hidden = v;
        }
        if let Some(v) = self.pulp_labels {
            d.pulp_labels = v;
        }
        Ok(())
    }
}

fn required(input: &DistributionInput) -> Result<(), ApiError> {
    let mut missing = serde_json::Map::new();
    for (field, present) in [
        ("name", input.name.is_some()),
        ("base_path", input.base_path.is_some()),
        ("remote", input.remote.is_some()),
    ] {
        if !present {
            missing.insert(field.into(), json!(["This field is required."]));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(missing.into()))
    }
}

async fn response(
    api: &Api,
    viewer: &Viewer,
    d: &DistributionRecord,
) -> Result<DistributionResponse, ApiError> {
    let children = api
        .manager
        .repository_ids_under(viewer, &d.base_path)
        .await?;
    Ok(DistributionResponse {
        pulp_href: href(&d.id),
        prn: format!("prn:container.containerpullthroughdistribution:{}", d.id),
        pulp_created: timestamp(d.created),
        pulp_last_updated: timestamp(d.updated),
        name: d.name.clone(),
        base_path: d.base_path.clone(),
        remote: remotes::href(&d.remote_id),
        distributions: children
            .iter()
            .map(|id| hrefs::repository_distribution(id))
            .collect(),
        private: d.private,
        description: d.description.clone(),
        hidden: d.hidden,
        pulp_labels: d.pulp_labels.clone(),
        content_guard: None,
        repository: None,
        repository_version: None,
        ferry_source: if d.from_config { "config" } else { "api" },
        pinned: api.manager.cache_pinned(&d.base_path).await?,
    })
}

pub(crate) async fn list(api: &Api, req: &Request, viewer: &Viewer) -> Result<Reply, ApiError> {
    let mut items = Vec::new();
    for d in api.manager.distributions().await? {
        if viewer.sees_cache(&d.base_path) {
            items.push(response(api, viewer, &d).await?);
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    paginate(filter(items, req), req)
}

pub(crate) async fn create(api: &Api, req: &Request) -> Result<Reply, ApiError> {
    let input: DistributionInput = req.json()?;
    required(&input)?;
    let mut record = DistributionRecord::new(uuid::Uuid::new_v4().to_string());
    input.apply(&mut record)?;
    let saved = api.manager.save_distribution(record).await?;
    tracing::info!(distribution = %saved.name, base_path = %saved.base_path, "distribution created");
    api.task_reply("ferry.distribution.create", vec![href(&saved.id)])
        .await
}

pub(crate) async fn one(
    api: &Api,
    req: &Request,
    viewer: &Viewer,
    id: &str,
) -> Result<Reply, ApiError> {
    let mut record = api.manager.distribution(id).await?;
    if !viewer.sees_cache(&record.base_path) {
        return Err(ApiError::not_found());
    }
    match req.method {
        Method::GET | Method::HEAD => ok(&response(api, viewer, &record).await?),
        Method::PUT | Method::PATCH => {
            let input: DistributionInput = req.json()?;
            if req.method == Method::PUT {
                required(&input)?;
            }
            input.apply(&mut record)?;
            api.manager.save_distribution(record).await?;
            api.task_reply("ferry.distribution.update", vec![]).await
        }
        Method::DELETE => {
            api.manager.delete_distribution(id).await?;
            api.task_reply("ferry.distribution.delete", vec![]).await
        }
        ref other => Err(ApiError::method_not_allowed(other)),
    }
}

/// `POST <distribution href>pin/` and `unpin/` (ferry's addition): the
/// whole cache, its present and future content.
async fn pin_cache(api: &Api, viewer: &Viewer, id: &str, pin: bool) -> Result<Reply, ApiError> {
    let record = api.manager.distribution(id).await?;
    if !viewer.sees_cache(&record.base_path) {
        return Err(ApiError::not_found());
    }
    let target = PinTarget::Cache(&record.base_path);
    if pin {
        ok(&api.manager.pin(target).await?)
    } else {
        ok(&api.manager.unpin(target).await?)
    }
}

pub(crate) async fn handle(
    api: &Api,
    req: &Request,
    rest: &[&str],
    viewer: &Viewer,
) -> Result<Reply, ApiError> {
    if let ([id, action @ ("pin" | "unpin")], &Method::POST) = (rest, &req.method) {
        return pin_cache(api, viewer, id, *action == "pin").await;
    }
    if let [id, "prefetch"] = rest {
        return prefetch(api, req, viewer, id).await;
    }
    match Target::of(req, rest)? {
        Target::List => list(api, req, viewer).await,
        Target::Create => create(api, req).await,
        Target::One(id) => one(api, req, viewer, id).await,
    }
}

/// `POST <distribution>prefetch/` (ferry's addition): `references`, a list
/// of `repository:tag` (tag wildcards allowed) or `repository@digest`, and
/// `platforms`: `"all"`, a list or comma-separated string of
/// `os/arch[/variant]`, or absent for ferry's own platform; `referrers`:
/// also each image's referrers.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct PrefetchInput {
    pub references: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub platforms: Option<serde_json::Value>,
    /// ferry's addition: also fetch each image's referrers (signatures,
    /// SBOMs, attestations) and their blobs, so they verify offline.
    #[serde(default)]
    pub referrers: bool,
}

fn platforms_of(value: Option<serde_json::Value>) -> Result<Platforms, ApiError> {
    use serde_json::Value;
    let refused = || {
        ApiError::bad_request(json!({ "platforms": [
            "Give \"all\", or a list of os/architecture[/variant] (a list or comma-separated)."
        ] }))
    };
    let names: Vec<String> = match value {
        None | Some(Value::Null) => vec![crate::domain::host_platform()],
        Some(Value::String(s)) if s.trim() == "all" => return Ok(Platforms::All),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(list)) => list
            .into_iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(refused))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(refused()),
    };
    let valid = crate::domain::valid_platform;
    if names.is_empty() || names.len() > 16 || !names.iter().all(|p| valid(p)) {
        return Err(refused());
    }
    Ok(Platforms::Listed(names))
}

async fn prefetch(api: &Api, req: &Request, viewer: &Viewer, id: &str) -> Result<Reply, ApiError> {
    let record = api.manager.distribution(id).await?;
    if !viewer.sees_cache(&record.base_path) {
        return Err(ApiError::not_found());
    }
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed(&req.method));
    }
    let input: PrefetchInput = req.json()?;
    let options = PrefetchOptions {
        platforms: platforms_of(input.platforms)?,
        referrers: input.referrers,
    };
    let task = api
        .manager
        .start_prefetch(id, input.references, options)
        .await?;
    tracing::info!(base_path = %record.base_path, task = %task, "prefetch accepted");
    Ok(super::http::json_response(
        warp::http::StatusCode::ACCEPTED,
        &super::tasks::AsyncOperationResponse {
            task: format!("{}{task}/", super::tasks::COLLECTION),
        },
    ))
}
