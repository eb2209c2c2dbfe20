//! The Pulp-compatible management API, as its users drive it: HTTPie + jq
//! scripts, raw HTTP, the `ferry remote|distribution|repository` CLI, and
//! podman/skopeo pulling through what those create. Assertions are what a
//! user checks: status codes, bodies, digests, bytes on disk.
//!
//! One file per resource over the shared client `support::pulp_api`; the
//! helpers here are what several of them share (a raw manifest GET, the
//! `ferry` CLI as a management client).

mod cli;
mod distributions;
mod openapi;
mod persistence;
mod policy;
mod remotes;
mod repositories;
mod validation;
mod workflow;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::pulp_api::Answer;
use crate::support::util::{run_bounded, CmdOutput};
use crate::support::*;

/// An anonymous manifest GET through ferry (no challenge answered).
async fn raw_manifest_get(ferry: &Ferry, repo: &str, reference: &str) -> Answer {
    PulpApi::anonymous(ferry)
        .request(
            Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("accept", registry_client::ACCEPT_ALL_MANIFESTS)],
            None,
        )
        .await
}

/// Asserts a manifest GET through ferry answers 404 NAME_UNKNOWN.
async fn assert_name_unknown(ferry: &Ferry, repo: &str, reference: &str) {
    RegistryClient::new(&ferry.url())
        .get_manifest(repo, reference)
        .await
        .assert_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!("{repo}:{reference}"),
        );
}

/// `ferry ARGS...` as a management client of the running `ferry`
/// (FERRY_URL and FERRY_ADMIN_PASSWORD in the environment).
async fn ferry_cli(ferry: &Ferry, password: &str, args: &[&str]) -> CmdOutput {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(args)
        .current_dir(cwd.path())
        .env("FERRY_URL", ferry.url())
        .env("FERRY_ADMIN_PASSWORD", password)
        .env("RUST_LOG", "warn");
    for var in [
        "FERRY_CONFIG",
        "FERRY_CACHE",
        "FERRY_LISTEN",
        "FERRY_DATA_DIR",
        "FERRY_TLS_LISTEN",
        "FERRY_TLS_CERT",
        "FERRY_TLS_KEY",
    ] {
        cmd.env_remove(var);
    }
    run_bounded(cmd, std::time::Duration::from_secs(60)).await
}

// Pulp's (DRF's) validation answers, exactly as a client gets them.

/// DRF's answer to missing `fields`.
fn required(fields: &[&str]) -> Value {
    let required: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| (f.to_string(), json!(["This field is required."])))
        .collect();
    Value::Object(required)
}

/// DRF's answer to a taken unique `field`.
fn unique(field: &str) -> Value {
    json!({ field: ["This field must be unique."] })
}

fn invalid_url() -> Value {
    json!({"url": ["Enter a valid URL."]})
}

/// ferry's answer to a base path inside or around another distribution's.
fn overlaps() -> Value {
    json!({"base_path": {"base_path": "Overlaps with an existing distribution."}})
}
