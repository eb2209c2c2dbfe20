use std::fmt;

use serde::{Deserialize, Serialize};

use super::Digest;

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Option<Tag> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b[1.min(b.len())..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        (first_ok && rest_ok && b.len() <= 128).then(|| Tag(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Tag::parse(&s).ok_or(s)
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Names no manifest anywhere: a 404, as registries answer.
    #[error(
        "neither a tag (up to 128 of [A-Za-z0-9._-], not starting with . or -) \
         nor a digest (algorithm:hex)"
    )]
    NeitherTagNorDigest,
    /// Of a digest's form, but not a valid digest ferry can verify.
    #[error(transparent)]
    Digest(super::DigestError),
}

/// What a manifest request names: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A tag, else a digest. Text that is neither, not even of a digest's
    /// form, is told apart from a malformed digest: the first names
    /// nothing (404), the second is a client error (400).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if let Some(tag) = Tag::parse(s) {
            return Ok(Reference::Tag(tag));
        }
        if !Digest::has_form(s) {
            return Err(ReferenceError::NeitherTagNorDigest);
        }
        s.parse()
            .map(Reference::Digest)
            .map_err(ReferenceError::Digest)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(Tag::parse("1.36").is_some());
        assert!(Tag::parse("_x-Y.z").is_some());
        assert!(Tag::parse(".x").is_none());
        assert!(Tag::parse("").is_none());
        assert!(Tag::parse("a/b").is_none());
        assert!(Tag::parse(&"a".repeat(129)).is_none());
        assert!(Tag::parse(&"a".repeat(128)).is_some());
    }

    #[test]
    fn tells_what_is_not_a_reference_from_a_bad_digest() {
        for text in [
            "bad!tag",
            ".x",
            "-x",
            ":abc",
            "sha256:",
            "",
            &"a".repeat(129),
        ] {
            assert_eq!(
                Reference::parse(text),
                Err(ReferenceError::NeitherTagNorDigest),
                "{text}"
            );
        }
        for text in ["sha256:abc", "md5:abc", "sha384:abc", "sha256:ABC"] {
            assert!(
                matches!(Reference::parse(text), Err(ReferenceError::Digest(_))),
                "{text}"
            );
        }
    }
}
