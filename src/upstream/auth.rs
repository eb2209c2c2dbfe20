//! Upstream authentication: the `WWW-Authenticate` challenge, Docker's token
//! flow (anonymous or with credentials), and Basic auth.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm=...`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="quoted, value",key2=token` → map. Quoted values may hold commas
/// (scopes such as `repository:a:pull,push` do).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub(super) fn into_token(self) -> Option<(String, Duration)> {
        let token = self.token.or(self.access_token)?;
        // The token spec's default lifetime is 60 s.
        Some((token, Duration::from_secs(self.expires_in.unwrap_or(60))))
    }
}

/// Bearer tokens by scope, kept until shortly before they expire.
#[derive(Default)]
pub(super) struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// Renew this long before expiry so a token never expires mid-request.
const EXPIRY_MARGIN: Duration = Duration::from_secs(15);

impl TokenCache {
    pub(super) fn get(&self, scope: &str) -> Option<String> {
        self.get_at(scope, Instant::now())
    }

    pub(super) fn put(&self, scope: &str, token: String, lifetime: Duration) {
        self.put_at(scope, token, lifetime, Instant::now())
    }

    /// [`TokenCache::get`] at the time `now` (the tests' clock).
    fn get_at(&self, scope: &str, now: Instant) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (token, until) = tokens.get(scope)?;
        (*until > now).then(|| token.clone())
    }

    /// [`TokenCache::put`] at the time `now` (the tests' clock).
    fn put_at(&self, scope: &str, token: String, lifetime: Duration, now: Instant) {
        let until = now
            + lifetime
                .saturating_sub(EXPIRY_MARGIN)
                .max(Duration::from_secs(1));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: expired entries go whenever a new one arrives.
        tokens.retain(|_, (_, t)| *t > now);
        tokens.insert(scope.to_string(), (token, until));
    }

    pub(super) fn forget(&self, scope: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    /// A token is used until `EXPIRY_MARGIN` before its lifetime ends and
    /// never after; one shorter than the margin still lives a second.
    #[test]
    fn token_cache_expires() {
        let c = TokenCache::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        c.put_at("s", "t".into(), Duration::from_secs(300), t0);
        assert_eq!(c.get_at("s", at(284)).as_deref(), Some("t"));
        assert_eq!(c.get_at("s", at(285)), None, "used past its expiry");
        assert_eq!(c.get_at("other", t0), None);

        c.put_at("short", "u".into(), Duration::from_secs(10), t0);
        assert_eq!(c.get_at("short", t0).as_deref(), Some("u"));
        assert_eq!(c.get_at("short", at(1)), None, "used past its expiry");

        // A new token replaces an expired one for the same scope.
        c.put_at("s", "t2".into(), Duration::from_secs(300), at(400));
        assert_eq!(c.get_at("s", at(401)).as_deref(), Some("t2"));
        c.forget("s");
        assert_eq!(c.get_at("s", at(401)), None);
    }
}
