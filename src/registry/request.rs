//! A request to `/v2/` as every endpoint sees it: who asks, from where,
//! with which query, and which cache serves the name it asks for.

use warp::http::{header, HeaderMap, Method};

use super::challenge::challenge;
use super::error::RegistryError;
use super::{Registry, Result};
use crate::auth::Caller;
use crate::cache::Route;
use crate::domain::{Digest, NameError, RepoName};
use crate::origin::Connection;

pub(super) struct Request<'a> {
    pub method: Method,
    pub query: Query,
    pub headers: &'a HeaderMap,
    pub client: Client,
    pub registry: &'a Registry,
    pub caller: Caller,
}

impl Request<'_> {
    /// `HEAD`: headers as for `GET`, no body.
    pub(super) fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// The Bearer challenge for this client, naming `scope` if given.
    pub(super) fn challenge(&self, scope: Option<&str>) -> RegistryError {
        challenge(&self.client.origin, scope)
    }

    /// Validates the name and finds the cache serving it. A route is
    /// served when public, or to a caller granted its name.
    pub(super) fn route(&self, name: &str) -> Result<Route> {
        let parsed = RepoName::parse(name).map_err(|e| match e {
            // A name of the right form, too long: distribution's 400.
            NameError::TooLong => RegistryError::NameInvalid(e.to_string()),
            // A name that cannot exist: docker-registry does not route it (404).
            NameError::Empty | NameError::BadComponent(_) => RegistryError::NameMalformed {
                name: name.to_string(),
                why: e.to_string(),
            },
        })?;
        let route = self
            .registry
            .caches
            .route(&parsed, self.query.ns.as_deref())
            .ok_or_else(|| RegistryError::NameUnknown(name.to_string()))?;
        if route.cache.is_private() && !self.caller.opens_private(name) {
            let scope = format!("repository:{name}:pull");
            return Err(self.challenge(Some(&scope)));
        }
        Ok(route)
    }
}

/// Who is asking, as the accept loop saw it.
pub(super) struct Client {
    /// Where links and the token realm point (checked, never a raw Host).
    pub origin: String,
    pub ip: Option<std::net::IpAddr>,
}

/// The query parameters the pull API uses.
#[derive(Default)]
pub(super) struct Query {
    pub ns: Option<String>,
    pub n: Option<usize>,
    pub last: Option<String>,
    pub artifact_type: Option<String>,
}

impl Query {
    /// Unknown keys are ignored, and so is an `n` that is not a count (a
    /// word, a negative number, one past `usize`; docker-registry ignores
    /// those too): the whole list is answered then.
    pub(super) fn parse(raw: &str) -> Query {
        let mut query = Query::default();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match &*key {
                "ns" => query.ns = Some(value.into_owned()),
                "n" => query.n = value.parse().ok(),
                "last" => query.last = Some(value.into_owned()),
                "artifactType" => query.artifact_type = Some(value.into_owned()),
                _ => {}
            }
        }
        query
    }
}

/// A digest named in the path. Text of a digest's form that is no valid
/// digest (bad hex, an algorithm ferry does not verify) is a client error,
/// 400 `DIGEST_INVALID` as docker-registry answers; text not even of that
/// form names nothing, and gets `unknown` (a 404, as docker-registry's
/// router answers).
pub(super) fn parse_digest(text: &str, unknown: fn(String) -> RegistryError) -> Result<Digest> {
    if !Digest::has_form(text) {
        return Err(unknown(text.to_string()));
    }
    text.parse()
        .map_err(|e: crate::domain::DigestError| RegistryError::DigestInvalid(e.to_string()))
}

pub(super) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

pub(super) fn client_ip(connection: Option<&Connection>) -> Option<std::net::IpAddr> {
    connection.map(|c| c.peer.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_pull_api_parameters() {
        let query = Query::parse("n=2&last=a%2Fb&ns=docker.io&artifactType=x%2By&other=1");
        assert_eq!(query.n, Some(2));
        assert_eq!(query.last.as_deref(), Some("a/b"));
        assert_eq!(query.ns.as_deref(), Some("docker.io"));
        assert_eq!(query.artifact_type.as_deref(), Some("x+y"));
        assert_eq!(Query::parse("n=many").n, None);
        assert_eq!(Query::parse("").last, None);
    }
}
