use std::fmt;

use serde::{Deserialize, Serialize};

/// A repository name: path components matching
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`. Validated, so no
/// component is empty, `.` or `..`, and the name is safe in keys and paths.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

/// The longest name accepted, as registries do in practice.
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("repository name is empty")]
    Empty,
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("invalid repository name component {0:?}")]
    BadComponent(String),
}

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        for component in s.split('/') {
            if !valid_component(component) {
                return Err(NameError::BadComponent(component.to_string()));
            }
        }
        Ok(RepoName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Docker Hub's implicit namespace: `busybox` means `library/busybox`.
    pub fn with_library_prefix(&self) -> RepoName {
        if self.0.contains('/') {
            self.clone()
        } else {
            RepoName(format!("library/{}", self.0))
        }
    }

    /// `prefix/self`, for naming the local repository of a cache.
    pub fn prefixed(&self, prefix: &str) -> String {
        format!("{prefix}/{}", self.0)
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, without a regex engine.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        // A run of alphanumerics.
        let start = i;
        while i < b.len() && is_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator: `.`, `_`, `__` or one or more `-`.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

impl TryFrom<String> for RepoName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RepoName::parse(&s)
    }
}

impl From<RepoName> for String {
    fn from(n: RepoName) -> String {
        n.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for n in [
            "busybox",
            "library/busybox",
            "org/team/app",
            "a.b_c__d--e",
            "x1/y-2",
        ] {
            assert!(RepoName::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for n in [
            "", "/a", "a/", "a//b", "..", "a/../b", "A", "a_", "a___b", "-a", "a b", "a:b",
        ] {
            assert!(RepoName::parse(n).is_err(), "{n}");
        }
        assert_eq!(RepoName::parse(&"a".repeat(256)), Err(NameError::TooLong));
    }

    #[test]
    fn library_prefix() {
        let n = RepoName::parse("busybox").unwrap();
        assert_eq!(n.with_library_prefix().as_str(), "library/busybox");
        let n = RepoName::parse("org/app").unwrap();
        assert_eq!(n.with_library_prefix().as_str(), "org/app");
    }
}
