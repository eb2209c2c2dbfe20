//! Which platforms of a multi-platform image (an index) to take: shared by
//! prefetch, complete images and export.

use serde::{Deserialize, Serialize};

/// A platform choice: every platform of an index, or the ones listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Platforms {
    All,
    /// `os/architecture[/variant]`; `linux/arm64` also takes `linux/arm64/v8`.
    Listed(Vec<String>),
}

impl Platforms {
    /// Whether an index entry's platform (`os/arch[/variant]`) is chosen.
    pub fn takes(&self, have: &str) -> bool {
        match self {
            Platforms::All => true,
            Platforms::Listed(list) => list.iter().any(|want| platform_matches(want, have)),
        }
    }
}

/// A platform as ferry accepts it: `os/architecture[/variant]`, each part
/// short and of letters, digits and `_`.
pub fn valid_platform(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 32
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `linux/arm64` takes `linux/arm64/v8`; a variant asked must match.
fn platform_matches(want: &str, have: &str) -> bool {
    want == have
        || have
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_variants() {
        assert!(platform_matches("linux/arm64", "linux/arm64/v8"));
        assert!(!platform_matches("linux/arm", "linux/arm64"));
        assert!(!platform_matches("linux/arm/v7", "linux/arm/v6"));
        assert!(Platforms::All.takes("linux/s390x"));
        assert!(Platforms::Listed(vec!["linux/amd64".into()]).takes("linux/amd64"));
    }
}
