//! Who may do what: the admin account of the management API, and the
//! registry's tokens for private distributions (the Docker token flow that
//! podman, skopeo and containerd speak).

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::domain::Secret;

pub(crate) const ADMIN_USER: &str = "admin";
const PASSWORD_FILE: &str = "admin-password";
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The admin account. Clones share one [`LoginThrottle`], so failures on
/// `/token`, `/v2/` and the management API count together.
#[derive(Clone)]
pub(crate) struct AdminAuth {
    password: Secret,
    throttle: Arc<LoginThrottle>,
}

/// What an `Authorization` header proves about the admin, see [`AdminAuth::login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login {
    /// No `Authorization: Basic` header at all.
    Missing,
    Admin,
    Wrong,
    /// Refused without looking at the password: too many recent failures
    /// from this address. Answer 429 with `Retry-After` (whole seconds).
    Throttled {
        retry_after: Duration,
    },
}

impl AdminAuth {
    /// The password from config or environment, else the one generated at
    /// first start (kept in a 0600 file in the data dir). Returns whether it
    /// was generated just now, so the caller prints it once. Blocking.
    pub(crate) fn load(
        configured: Option<Secret>,
        data_dir: &Path,
    ) -> std::io::Result<(AdminAuth, bool)> {
        if let Some(password) = configured.filter(|p| !p.expose().is_empty()) {
            return Ok((AdminAuth::from_secret(password), false));
        }
        let path = data_dir.join(PASSWORD_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let password = Secret(text.trim().to_string());
            if !password.expose().is_empty() {
                return Ok((AdminAuth::from_secret(password), false));
            }
        }
        let password = Secret(uuid::Uuid::new_v4().simple().to_string());
        write_private(&path, password.expose())?;
        Ok((AdminAuth::from_secret(password), true))
    }

    pub(crate) fn from_secret(password: Secret) -> AdminAuth {
        AdminAuth {
            password,
            throttle: Arc::new(LoginThrottle::default()),
        }
    }

    pub(crate) fn password(&self) -> &Secret {
        &self.password
    }

    /// Whether an `Authorization: Basic ...` header names the admin.
    /// Unthrottled: request paths use [`AdminAuth::login`].
    pub(crate) fn check_basic(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        user == ADMIN_USER
            && constant_time_eq(password.as_bytes(), self.password.expose().as_bytes())
    }

    /// Checks an `Authorization` header for the admin's password, throttled
    /// per client address: after [`MAX_FAILURES`] wrong passwords from one
    /// address, its attempts are refused (`Login::Throttled`) until
    /// [`FAILURE_WINDOW`] has passed since its last failure. Failures are
    /// logged (address and `place`, never the password) and counted in
    /// `ferry_login_failures_total{place,reason}`. A header that is not
    /// Basic is `Missing`. `client` is the peer address (`None` when
    /// unknown: then not throttled).
    pub(crate) fn login(
        &self,
        client: Option<IpAddr>,
        header: Option<&str>,
        place: &'static str,
    ) -> Login {
        let Some(header) = header.filter(|h| is_basic(h)) else {
            return Login::Missing;
        };
        if let Some(client) = client {
            if let Err(retry_after) = self.throttle.check(client) {
                crate::metrics::METRICS.login_failed(place, "throttled");
                tracing::warn!(%client, place, "admin login refused: too many failures from this address");
                return Login::Throttled { retry_after };
            }
        }
        if self.check_basic(Some(header)) {
            if let Some(client) = client {
                self.throttle.succeeded(client);
            }
            return Login::Admin;
        }
        crate::metrics::METRICS.login_failed(place, "wrong_password");
        tracing::warn!(client = ?client, place, "admin login failed: wrong user or password");
        if let Some(client) = client {
            self.throttle.failed(client);
        }
        Login::Wrong
    }
}

fn is_basic(header: &str) -> bool {
    header
        .trim()
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
}

/// Wrong passwords from one address before its attempts are refused.
pub(crate) const MAX_FAILURES: u32 = 5;
/// How long an address stays refused after its last failure.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (expired ones are dropped first), so a
/// spray of addresses cannot grow the table without bound.
const MAX_TRACKED: usize = 10_000;

/// Failed admin logins per client address.
#[derive(Default)]
pub(crate) struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(retry_after)` while `client` has failed too often recently.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&client) {
            Some((count, last)) if *count >= MAX_FAILURES => {
                let since = last.elapsed();
                if since < FAILURE_WINDOW {
                    Err(FAILURE_WINDOW - since)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn failed(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (_, last)| now.duration_since(*last) < FAILURE_WINDOW);
        }
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&client) {
            return;
        }
        let entry = failures.entry(client).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            entry.0 = 0;
        }
        *entry = (entry.0 + 1, now);
    }

    pub(crate) fn succeeded(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&client);
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created: tighten an older one.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

/// `Basic base64(user:password)` → (user, password).
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// An unguessable id for a bearer credential (a registry token, a login
/// session): two random v4 UUIDs, 244 random bits, as 64 hex digits.
pub(crate) fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a Bearer token grants: pulls of the repositories named in the
/// `scope` it was asked for; private ones only when the admin asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Issued on the admin's credentials (may open private distributions).
    pub admin: bool,
    /// Repository names (as the client names them in `/v2/NAME/...`).
    pub repositories: Vec<String>,
    /// `registry:catalog:*` was asked for.
    pub catalog: bool,
}

impl Grant {
    /// The grant for `scope` values of a `/token` request
    /// (`repository:NAME:pull[,push]`, `registry:catalog:*`): only pulls
    /// and the catalog are granted, whatever else is asked.
    pub(crate) fn for_scopes<'a>(admin: bool, scopes: impl IntoIterator<Item = &'a str>) -> Grant {
        let mut grant = Grant {
            admin,
            ..Grant::default()
        };
        // One `scope` parameter may hold several, space-separated.
        for scope in scopes.into_iter().flat_map(str::split_whitespace) {
            let Some((kind, rest)) = scope.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let wants = |action: &str| actions.split(',').any(|a| a == action || a == "*");
            match kind {
                "repository"
                    if wants("pull")
                        && !name.is_empty()
                        && !grant.repositories.iter().any(|r| r == name) =>
                {
                    grant.repositories.push(name.to_string());
                }
                "registry" if name == "catalog" && wants("*") => grant.catalog = true,
                _ => {}
            }
        }
        grant
    }

    /// Whether this token may pull the private repository `name`.
    pub(crate) fn opens_private(&self, name: &str) -> bool {
        self.admin && self.repositories.iter().any(|r| r == name)
    }
}

/// Bearer tokens ferry issued, in memory (a restart asks clients to log in
/// again, which they do on their own).
#[derive(Default)]
pub(crate) struct RegistryTokens {
    tokens: Mutex<HashMap<String, (Instant, Grant)>>,
}

impl RegistryTokens {
    /// Issues a token carrying `grant`.
    pub(crate) fn issue(&self, grant: Grant) -> (String, u64) {
        let token = random_id();
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (until, _)| *until > now);
        tokens.insert(token.clone(), (now + TOKEN_LIFETIME, grant));
        (token, TOKEN_LIFETIME.as_secs())
    }

    /// The grant of a valid token.
    pub(crate) fn check(&self, token: &str) -> Option<Grant> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (until, grant) = tokens.get(token)?;
        (*until > Instant::now()).then(|| grant.clone())
    }
}

/// What the registry side checks requests against.
pub(crate) struct Access {
    pub admin: AdminAuth,
    pub tokens: RegistryTokens,
}

/// What a request's `Authorization` header proves.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    Anonymous,
    /// A valid Bearer token, with what it grants.
    Token(Grant),
    /// The admin's password (Basic): everything.
    Admin,
    /// Credentials that are wrong or expired.
    Invalid,
    /// Too many wrong passwords from this address lately.
    Throttled {
        retry_after: Duration,
    },
}

impl Caller {
    /// The admin, by password or by a token issued on the admin's password.
    pub(crate) fn is_admin(&self) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Token(grant) => grant.admin,
            _ => false,
        }
    }

    /// Whether this caller may pull the private repository `name`.
    pub(crate) fn opens_private(&self, name: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Token(grant) => grant.opens_private(name),
            _ => false,
        }
    }

    /// Whether the catalog lists private repositories to this caller.
    pub(crate) fn sees_private_catalog(&self) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Token(grant) => grant.admin && grant.catalog,
            _ => false,
        }
    }
}

impl Access {
    /// `client` is the peer address, for throttling password guesses.
    pub(crate) fn caller(&self, authorization: Option<&str>, client: Option<IpAddr>) -> Caller {
        let Some(value) = authorization else {
            return Caller::Anonymous;
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            return match self.tokens.check(token.trim()) {
                Some(grant) => Caller::Token(grant),
                None => Caller::Invalid,
            };
        }
        match self.admin.login(client, Some(value), "registry") {
            Login::Admin => Caller::Admin,
            Login::Throttled { retry_after } => Caller::Throttled { retry_after },
            Login::Missing | Login::Wrong => Caller::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_and_generated_password() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, generated) = AdminAuth::load(None, dir.path()).unwrap();
        assert!(generated);
        let (again, generated) = AdminAuth::load(None, dir.path()).unwrap();
        assert!(!generated);
        assert_eq!(auth.password(), again.password());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(PASSWORD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let good = format!(
            "Basic {}",
            BASE64.encode(format!("admin:{}", auth.password().expose()))
        );
        assert!(auth.check_basic(Some(&good)));
        assert!(!auth.check_basic(Some(&format!("Basic {}", BASE64.encode("admin:wrong")))));
        assert!(!auth.check_basic(None));
    }

    #[test]
    fn tokens_carry_their_grant() {
        let t = RegistryTokens::default();
        let grant = Grant::for_scopes(true, ["repository:a/b:pull"]);
        let (admin, _) = t.issue(grant.clone());
        let (anon, _) = t.issue(Grant::default());
        assert_eq!(t.check(&admin), Some(grant));
        assert_eq!(t.check(&anon), Some(Grant::default()));
        assert_eq!(t.check("nope"), None);
    }

    #[test]
    fn scopes_grant_pull_of_named_repositories_only() {
        let g = Grant::for_scopes(
            true,
            [
                "repository:p/one:pull,push repository:p/two:push",
                "repository:p/three:*",
                "registry:catalog:*",
                "garbage",
            ],
        );
        assert_eq!(g.repositories, vec!["p/one".to_string(), "p/three".into()]);
        assert!(g.catalog);
        assert!(g.opens_private("p/one"));
        assert!(!g.opens_private("p/two"));
        assert!(!Grant::for_scopes(false, ["repository:p/one:pull"]).opens_private("p/one"));
    }

    #[test]
    fn throttles_an_address_after_repeated_failures() {
        let auth = AdminAuth::from_secret(Secret("right".into()));
        let wrong = format!("Basic {}", BASE64.encode("admin:wrong"));
        let right = format!("Basic {}", BASE64.encode("admin:right"));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert_eq!(auth.login(Some(a), Some(&wrong), "test"), Login::Wrong);
        }
        assert!(matches!(
            auth.login(Some(a), Some(&right), "test"),
            Login::Throttled { .. }
        ));
        assert_eq!(auth.login(Some(b), Some(&right), "test"), Login::Admin);
        assert_eq!(auth.login(Some(b), None, "test"), Login::Missing);
    }
}
