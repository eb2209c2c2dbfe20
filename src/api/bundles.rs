//! Bundles out (ferry's addition, issue 15): `POST
//! /pulp/api/v3/bundles/plan/` answers the sidecar manifest an export of a
//! selection would write; `POST /pulp/api/v3/bundles/export/` answers the
//! bundle itself, a tar (or zstd'ed tar) streamed as it is written. Admin
//! only, as every change is (the dispatch refuses anyone else with 401).

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::{header, HeaderValue, Method, StatusCode};
use warp::reply::{Reply as _, Response as Reply};

use super::http::{ApiError, Request};
use super::Api;
use crate::bundle::Selection;
use crate::manage::GivenManifest;

/// The largest signature entry taken (ed25519's is well under 1 KiB).
const MAX_SIGNATURE: usize = 64 * 1024;

/// What to export (every list takes `*`/`?` wildcards; an empty list takes
/// everything). Documentation of `Selection`'s JSON.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct SelectionInput {
    /// Base paths of caches.
    caches: Vec<String>,
    /// Local repository names, `<base_path>/<repository>`.
    repositories: Vec<String>,
    tags: Vec<String>,
    /// Only tags a pin holds (by itself, its repository or its cache).
    pinned: bool,
    /// Only tags pulled at or after this time (Unix seconds); a tag never
    /// pulled counts from when it was stored.
    pulled_since: Option<u64>,
    /// `"all"`, or a list (or comma-separated string) of
    /// `os/architecture[/variant]`; absent: every platform stored.
    #[schema(value_type = Object)]
    platforms: Option<Value>,
    /// Also the referrers (signatures, SBOMs) stored for what is taken.
    referrers: bool,
    /// Blobs the receiver holds (`ferry inventory`'s `blobs`): left out,
    /// listed as `assumed`.
    #[schema(value_type = Vec<Object>)]
    have: Vec<Value>,
    /// zstd-compress the tar.
    zstd: bool,
}

/// `export/`'s body: a selection, or a manifest `plan/` answered (its
/// exact text) with the signature entry made over it, written verbatim.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportInput {
    #[serde(default)]
    #[schema(value_type = SelectionInput)]
    selection: Option<Value>,
    manifest: String,
    #[serde(default)]
    signature: Option<String>,
}

pub(super) async fn handle(api: &Api, req: &Request, rest: &[&str]) -> Result<Reply, ApiError> {
    let plan = match rest {
        ["plan"] => true,
        ["export"] => false,
        _ => return Err(ApiError::not_found()),
    };
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed(&req.method));
    }
    let body: Value = match form_selection(req)? {
        Some(selection) if !plan => selection,
        _ => req.json()?,
    };
    if plan {
        let selection = selection_of(body)?;
        let manifest = api.manager.plan_export(selection, req.origin()).await?;
        let mut resp = Reply::new(manifest.into());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    let (selection, given) = if body.get("manifest").is_some() {
        let input: ExportInput = serde_json::from_value(body).map_err(|e| invalid(&e))?;
        if input
            .signature
            .as_ref()
            .is_some_and(|s| s.len() > MAX_SIGNATURE)
        {
            return Err(ApiError::bad_request(json!({
                "signature": [format!("At most {MAX_SIGNATURE} bytes.")]
            })));
        }
        let selection = selection_of(input.selection.unwrap_or_else(|| json!({})))?;
        let given = GivenManifest {
            manifest: input.manifest,
            signature: input.signature,
        };
        (selection, Some(given))
    } else {
        (selection_of(body)?, None)
    };
    let stream = api.manager.export(selection, given, req.origin()).await?;
    let mut resp = warp::reply::stream(stream.chunks).into_response();
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream.content_type),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", stream.file_name))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(resp)
}

/// Whether the body of a request to `tail` may be a form: only `export/`,
/// only from ferry's own page (its Origin proven). The dashboard downloads a
/// bundle by submitting a form, so that the browser streams the answer to
/// disk instead of a script holding it whole; a form from another site is
/// refused as any other write from there.
pub(super) fn form_download(tail: &str, headers: &warp::http::HeaderMap) -> bool {
    tail.trim_end_matches('/') == "bundles/export" && super::login::proven_same_origin(headers)
}

/// The selection a form-encoded body carries as JSON text in its one field
/// `selection`; `None` when the body is not a form.
fn form_selection(req: &Request) -> Result<Option<Value>, ApiError> {
    let is_form = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(super::body::is_form);
    if !is_form {
        return Ok(None);
    }
    let body = req.body.as_ref().map_err(Clone::clone)?;
    let text = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "selection")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| {
            ApiError::bad_request(json!({ "selection": ["A form needs the field selection."] }))
        })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| invalid(&e))
}

fn invalid(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(json!({ "non_field_errors": [format!("Invalid selection: {e}")] }))
}

/// A selection from its JSON, `platforms` in the forms prefetch takes too
/// (`"all"`, a list, a comma-separated string) or as ferry's CLI sends it.
fn selection_of(mut body: Value) -> Result<Selection, ApiError> {
    if let Some(platforms) = body.get_mut("platforms") {
        let listed = |names: Vec<Value>| json!({ "Listed": names });
        let normal = match platforms.take() {
            Value::String(s) if s.trim().eq_ignore_ascii_case("all") => json!("All"),
            Value::String(s) => listed(s.split(',').map(|p| json!(p.trim())).collect()),
            Value::Array(list) => listed(list),
            other => other,
        };
        *platforms = normal;
    }
    serde_json::from_value(body).map_err(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platforms;

    #[test]
    fn platforms_in_every_form_prefetch_takes() {
        let listed = |v: Value| selection_of(json!({ "platforms": v })).unwrap().platforms;
        let amd_arm = Some(Platforms::Listed(vec![
            "linux/amd64".into(),
            "linux/arm64".into(),
        ]));
        assert_eq!(listed(json!("all")), Some(Platforms::All));
        assert_eq!(listed(json!("All")), Some(Platforms::All));
        assert_eq!(listed(json!("linux/amd64, linux/arm64")), amd_arm);
        assert_eq!(listed(json!(["linux/amd64", "linux/arm64"])), amd_arm);
        assert_eq!(
            listed(json!({"Listed": ["linux/amd64", "linux/arm64"]})),
            amd_arm
        );
        assert_eq!(listed(Value::Null), None);
        assert!(selection_of(json!({ "platforms": 3 })).is_err());
        assert!(selection_of(json!({ "cache": ["x"] })).is_err());
    }
}
