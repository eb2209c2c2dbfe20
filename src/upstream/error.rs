use std::time::Duration;

/// What went wrong talking to an upstream registry. The kind decides what
/// the cache does: transient kinds let it serve stale content, and they map
/// to 504 (no answer) or 502 (a bad answer) when nothing cached can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("upstream is down (known from an earlier failure; rechecking in the background)")]
    KnownDown,
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
}

impl UpstreamError {
    /// Failures that say nothing about the content, so cached content may be
    /// served instead (stale-if-error).
    pub fn is_transient(&self) -> bool {
        !matches!(self, UpstreamError::NotFound)
    }

    /// A metric label for the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "unreachable",
            UpstreamError::Timeout => "timeout",
            UpstreamError::KnownDown => "known_down",
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::Status(_) => "status",
            UpstreamError::Unauthorized => "unauthorized",
            UpstreamError::NotFound => "not_found",
            UpstreamError::Protocol(_) => "protocol",
        }
    }

    /// Failures where the upstream gave no answer at all (504, not 502).
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unreachable(_) | UpstreamError::Timeout | UpstreamError::KnownDown
        )
    }

    pub(super) fn from_reqwest(e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if is_tls_rejection(&e) {
            // The upstream answered, with a certificate (or handshake) ferry
            // refuses: a bad answer (502), not an unreachable host (504).
            UpstreamError::Protocol(error_chain(&e))
        } else if e.is_connect() || e.is_request() {
            UpstreamError::Unreachable(error_chain(&e))
        } else {
            UpstreamError::Protocol(error_chain(&e))
        }
    }
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
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
