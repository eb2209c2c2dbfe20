//! Which listener a request came in on, and the origin (`scheme://host`)
//! ferry tells clients to come back to (the token realm, `next` links).
//! The Host header is the client's word: it is used only when it is a
//! plain `host[:port]`, never copied into a header or link unchecked.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{header, HeaderMap};

/// Inserted into every request's extensions by the accept loop.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// `https` on the TLS listener, else `http`.
    pub scheme: &'static str,
    /// The listener's own address (what the client connected to).
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
    /// `public_url` from the config: the origin clients use when ferry sits
    /// behind a reverse proxy; wins over everything the request says.
    pub public_url: Option<Arc<str>>,
}

impl Connection {
    /// `scheme://host[:port]` for links back to ferry: `public_url` if
    /// configured, else this listener's scheme with the request's Host
    /// (the accept loop copies HTTP/2's `:authority` there) when it is a
    /// valid host[:port], else the listener's own address.
    pub(crate) fn origin(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| is_host_port(h));
        match host {
            Some(host) => format!("{}://{host}", self.scheme),
            None => format!("{}://{}", self.scheme, self.local),
        }
    }
}

/// The origin for a request that came without a [`Connection`] (e.g. a
/// filter test): plain HTTP to a checked Host, else localhost.
pub(crate) fn origin_of(connection: Option<&Connection>, headers: &HeaderMap) -> String {
    match connection {
        Some(c) => c.origin(headers),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .filter(|h| is_host_port(h))
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    }
}

/// `name[:port]` or `[v6][:port]`, with nothing that could end a quoted
/// string, a header parameter or a URL authority (no `"`, `,`, space, `/`,
/// `@`, ...).
pub(crate) fn is_host_port(text: &str) -> bool {
    if text.is_empty() || text.len() > 255 {
        return false;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(scheme: &'static str) -> Connection {
        Connection {
            scheme,
            local: "127.0.0.1:8443".parse().unwrap(),
            peer: "127.0.0.1:5000".parse().unwrap(),
            public_url: None,
        }
    }

    fn headers(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn valid_hosts_only() {
        for ok in [
            "localhost",
            "reg.example:443",
            "127.0.0.1:24817",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example\",foo=\"bar",
            "a b",
            "a/b",
            "a,b",
            "user@host",
            "host:port",
            "host:99999",
            "[nonsense]:1",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn origin_follows_listener_and_checked_host() {
        let tls = connection("https");
        assert_eq!(tls.origin(&headers("reg:8443")), "https://reg:8443");
        assert_eq!(
            tls.origin(&headers("evil\",x=\"y")),
            "https://127.0.0.1:8443"
        );
        assert_eq!(tls.origin(&HeaderMap::new()), "https://127.0.0.1:8443");
        let proxied = Connection {
            public_url: Some("https://registry.example.com/".into()),
            ..connection("http")
        };
        assert_eq!(
            proxied.origin(&headers("internal:1")),
            "https://registry.example.com"
        );
    }
}
