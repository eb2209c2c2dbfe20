//! Who may do what: the admin account of the management API, and the
//! registry's tokens for private distributions (the Docker token flow that
//! podman, skopeo and containerd speak).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::domain::Secret;

pub const ADMIN_USER: &str = "admin";
const PASSWORD_FILE: &str = "admin-password";
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

pub struct AdminAuth {
    password: Secret,
}

impl AdminAuth {
    /// The password from config or environment, else the one generated at
    /// first start (kept in a 0600 file in the data dir). Returns whether it
    /// was generated just now, so the caller prints it once. Blocking.
    pub fn load(configured: Option<Secret>, data_dir: &Path) -> std::io::Result<(AdminAuth, bool)> {
        if let Some(password) = configured.filter(|p| !p.expose().is_empty()) {
            return Ok((AdminAuth { password }, false));
        }
        let path = data_dir.join(PASSWORD_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let password = Secret(text.trim().to_string());
            if !password.expose().is_empty() {
                return Ok((AdminAuth { password }, false));
            }
        }
        let password = Secret(uuid::Uuid::new_v4().simple().to_string());
        write_private(&path, password.expose())?;
        Ok((AdminAuth { password }, true))
    }

    pub fn from_secret(password: Secret) -> AdminAuth {
        AdminAuth { password }
    }

    pub fn password(&self) -> &Secret {
        &self.password
    }

    /// Whether an `Authorization: Basic ...` header names the admin.
    pub fn check_basic(&self, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        user == ADMIN_USER
            && constant_time_eq(password.as_bytes(), self.password.expose().as_bytes())
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
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Compares without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bearer tokens ferry issued, in memory (a restart asks clients to log in
/// again, which they do on their own).
#[derive(Default)]
pub struct RegistryTokens {
    tokens: Mutex<HashMap<String, (Instant, bool)>>,
}

impl RegistryTokens {
    /// Issues a token; `admin` tokens open private distributions.
    pub fn issue(&self, admin: bool) -> (String, u64) {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (until, _)| *until > now);
        tokens.insert(token.clone(), (now + TOKEN_LIFETIME, admin));
        (token, TOKEN_LIFETIME.as_secs())
    }

    /// `Some(admin)` for a valid token.
    pub fn check(&self, token: &str) -> Option<bool> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (until, admin) = tokens.get(token)?;
        (*until > Instant::now()).then_some(*admin)
    }
}

/// What the registry side checks requests against.
pub struct Access {
    pub admin: AdminAuth,
    pub tokens: RegistryTokens,
}

/// What a request's `Authorization` header proves.
#[derive(Debug, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// A valid token without admin rights (issued to anonymous clients).
    Guest,
    Admin,
    /// Credentials that are wrong or expired.
    Invalid,
}

impl Access {
    pub fn caller(&self, authorization: Option<&str>) -> Caller {
        let Some(value) = authorization else {
            return Caller::Anonymous;
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            return match self.tokens.check(token.trim()) {
                Some(true) => Caller::Admin,
                Some(false) => Caller::Guest,
                None => Caller::Invalid,
            };
        }
        if self.admin.check_basic(Some(value)) {
            Caller::Admin
        } else {
            Caller::Invalid
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
    fn tokens() {
        let t = RegistryTokens::default();
        let (admin, _) = t.issue(true);
        let (anon, _) = t.issue(false);
        assert_eq!(t.check(&admin), Some(true));
        assert_eq!(t.check(&anon), Some(false));
        assert_eq!(t.check("nope"), None);
    }
}
