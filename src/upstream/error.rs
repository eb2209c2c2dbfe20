use std::time::{Duration, SystemTime};

use crate::config::StaleCase;

/// Why an upstream gave no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoAnswer {
    /// Its host name does not resolve.
    Unresolvable,
    /// Nothing listens there: the connection was refused.
    Refused,
    /// Any other failure to connect (no route, reset, proxy failure).
    Unreachable,
}

/// What went wrong talking to an upstream registry. The kind decides what
/// the cache does: transient kinds let it serve stale content, and they map
/// to 504 (no answer) or 502 (a bad answer) when nothing cached can help.
///
/// `Display` is the full story for the log and the admin (it may name the
/// upstream's URL); [`UpstreamError::cause`] says the same without any
/// address, for clients that must not learn it.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("upstream unreachable: {detail}")]
    Unreachable { why: NoAnswer, detail: String },
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream is down since {}: {cause}; ferry rechecks it in the background", rfc3339(*since))]
    KnownDown {
        /// The failure that marked it down.
        cause: Box<UpstreamError>,
        since: SystemTime,
    },
    #[error("upstream rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    #[error("upstream refused ferry's credentials")]
    Unauthorized,
    #[error("not found upstream")]
    NotFound,
    #[error("invalid upstream response: {0}")]
    Protocol(String),
    /// An answer ferry refuses by its own rules (a media type, a bound, an
    /// origin). Boxed: a rare error should not grow every `Result`.
    #[error("upstream answer refused: {}{}", .0.why, .0.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected(Box<Rejection>),
    /// The upstream's certificate (or TLS handshake) was refused.
    #[error("upstream TLS refused: {0}")]
    Tls(String),
    /// Not sent: the cache's `max_upstream_connections` (or its
    /// `download_concurrency`) stayed all in use for as long as a request
    /// may wait for one. Says nothing of the upstream (no breaker, and
    /// cached content may be served).
    #[error("all {cap} {} of the cache stayed busy for {} s ({})", of.what(), waited.as_secs(), of.setting())]
    Busy { of: Cap, cap: u32, waited: Duration },
}

/// Which of a cache's caps a [`UpstreamError::Busy`] ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    Connections,
    Downloads,
}

impl Cap {
    pub(super) fn what(self) -> &'static str {
        match self {
            Cap::Connections => "upstream connections",
            Cap::Downloads => "blob download slots",
        }
    }

    pub(super) fn setting(self) -> &'static str {
        match self {
            Cap::Connections => "max_upstream_connections",
            Cap::Downloads => "download_concurrency",
        }
    }
}

/// Why ferry refused an upstream's answer.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    /// Names no address, so any client may read it.
    pub why: String,
    /// What only the admin and the log see (an origin, say).
    pub detail: Option<String>,
}

fn rfc3339(at: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(at)
}

impl UpstreamError {
    /// An answer refused by ferry's rules, explained without an address.
    pub(crate) fn rejected(why: impl Into<String>) -> UpstreamError {
        UpstreamError::rejected_with(why, None)
    }

    /// The same, with a detail for the admin and the log only.
    pub(crate) fn rejected_with(why: impl Into<String>, detail: Option<String>) -> UpstreamError {
        UpstreamError::Rejected(Box::new(Rejection {
            why: why.into(),
            detail,
        }))
    }

    /// Which `stale_if` case decides whether cached content may stand in:
    /// a 404 says the content is gone, a 401/403 (or a token service that
    /// refused) says nothing about the content but about ferry's access;
    /// every other failure (no answer, 5xx, 429, a bad answer) is a
    /// transient error.
    pub(crate) fn stale_case(&self) -> StaleCase {
        match self {
            UpstreamError::NotFound => StaleCase::NotFound,
            UpstreamError::Unauthorized => StaleCase::Unauthorized,
            _ => StaleCase::Error,
        }
    }

    /// A metric label for the kind of failure.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable { .. } => "unreachable",
            UpstreamError::Timeout => "timeout",
            UpstreamError::KnownDown { .. } => "known_down",
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::Status(_) => "status",
            UpstreamError::Unauthorized => "unauthorized",
            UpstreamError::NotFound => "not_found",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::Rejected(_) => "rejected",
            UpstreamError::Tls(_) => "tls",
            UpstreamError::Busy { .. } => "busy",
        }
    }

    /// Failures where the upstream gave no answer at all (504, not 502).
    pub(crate) fn is_no_answer(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unreachable { .. }
                | UpstreamError::Timeout
                | UpstreamError::KnownDown { .. }
        )
    }

    /// What happened, as the end of "upstream X ...", naming no address:
    /// safe for any client, and short enough for a status line.
    pub(crate) fn cause(&self) -> String {
        match self {
            UpstreamError::Unreachable { why, .. } => match why {
                NoAnswer::Unresolvable => "could not be resolved (DNS)",
                NoAnswer::Refused => "refused the connection",
                NoAnswer::Unreachable => "could not be reached",
            }
            .into(),
            UpstreamError::Timeout => "did not answer in time".into(),
            UpstreamError::KnownDown { cause, since } => format!(
                "is down since {} ({}); ferry rechecks it in the background",
                rfc3339(*since),
                cause.cause()
            ),
            UpstreamError::RateLimited { retry_after } => match retry_after {
                Some(wait) => format!("rate-limited ferry (retry in {} s)", wait.as_secs().max(1)),
                None => "rate-limited ferry".into(),
            },
            UpstreamError::Status(code) => format!("answered HTTP {code}"),
            UpstreamError::Unauthorized => {
                "refused the credentials (ferry's are missing or wrong)".into()
            }
            UpstreamError::NotFound => "does not have it".into(),
            UpstreamError::Protocol(_) => "sent an invalid answer".into(),
            UpstreamError::Rejected(r) => format!("sent an answer ferry refuses: {}", r.why),
            UpstreamError::Tls(_) => "presented a TLS certificate ferry does not accept".into(),
            UpstreamError::Busy { of, cap, waited } => format!(
                "was not asked: all {cap} of ferry's {} for this cache \
                 stayed busy for {} s ({}); retry later",
                of.what(),
                waited.as_secs(),
                of.setting()
            ),
        }
    }

    /// The low-level story (it may name the upstream's URL), where there
    /// is more to tell than [`UpstreamError::cause`]: for the admin and logs.
    pub(crate) fn detail(&self) -> Option<&str> {
        match self {
            UpstreamError::Unreachable { detail, .. }
            | UpstreamError::Protocol(detail)
            | UpstreamError::Tls(detail) => Some(detail),
            UpstreamError::KnownDown { cause, .. } => cause.detail(),
            UpstreamError::Rejected(r) => r.detail.as_deref(),
            _ => None,
        }
    }

    pub(super) fn from_reqwest(e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if is_tls_rejection(&e) {
            // The upstream answered, with a certificate (or handshake) ferry
            // refuses: a bad answer (502), not an unreachable host (504).
            UpstreamError::Tls(error_chain(&e))
        } else if e.is_connect() || e.is_request() {
            UpstreamError::Unreachable {
                why: no_answer(&e),
                detail: error_chain(&e),
            }
        } else {
            UpstreamError::Protocol(error_chain(&e))
        }
    }
}

/// Tells a name that does not resolve and a refused connection from other
/// connect failures. hyper-util's connector reports resolver failures as
/// "dns error" (it keeps the resolver's error type private).
fn no_answer(e: &(dyn std::error::Error + 'static)) -> NoAnswer {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.to_string() == "dns error" {
            return NoAnswer::Unresolvable;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return NoAnswer::Refused;
            }
        }
        current = err.source();
    }
    NoAnswer::Unreachable
}

/// Whether a TLS error (rustls refusing the upstream's certificate or
/// handshake) is somewhere in the chain. An `io::Error` hides the error it
/// wraps from `source()`, so it is looked into.
fn is_tls_rejection(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<tokio_rustls::rustls::Error>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if is_tls_rejection(inner) {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// The error with its causes: reqwest's own message hides the interesting part.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_fall_under_the_stale_if_case_a_user_expects() {
        let cases = [
            (UpstreamError::NotFound, StaleCase::NotFound),
            (UpstreamError::Unauthorized, StaleCase::Unauthorized),
            (UpstreamError::Timeout, StaleCase::Error),
            (UpstreamError::Status(500), StaleCase::Error),
            (
                UpstreamError::RateLimited { retry_after: None },
                StaleCase::Error,
            ),
            (UpstreamError::Protocol("bad".into()), StaleCase::Error),
        ];
        for (error, case) in cases {
            assert_eq!(error.stale_case(), case, "{error}");
        }
    }
}
