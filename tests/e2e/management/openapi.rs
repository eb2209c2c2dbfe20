//! The OpenAPI document: Pulp's paths, operation ids and schemas.

use reqwest::StatusCode;

use crate::support::pulp_api::{DISTRIBUTIONS, OPENAPI, REMOTES};
use crate::support::*;

#[tokio::test]
async fn openapi_document_lists_remotes_and_distributions() {
    let ferry = Ferry::start_with(&[], &[], &[]);
    let a = PulpApi::anonymous(&ferry).get(OPENAPI).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(
        a.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        a.header("content-type")
    );
    let doc = a.json();
    let version = doc["openapi"]
        .as_str()
        .unwrap_or_else(|| panic!("no openapi field"));
    assert!(version.starts_with("3."), "openapi {version}");
    let paths = doc["paths"].as_object().expect("paths");
    // Pulp's paths and operation ids: an object's path is its href.
    for (path, operations) in [
        (
            REMOTES,
            &[
                ("get", "remotes_container_pull_through_list"),
                ("post", "remotes_container_pull_through_create"),
            ][..],
        ),
        (
            "{container_container_pull_through_remote_href}",
            &[("get", "remotes_container_pull_through_read")][..],
        ),
        (
            DISTRIBUTIONS,
            &[
                ("get", "distributions_container_pull_through_list"),
                ("post", "distributions_container_pull_through_create"),
            ][..],
        ),
        (
            "{container_container_pull_through_distribution_href}",
            &[("get", "distributions_container_pull_through_read")][..],
        ),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("no path {path} in {:?}", paths.keys().collect::<Vec<_>>()));
        for (m, id) in operations {
            assert_eq!(item[*m]["operationId"], *id, "{path} {m}: {item}");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in ["RemoteResponse", "DistributionResponse"] {
        assert!(schemas.contains_key(s), "no schema {s}");
    }
}
