//! Which distribution-API endpoint a path under `/v2/` names. Repository
//! names span several components, so the endpoint is found from the end.
//!
//! The parts a path names are percent-decoded here, once: `1%2e36` is the
//! tag `1.36` (RFC 3986 6.2.2.2), as docker-registry reads it. An encoded
//! slash is the exception: `%2F` is data inside one segment, never a
//! separator, so a part hiding one stays as sent and fails validation
//! (no name, tag or digest holds a `/` or a `%`). Nothing is resolved:
//! a `..` or `.` segment, sent plainly or encoded, reaches the name
//! validation as it is and is refused there, so no request reaches a
//! name it did not spell out.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    Base,
    Catalog,
    Manifest {
        name: Cow<'a, str>,
        reference: Cow<'a, str>,
    },
    Blob {
        name: Cow<'a, str>,
        digest: Cow<'a, str>,
    },
    Tags {
        name: Cow<'a, str>,
    },
    Referrers {
        name: Cow<'a, str>,
        digest: Cow<'a, str>,
    },
    Upload,
    Unknown,
}

impl Endpoint<'_> {
    /// The methods the endpoint answers, for `Allow` (RFC 9110 10.2.1):
    /// reads only, and nothing on the upload endpoints of a read-only cache.
    pub(crate) fn allowed_methods(&self) -> &'static str {
        match self {
            Endpoint::Upload => "",
            _ => "GET, HEAD",
        }
    }
}

pub(crate) fn parse(tail: &str) -> Endpoint<'_> {
    let tail = tail.trim_start_matches('/');
    if tail.is_empty() {
        return Endpoint::Base;
    }
    if tail == "_catalog" {
        return Endpoint::Catalog;
    }
    if let Some(name) = tail.strip_suffix("/tags/list") {
        return Endpoint::Tags {
            name: decoded(name),
        };
    }
    if tail.contains("/blobs/uploads") {
        return Endpoint::Upload;
    }
    let Some((head, last)) = tail.rsplit_once('/') else {
        return Endpoint::Unknown;
    };
    let Some((name, kind)) = head.rsplit_once('/') else {
        return Endpoint::Unknown;
    };
    let (name, last) = (decoded(name), decoded(last));
    match kind {
        "manifests" => Endpoint::Manifest {
            name,
            reference: last,
        },
        "blobs" => Endpoint::Blob { name, digest: last },
        "referrers" => Endpoint::Referrers { name, digest: last },
        _ => Endpoint::Unknown,
    }
}

/// `path` (one or more segments) with each segment percent-decoded; the
/// text as sent when a segment hides a `/` or is not UTF-8 once decoded.
fn decoded(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        match percent_decode_str(segment).decode_utf8() {
            Ok(text) if !text.contains('/') => {
                if i > 0 {
                    out.push('/');
                }
                out.push_str(&text);
            }
            _ => return Cow::Borrowed(path),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest<'a>(name: &'a str, reference: &'a str) -> Endpoint<'a> {
        Endpoint::Manifest {
            name: name.into(),
            reference: reference.into(),
        }
    }

    #[test]
    fn decodes_escapes_but_never_an_encoded_slash() {
        assert_eq!(parse("a/b/manifests/1%2e36"), manifest("a/b", "1.36"));
        assert_eq!(parse("a%2Db/c/manifests/x"), manifest("a-b/c", "x"));
        assert_eq!(
            parse("a/blobs/sha256%3Aab").digest_text(),
            Some("sha256:ab")
        );
        // An encoded slash stays in its segment, as sent.
        assert_eq!(parse("a%2fb/manifests/x"), manifest("a%2fb", "x"));
        assert_eq!(
            parse("a/blobs/..%2F..%2Fx").digest_text(),
            Some("..%2F..%2Fx")
        );
        // Dot segments are not resolved: the name validation refuses them.
        assert_eq!(parse("a/%2e%2e/b/manifests/x"), manifest("a/../b", "x"));
        assert_eq!(parse("a/../b/manifests/x"), manifest("a/../b", "x"));
        // Escapes of bytes that are not UTF-8 stay as sent.
        assert_eq!(parse("a/manifests/%ff"), manifest("a", "%ff"));
        assert_eq!(
            parse("a/b/tags/list"),
            Endpoint::Tags { name: "a/b".into() }
        );
    }

    impl Endpoint<'_> {
        fn digest_text(&self) -> Option<&str> {
            match self {
                Endpoint::Blob { digest, .. } => Some(digest),
                _ => None,
            }
        }
    }

    #[test]
    fn parses_multi_component_names() {
        assert_eq!(parse(""), Endpoint::Base);
        assert_eq!(parse("_catalog"), Endpoint::Catalog);
        assert_eq!(
            parse("docker-cache/org/team/app/manifests/v1"),
            manifest("docker-cache/org/team/app", "v1")
        );
        assert_eq!(
            parse("a/b/tags/list"),
            Endpoint::Tags { name: "a/b".into() }
        );
        assert_eq!(
            parse("a/blobs/sha256:x"),
            Endpoint::Blob {
                name: "a".into(),
                digest: "sha256:x".into()
            }
        );
        assert_eq!(parse("a/blobs/uploads/"), Endpoint::Upload);
        assert_eq!(
            parse("a/referrers/sha256:x"),
            Endpoint::Referrers {
                name: "a".into(),
                digest: "sha256:x".into()
            }
        );
        assert_eq!(parse("manifests/x"), Endpoint::Unknown);
        assert_eq!(parse("a/b/c"), Endpoint::Unknown);
    }
}
