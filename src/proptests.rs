//! Property tests (a fuzzer on stable Rust) of every parser that reads
//! untrusted input: repository names, references, digests, `Range`,
//! `WWW-Authenticate` challenges, `/v2/` paths, manifests, upstream tag
//! pages and the management API's bodies. Each runs 256 cases by default;
//! `PROPTEST_CASES=100000 cargo test --lib proptests` runs a long campaign.
//! Properties: nothing panics, what parses prints back as it was read, and
//! what a parser returns stays within its bounds.

use proptest::prelude::*;
use serde::de::DeserializeSeed as _;
use serde_json::Value;

use crate::api::distributions::DistributionInput;
use crate::api::remotes::RemoteInput;
use crate::cache::manifest_info::{describe, effective_media_type, platforms};
use crate::domain::{Digest, Reference, RepoName};
use crate::registry::endpoint::{self, Endpoint};
use crate::registry::range::{self, RangeRequest};
use crate::upstream::tag_page::TagPage;
use crate::upstream::{parse_challenge, Challenge};

/// Any text, biased towards the characters the parsers split on.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9:/._=\\-,;\" ]{0,80}",
        "[a-zA-Z0-9:/._@\\-]{0,300}",
    ]
}

/// A valid repository name: components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn repo_name() -> impl Strategy<Value = String> {
    let component = "[a-z0-9]{1,8}(([._]|__|-{1,3})[a-z0-9]{1,8}){0,3}";
    prop::collection::vec(component, 1..5).prop_map(|c| c.join("/"))
}

fn sha256() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}".prop_map(|hex| format!("sha256:{hex}"))
}

/// Any JSON value, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object with the given keys (some of them) set to any values.
fn object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(keys), json()), 0..keys.len().min(8)).prop_map(
        |pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
    )
}

/// A descriptor with a valid digest and anything else of any shape.
fn descriptor() -> impl Strategy<Value = Value> {
    (sha256(), any::<u32>(), text(), json()).prop_map(|(d, size, mt, extra)| {
        serde_json::json!({"mediaType": mt, "digest": d, "size": size, "x-unknown": extra})
    })
}

/// A manifest or index: sometimes well formed, sometimes any object.
fn manifest() -> impl Strategy<Value = Value> {
    let well_formed = (
        any::<bool>(),
        descriptor(),
        prop::collection::vec(descriptor(), 0..6),
    )
        .prop_map(|(index, config, list)| {
            if index {
                serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list})
            } else {
                serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": list})
            }
        });
    prop_oneof![
        well_formed,
        object_with(&[
            "schemaVersion",
            "mediaType",
            "config",
            "layers",
            "manifests",
            "subject",
            "artifactType",
            "annotations",
        ]),
    ]
}

proptest! {
    #[test]
    fn repo_names_parse_back_to_themselves(s in text()) {
        if let Ok(name) = RepoName::parse(&s) {
            prop_assert_eq!(name.to_string(), s);
            prop_assert!(name.as_str().len() <= 255);
        }
    }

    #[test]
    fn valid_repo_names_are_accepted(s in repo_name()) {
        prop_assume!(s.len() <= 255);
        prop_assert_eq!(RepoName::parse(&s).map(|n| n.to_string()).ok(), Some(s));
    }

    #[test]
    fn references_parse_back_to_themselves(s in text()) {
        if let Ok(reference) = Reference::parse(&s) {
            prop_assert_eq!(reference.to_string(), s);
        }
    }

    #[test]
    fn valid_tags_and_digests_are_accepted(
        tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
        digest in sha256(),
    ) {
        prop_assert!(matches!(Reference::parse(&tag), Ok(Reference::Tag(_))));
        prop_assert!(matches!(Reference::parse(&digest), Ok(Reference::Digest(_))));
        let parsed: Digest = digest.parse().unwrap();
        prop_assert_eq!(parsed.to_string(), digest);
    }

    #[test]
    fn digests_parse_back_to_themselves(s in text()) {
        if let Ok(digest) = s.parse::<Digest>() {
            prop_assert_eq!(digest.to_string(), s);
            prop_assert!(matches!(digest.hex().len(), 64 | 128));
        }
    }

    #[test]
    fn ranges_stay_within_the_blob(
        header in prop_oneof![
            text().prop_map(|s| format!("bytes={s}")),
            (any::<Option<u64>>(), any::<Option<u64>>()).prop_map(|(a, b)| format!(
                "bytes={}-{}",
                a.map_or(String::new(), |a| a.to_string()),
                b.map_or(String::new(), |b| b.to_string()),
            )),
            proptest::collection::vec((any::<Option<u16>>(), any::<Option<u16>>()), 1..12)
                .prop_map(|specs| {
                    let specs: Vec<String> = specs
                        .iter()
                        .map(|(a, b)| format!(
                            "{}-{}",
                            a.map_or(String::new(), |a| a.to_string()),
                            b.map_or(String::new(), |b| b.to_string()),
                        ))
                        .collect();
                    format!("bytes={}", specs.join(","))
                }),
            text(),
        ],
        size in prop_oneof![0u64..4096, any::<u64>()],
    ) {
        let ranges = match range::parse(Some(&header), size) {
            RangeRequest::Single(r) => vec![r],
            RangeRequest::Multi(rs) => rs,
            RangeRequest::Full | RangeRequest::Unsatisfiable => vec![],
        };
        for r in &ranges {
            prop_assert!(r.start < r.end, "{header}: empty {r:?}");
            prop_assert!(r.end <= size, "{header}: {r:?} past size {size}");
        }
        // Coalesced: no two parts share a byte.
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|r| r.start);
        prop_assert!(sorted.windows(2).all(|w| w[0].end <= w[1].start), "{header}: {ranges:?}");
    }

    #[test]
    fn challenges_never_panic_and_keep_their_realm(
        header in text(),
        realm in "https?://[a-z0-9.:/]{1,40}",
        service in "[a-zA-Z0-9.:/ -]{0,30}",
        scope in "[a-z0-9:/,_-]{0,40}",
    ) {
        let _ = parse_challenge(&header);
        let built = format!(r#"Bearer realm="{realm}",service="{service}",scope="{scope}""#);
        prop_assert_eq!(
            parse_challenge(&built),
            Some(Challenge::Bearer {
                realm,
                service: Some(service),
                scope: Some(scope),
            })
        );
    }

    #[test]
    fn v2_paths_name_what_they_contain(tail in text()) {
        // Percent-escapes are decoded (endpoint.rs tests those).
        prop_assume!(!tail.contains('%'));
        match endpoint::parse(&tail) {
            Endpoint::Manifest { name, reference } => {
                prop_assert!(tail.contains(&*name) && tail.contains(&*reference));
            }
            Endpoint::Blob { name, digest } | Endpoint::Referrers { name, digest } => {
                prop_assert!(tail.contains(&*name) && tail.contains(&*digest));
            }
            Endpoint::Tags { name } => prop_assert!(tail.contains(&*name)),
            _ => {}
        }
    }

    #[test]
    fn v2_path_parts_never_gain_a_slash_by_decoding(tail in "[a-z0-9%/.:]{0,60}") {
        // Every `/` of a part is one of the path's separators: the path's
        // slashes are those of its parts and the two around the endpoint.
        let slashes = |s: &str| s.matches('/').count();
        let sent = slashes(tail.trim_start_matches('/'));
        match endpoint::parse(&tail) {
            Endpoint::Manifest { name, reference: last }
            | Endpoint::Blob { name, digest: last }
            | Endpoint::Referrers { name, digest: last } => {
                prop_assert_eq!(slashes(&name) + slashes(&last) + 2, sent);
            }
            Endpoint::Tags { name } => prop_assert_eq!(slashes(&name) + 2, sent),
            _ => {}
        }
    }

    #[test]
    fn manifests_are_described_without_panics(
        doc in manifest(),
        content_type in proptest::option::of(text()),
        garbage in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = serde_json::to_vec(&doc).unwrap();
        for bytes in [&bytes[..], &garbage[..]] {
            let media_type = effective_media_type(content_type.as_deref(), bytes);
            let record = describe(&media_type, bytes, 7);
            prop_assert_eq!(record.size, bytes.len() as u64);
            prop_assert_eq!(record.stored_at, 7);
            let _ = platforms(bytes);
        }
        // A well-formed image manifest lists its config and every layer.
        if doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json" {
            let media_type = effective_media_type(None, &bytes);
            let record = describe(&media_type, &bytes, 0);
            let layers = doc["layers"].as_array().map_or(0, Vec::len);
            prop_assert_eq!(record.blobs.len(), layers + 1);
        }
    }

    #[test]
    fn tag_pages_are_bounded(
        page in prop_oneof![
            object_with(&["name", "tags"]),
            prop::collection::vec("[a-z0-9._-]{1,12}", 0..40)
                .prop_map(|tags| serde_json::json!({"name": "a/b", "tags": tags})),
        ],
        garbage in prop::collection::vec(any::<u8>(), 0..128),
        max in 0usize..20,
    ) {
        let parse = |bytes: &[u8]| {
            let mut tags = Vec::new();
            let mut json = serde_json::Deserializer::from_slice(bytes);
            let parsed = TagPage::new(&mut tags, max).deserialize(&mut json);
            (parsed.is_ok(), tags)
        };
        let (_, tags) = parse(&garbage);
        prop_assert!(tags.len() <= max);
        let (parsed, tags) = parse(&serde_json::to_vec(&page).unwrap());
        prop_assert!(tags.len() <= max);
        // A list of strings within the bound parses whole, in order.
        if let Some(listed) = page["tags"].as_array() {
            if listed.len() <= max && listed.iter().all(Value::is_string) {
                prop_assert!(parsed);
                prop_assert_eq!(tags, listed.iter().filter_map(Value::as_str).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn api_bodies_never_panic(
        remote in object_with(&[
            "name", "url", "policy", "username", "password", "ca_cert", "client_cert",
            "client_key", "tls_validation", "proxy_url", "proxy_username", "proxy_password",
            "headers", "max_retries", "total_timeout", "connect_timeout",
            "sock_connect_timeout", "sock_read_timeout", "download_concurrency",
            "rate_limit", "includes", "excludes", "pulp_labels",
        ]),
        distribution in object_with(&[
            "name", "base_path", "remote", "private", "description", "hidden", "pulp_labels",
        ]),
        garbage in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let remote = serde_json::to_vec(&remote).unwrap();
        let distribution = serde_json::to_vec(&distribution).unwrap();
        for bytes in [&remote[..], &distribution[..], &garbage[..]] {
            let _ = serde_json::from_slice::<RemoteInput>(bytes);
            let _ = serde_json::from_slice::<DistributionInput>(bytes);
        }
    }
}
