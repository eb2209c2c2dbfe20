//! ferry's cache-policy fields on a remote (tag policies, stale serving,
//! size and upstream budget): defaults, set, patched, reset with null,
//! refused when invalid, and kept across a restart. What each does to
//! pulls is tested with the behaviour (tag_policy, upstream_budget, quota).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

/// The policy fields of a remote as the API shows them.
fn policy_of(remote: &Value) -> Value {
    let field = |name: &str| remote[name].clone();
    json!({
        "tag_policies": field("tag_policies"),
        "stale_if": field("stale_if"),
        "max_size": field("max_size"),
        "max_upstream_connections": field("max_upstream_connections"),
        "max_upstream_bandwidth": field("max_upstream_bandwidth"),
    })
}

#[tokio::test]
async fn cache_policy_fields_are_set_patched_reset_validated_and_kept() {
    let upstream = Upstream::start(UpstreamAuth::None).await;
    let mut ferry = Ferry::start_with(&[], &[], &[]);
    let api = PulpApi::admin(&ferry);
    let up = upstream.url();

    let plain = api.create_remote(json!({"name": "plain", "url": up})).await;
    assert_eq!(
        policy_of(&plain),
        json!({
            "tag_policies": [],
            "stale_if": ["error", "unauthorized"],
            "max_size": null,
            "max_upstream_connections": null,
            "max_upstream_bandwidth": null,
        }),
        "the defaults: {plain}"
    );

    let set = json!({
        "tag_policies": [
            {"pattern": "v*.*.*", "ttl": "never"},
            {"pattern": "latest", "ttl": 60},
        ],
        "stale_if": ["error", "not_found"],
        "max_size": 1_073_741_824u64,
        "max_upstream_connections": 4,
        "max_upstream_bandwidth": 4_194_304,
    });
    let mut body = set.clone();
    body["name"] = json!("edge");
    body["url"] = json!(up);
    let edge = api.create_remote(body).await;
    assert_eq!(policy_of(&edge), set, "{edge}");
    let href = edge["pulp_href"].as_str().unwrap().to_string();

    // PATCH one field: the others stay; null resets a field to its default.
    api.task(
        api.patch(&href, json!({"max_size": null, "stale_if": null}))
            .await,
        "PATCH policy",
    )
    .await;
    let patched = api.ok(&href).await;
    let mut expected = set.clone();
    expected["max_size"] = Value::Null;
    expected["stale_if"] = json!(["error", "unauthorized"]);
    assert_eq!(policy_of(&patched), expected, "{patched}");

    // Invalid values are refused (naming the field where serde could
    // read the value), and change nothing.
    let v1_dir = json!({"tag_policies": [{"pattern": "v1/x", "ttl": 5}]});
    for (body, field) in [
        (v1_dir, Some("tag_policies")),
        (
            json!({"max_upstream_connections": 0}),
            Some("max_upstream_connections"),
        ),
        (
            json!({"max_upstream_bandwidth": 10}),
            Some("max_upstream_bandwidth"),
        ),
        (json!({"stale_if": ["sometimes"]}), None),
        (
            json!({"tag_policies": [{"pattern": "v*", "ttl": "forever"}]}),
            None,
        ),
    ] {
        let answer = api.patch(&href, body.clone()).await;
        let what = format!("{body}: {}", answer.text);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
        if let Some(field) = field {
            assert!(answer.json()[field].is_array(), "{what}");
        }
    }
    assert_eq!(policy_of(&api.ok(&href).await), expected);

    // Stored with the remote: a restart keeps it.
    ferry.restart();
    let api = PulpApi::admin(&ferry);
    assert_eq!(policy_of(&api.ok(&href).await), expected);
}
