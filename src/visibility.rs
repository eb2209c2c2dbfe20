//! What a caller may see of the cached content: the one rule the API's
//! content reads and the registry's catalog both apply, so that they never
//! disagree. The admin sees everything. Anyone else sees the repositories
//! under a public cache's base path, and nothing else: not a private
//! cache's, nor one whose cache is gone (whether it was private is no longer
//! known).

use crate::cache::Caches;

pub(crate) enum Viewer {
    Admin,
    /// Not the admin; the base paths of the public caches served now.
    Anonymous {
        public: Vec<String>,
    },
}

impl Viewer {
    /// The admin, or what anyone else may see of `caches` right now.
    pub(crate) fn of(admin: bool, caches: &Caches) -> Viewer {
        if admin {
            return Viewer::Admin;
        }
        Viewer::Anonymous {
            public: caches
                .list()
                .iter()
                .filter(|c| !c.is_private())
                .map(|c| c.base_path().to_string())
                .collect(),
        }
    }

    /// Whether the cache (distribution) at `base_path` may be shown.
    pub(crate) fn sees_cache(&self, base_path: &str) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::Anonymous { public } => public.iter().any(|p| p == base_path),
        }
    }

    /// Whether the local repository `name` (`<base path>/<repository>`)
    /// and everything it holds may be shown.
    pub(crate) fn sees_repository(&self, name: &str) -> bool {
        match self {
            Viewer::Admin => true,
            Viewer::Anonymous { public } => public.iter().any(|p| {
                name.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_sees_public_paths_only() {
        let anonymous = Viewer::Anonymous {
            public: vec!["hub".into(), "quay/io".into()],
        };
        assert!(anonymous.sees_repository("hub/library/busybox"));
        assert!(anonymous.sees_repository("quay/io/a"));
        assert!(!anonymous.sees_repository("hubby/library/busybox"));
        assert!(!anonymous.sees_repository("secret/library/busybox"));
        assert!(!anonymous.sees_repository("hub"));
        assert!(!anonymous.sees_repository("quay/a"));
        assert!(anonymous.sees_cache("hub") && !anonymous.sees_cache("secret"));
        assert!(Viewer::Admin.sees_repository("secret/library/busybox"));
        assert!(Viewer::Admin.sees_cache("secret"));
    }
}
