//! Which distribution-API endpoint a path under `/v2/` names. Repository
//! names span several components, so the endpoint is found from the end.

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    Base,
    Catalog,
    Manifest { name: &'a str, reference: &'a str },
    Blob { name: &'a str, digest: &'a str },
    Tags { name: &'a str },
    Referrers { name: &'a str, digest: &'a str },
    Upload,
    Unknown,
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
        return Endpoint::Tags { name };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_component_names() {
        assert_eq!(parse(""), Endpoint::Base);
        assert_eq!(parse("_catalog"), Endpoint::Catalog);
        assert_eq!(
            parse("docker-cache/org/team/app/manifests/v1"),
            Endpoint::Manifest {
                name: "docker-cache/org/team/app",
                reference: "v1"
            }
        );
        assert_eq!(parse("a/b/tags/list"), Endpoint::Tags { name: "a/b" });
        assert_eq!(
            parse("a/blobs/sha256:x"),
            Endpoint::Blob {
                name: "a",
                digest: "sha256:x"
            }
        );
        assert_eq!(parse("a/blobs/uploads/"), Endpoint::Upload);
        assert_eq!(
            parse("a/referrers/sha256:x"),
            Endpoint::Referrers {
                name: "a",
                digest: "sha256:x"
            }
        );
        assert_eq!(parse("manifests/x"), Endpoint::Unknown);
        assert_eq!(parse("a/b/c"), Endpoint::Unknown);
    }
}
