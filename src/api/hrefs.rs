//! Hrefs of the local repositories and their content, which the
//! repository, distribution and content endpoints all name.

use super::http::id_from_href;
use crate::domain::Digest;

pub(super) const REPOSITORIES: &str = "/pulp/api/v3/repositories/container/container/";
pub(super) const REPOSITORY_DISTRIBUTIONS: &str = "/pulp/api/v3/distributions/container/container/";
const TAGS: &str = "/pulp/api/v3/content/container/tags/";
const MANIFESTS: &str = "/pulp/api/v3/content/container/manifests/";
const BLOBS: &str = "/pulp/api/v3/content/container/blobs/";

pub(super) fn repository(id: &str) -> String {
    format!("{REPOSITORIES}{id}/")
}

pub(super) fn version(id: &str, number: u64) -> String {
    format!("{REPOSITORIES}{id}/versions/{number}/")
}

pub(super) fn repository_distribution(id: &str) -> String {
    format!("{REPOSITORY_DISTRIBUTIONS}{id}/")
}

pub(super) fn manifest(d: &Digest) -> String {
    format!("{MANIFESTS}{d}/")
}

pub(super) fn blob(d: &Digest) -> String {
    format!("{BLOBS}{d}/")
}

/// A tag's href names its repository and itself: `<repository id>:<tag>`
/// (a tag cannot contain `:`).
pub(super) fn tag(repo_id: &str, tag: &str) -> String {
    format!("{TAGS}{repo_id}:{tag}/")
}

/// The (repository id, tag) a tag href names.
pub(super) fn tag_of(href: &str) -> Option<(String, String)> {
    let (repo_id, tag) = id_from_href(href, TAGS)?.split_once(':')?;
    Some((repo_id.to_string(), tag.to_string()))
}
