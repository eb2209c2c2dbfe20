//! The dashboard's admin sessions: after a login with the admin password the
//! browser holds only a random id in an `HttpOnly` cookie, which no script
//! on the page can read (unlike a password kept in `sessionStorage`). Ids
//! live in memory: a restart asks the admin to log in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use warp::http::{header, HeaderMap};

/// The cookie holding the session id.
pub(crate) const COOKIE: &str = "ferry_session";
/// A session unused this long ends.
const IDLE: Duration = Duration::from_secs(30 * 60);
/// And none lasts longer than this, used or not.
const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most (logins beyond it end the oldest): bounds memory
/// whatever a client with the password does.
const MAX_SESSIONS: usize = 1024;

struct Session {
    created: Instant,
    last_used: Instant,
}

impl Session {
    fn alive(&self, now: Instant) -> bool {
        now.duration_since(self.last_used) < IDLE && now.duration_since(self.created) < ABSOLUTE
    }
}

#[derive(Default)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id (unguessable, like a token).
    pub(crate) fn create(&self) -> String {
        let id = crate::auth::random_id();
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.alive(now));
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                created: now,
                last_used: now,
            },
        );
        id
    }

    /// Whether `id` names a live session (and marks it used).
    pub(crate) fn check(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get_mut(id) {
            Some(session) if session.alive(now) => {
                session.last_used = now;
                true
            }
            Some(_) => {
                sessions.remove(id);
                false
            }
            None => false,
        }
    }

    /// Whether the request's session cookie names a live session.
    pub(crate) fn check_request(&self, headers: &HeaderMap) -> bool {
        cookie(headers).is_some_and(|id| self.check(id))
    }

    pub(crate) fn end(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(id);
    }
}

/// The session id a request's `Cookie` headers carry.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// `Set-Cookie` for a new session: out of scripts' reach, never sent with
/// requests from other sites, over HTTPS only when the page is HTTPS.
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        ABSOLUTE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    #[test]
    fn sessions_are_random_checked_and_ended() {
        let sessions = Sessions::default();
        let a = sessions.create();
        let b = sessions.create();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(sessions.check(&a));
        assert!(!sessions.check("nope"));
        sessions.end(&a);
        assert!(!sessions.check(&a));
        assert!(sessions.check(&b));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferry_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers), Some("abc"));
        assert_eq!(cookie(&HeaderMap::new()), None);
        let set = set_cookie("abc", true);
        for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("abc", false).contains("Secure"));
    }
}
