//! `/pulp/api/v3/remotes/container/pull-through/`: upstream registries.
//! Secrets (passwords, keys) are write-only: `hidden_fields` says whether
//! each is set, and no response ever carries one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response as Reply;

use super::http::{
    filter, json_response, nullable, ok, paginate, timestamp, ApiError, Request, Target,
};
use super::Api;
use crate::config::{StaleIf, TagPolicy};
use crate::domain::{Platforms, Secret};
use crate::manage::RemoteRecord;

pub(crate) const COLLECTION: &str = "/pulp/api/v3/remotes/container/pull-through/";

pub(crate) fn href(id: &str) -> String {
    format!("{COLLECTION}{id}/")
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HiddenField {
    pub name: &'static str,
    pub is_set: bool,
}

/// A pull-through remote as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RemoteResponse {
    pub pulp_href: String,
    pub prn: String,
    pub pulp_created: String,
    pub pulp_last_updated: String,
    pub name: String,
    pub url: String,
    pub pulp_labels: BTreeMap<String, String>,
    pub policy: &'static str,
    pub hidden_fields: Vec<HiddenField>,
    pub ca_cert: Option<String>,
    pub client_cert: Option<String>,
    pub tls_validation: bool,
    pub proxy_url: Option<String>,
    pub max_retries: Option<i64>,
    pub total_timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub sock_connect_timeout: Option<f64>,
    pub sock_read_timeout: Option<f64>,
    pub headers: Option<Vec<BTreeMap<String, String>>>,
    pub download_concurrency: Option<i64>,
    pub rate_limit: Option<i64>,
    pub includes: Option<Vec<String>>,
    pub excludes: Option<Vec<String>>,
    /// ferry's addition: "config" for caches from the config file, else "api".
    pub ferry_source: &'static str,
    /// ferry's addition: tag patterns with their own TTL (seconds or
    /// "never"), first match wins.
    #[schema(value_type = Vec<Object>)]
    pub tag_policies: Vec<TagPolicy>,
    /// ferry's addition: the upstream answers after which cached content
    /// is still served ("error", "unauthorized", "not_found").
    #[schema(value_type = Vec<String>)]
    pub stale_if: StaleIf,
    /// ferry's addition: most bytes this cache keeps.
    pub max_size: Option<u64>,
    /// ferry's addition: most upstream requests at once.
    pub max_upstream_connections: Option<u32>,
    /// ferry's addition: most bytes per second from the upstream.
    pub max_upstream_bandwidth: Option<u64>,
    /// ferry's addition: when a pull gets an index, these platforms of it
    /// ("all" or a list of os/arch[/variant]) are fetched in the background.
    #[serde(serialize_with = "crate::config::complete_images::serialize")]
    #[schema(value_type = Option<Object>)]
    pub complete_images: Option<Platforms>,
}

impl From<&RemoteRecord> for RemoteResponse {
    fn from(r: &RemoteRecord) -> Self {
        let hidden = |name, set: bool| HiddenField { name, is_set: set };
        let s = &r.spec;
        RemoteResponse {
            pulp_href: href(&r.id),
            prn: format!("prn:container.containerpullthroughremote:{}", r.id),
            pulp_created: timestamp(r.created),
            pulp_last_updated: timestamp(r.updated),
            name: r.name.clone(),
            url: s.url.clone(),
            pulp_labels: r.pulp_labels.clone(),
            policy: "on_demand",
            hidden_fields: vec![
                hidden("client_key", s.client_key.is_some()),
                hidden("proxy_username", s.proxy_username.is_some()),
                hidden("proxy_password", s.proxy_password.is_some()),
                hidden("username", s.username.is_some()),
                hidden("password", s.password.is_some()),
            ],
            ca_cert: s.ca_cert.clone(),
            client_cert: s.client_cert.clone(),
            tls_validation: s.tls_validation,
            proxy_url: s.proxy_url.clone(),
            max_retries: s.max_retries,
            total_timeout: s.total_timeout,
            connect_timeout: s.connect_timeout,
            sock_connect_timeout: s.sock_connect_timeout,
            sock_read_timeout: s.sock_read_timeout,
            headers: (!s.headers.is_empty()).then(|| s.headers.clone()),
            download_concurrency: s.download_concurrency,
            rate_limit: s.rate_limit,
            includes: s.includes.clone(),
            excludes: s.excludes.clone(),
            ferry_source: if r.from_config { "config" } else { "api" },
            tag_policies: s.policy.tag_policies.clone(),
            stale_if: s.policy.stale_if,
            max_size: s.policy.max_size,
            max_upstream_connections: s.policy.max_upstream_connections,
            max_upstream_bandwidth: s.policy.max_upstream_bandwidth,
            complete_images: s.policy.complete_images.clone(),
        }
    }
}

/// Fields a create, update or partial update may set. Absent fields are
/// left as they are (PUT additionally requires `name` and `url`).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub(crate) struct RemoteInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub pulp_labels: Option<BTreeMap<String, String>>,
    pub policy: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub username: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub password: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub ca_cert: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub client_cert: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub client_key: Option<Option<String>>,
    pub tls_validation: Option<bool>,
    #[serde(deserialize_with = "nullable")]
    pub proxy_url: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub proxy_username: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub proxy_password: Option<Option<String>>,
    #[serde(deserialize_with = "nullable")]
    pub headers: Option<Option<Vec<BTreeMap<String, String>>>>,
    #[serde(deserialize_with = "nullable")]
    pub max_retries: Option<Option<i64>>,
    #[serde(deserialize_with = "nullable")]
    pub total_timeout: Option<Option<f64>>,
    #[serde(deserialize_with = "nullable")]
    pub connect_timeout: Option<Option<f64>>,
    #[serde(deserialize_with = "nullable")]
    pub sock_connect_timeout: Option<Option<f64>>,
    #[serde(deserialize_with = "nullable")]
    pub sock_read_timeout: Option<Option<f64>>,
    #[serde(deserialize_with = "nullable")]
    pub download_concurrency: Option<Option<i64>>,
    #[serde(deserialize_with = "nullable")]
    pub rate_limit: Option<Option<i64>>,
    #[serde(deserialize_with = "nullable")]
    pub includes: Option<Option<Vec<String>>>,
    #[serde(deserialize_with = "nullable")]
    pub excludes: Option<Option<Vec<String>>>,
    #[serde(deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tag_policies: Option<Option<Vec<TagPolicy>>>,
    #[serde(deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub stale_if: Option<Option<StaleIf>>,
    #[serde(deserialize_with = "nullable")]
    pub max_size: Option<Option<u64>>,
    #[serde(deserialize_with = "nullable")]
    pub max_upstream_connections: Option<Option<u32>>,
    #[serde(deserialize_with = "nullable")]
    pub max_upstream_bandwidth: Option<Option<u64>>,
    #[serde(deserialize_with = "nullable_platforms")]
    #[schema(value_type = Option<Object>)]
    pub complete_images: Option<Option<Platforms>>,
}

/// `complete_images`: absent leaves it, null turns it off, else `"all"` or
/// a list.
fn nullable_platforms<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Platforms>>, D::Error> {
    crate::config::complete_images::deserialize(d).map(Some)
}

impl RemoteInput {
    fn apply(self, record: &mut RemoteRecord) -> Result<(), ApiError> {
        if let Some(policy) = self.policy.filter(|p| p != "on_demand") {
            return Err(ApiError::bad_request(
                serde_json::json!({ "policy": [format!("\"{policy}\" is not a valid choice.")] }),
            ));
        }
        let secret = |v: Option<String>| v.filter(|s| !s.is_empty()).map(Secret);
        if let Some(v) = self.name {
            record.name = v;
        }
        if let Some(v) = self.pulp_labels {
            record.pulp_labels = v;
        }
        let r = &mut record.spec;
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = self.$field {
                    r.$field = v;
                }
            };
        }
        set!(url);
        set!(username);
        set!(ca_cert);
        set!(client_cert);
        set!(tls_validation);
        set!(proxy_url);
        set!(proxy_username);
        set!(max_retries);
        set!(total_timeout);
        set!(connect_timeout);
        set!(sock_connect_timeout);
        set!(sock_read_timeout);
        set!(download_concurrency);
        set!(rate_limit);
        set!(includes);
        set!(excludes);
        if let Some(v) = self.password {
            r.password = secret(v);
        }
        if let Some(v) = self.client_key {
            r.client_key = secret(v);
        }
        if let Some(v) = self.proxy_password {
            r.proxy_password = secret(v);
        }
        if let Some(v) = self.headers {
            r.headers = v.unwrap_or_default();
        }
        // ferry's policy fields: null resets a field to its default.
        let policy = &mut r.policy;
        if let Some(v) = self.tag_policies {
            policy.tag_policies = v.unwrap_or_default();
        }
        if let Some(v) = self.stale_if {
            policy.stale_if = v.unwrap_or_default();
        }
        if let Some(v) = self.max_size {
            policy.max_size = v;
        }
        if let Some(v) = self.max_upstream_connections {
            policy.max_upstream_connections = v;
        }
        if let Some(v) = self.max_upstream_bandwidth {
            policy.max_upstream_bandwidth = v;
        }
        if let Some(v) = self.complete_images {
            policy.complete_images = v;
        }
        Ok(())
    }
}

fn required(input: &RemoteInput) -> Result<(), ApiError> {
    let mut missing = serde_json::Map::new();
    for (field, present) in [("name", input.name.is_some()), ("url", input.url.is_some())] {
        if !present {
            missing.insert(field.into(), serde_json::json!(["This field is required."]));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(missing.into()))
    }
}

pub(crate) async fn list(api: &Api, req: &Request) -> Result<Reply, ApiError> {
    let remotes = api.manager.remotes().await?;
    let mut items: Vec<RemoteResponse> = remotes.iter().map(RemoteResponse::from).collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    paginate(filter(items, req), req)
}

pub(crate) async fn create(api: &Api, req: &Request) -> Result<Reply, ApiError> {
    let input: RemoteInput = req.json()?;
    required(&input)?;
    let mut record = RemoteRecord::new(uuid::Uuid::new_v4().to_string());
    input.apply(&mut record)?;
    let saved = api.manager.save_remote(record).await?;
    tracing::info!(remote = %saved.name, url = %saved.spec.url, "remote created");
    Ok(json_response(
        StatusCode::CREATED,
        &RemoteResponse::from(&saved),
    ))
}

/// Read, update (PUT/PATCH) or delete one remote.
pub(crate) async fn one(api: &Api, req: &Request, id: &str) -> Result<Reply, ApiError> {
    let mut record = api.manager.remote(id).await?;
    match req.method {
        Method::GET | Method::HEAD => ok(&RemoteResponse::from(&record)),
        Method::PUT | Method::PATCH => {
            let input: RemoteInput = req.json()?;
            if req.method == Method::PUT {
                required(&input)?;
            }
            input.apply(&mut record)?;
            // Pulp updates remotes in a task; scripts wait on it.
            api.manager.save_remote(record).await?;
            api.task_reply("ferry.remote.update", vec![]).await
        }
        Method::DELETE => {
            api.manager.delete_remote(id).await?;
            api.task_reply("ferry.remote.delete", vec![]).await
        }
        ref other => Err(ApiError::method_not_allowed(other)),
    }
}

pub(crate) async fn handle(api: &Api, req: &Request, rest: &[&str]) -> Result<Reply, ApiError> {
    match Target::of(req, rest)? {
        Target::List => list(api, req).await,
        Target::Create => create(api, req).await,
        Target::One(id) => one(api, req, id).await,
    }
}
