//! Pins: what quota eviction must never remove. A pin names a whole cache
//! (by base path), a repository (its full local name) or one tag of a
//! repository; it holds whatever that name points at now, so a pinned tag
//! that moves upstream keeps its new manifest, and the old one is no longer
//! pinned.

use std::collections::BTreeSet;

/// One pin, as the API and the CLI name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pin {
    Cache(String),
    Repository(String),
    Tag { repository: String, tag: String },
}

impl Pin {
    /// Its key in the metadata: a kind byte, then the names, `\0` apart
    /// (neither base paths, repository names nor tags contain `\0`).
    pub(super) fn key(&self) -> Vec<u8> {
        let text = match self {
            Pin::Cache(cache) => format!("c\0{cache}"),
            Pin::Repository(repo) => format!("r\0{repo}"),
            Pin::Tag { repository, tag } => format!("t\0{repository}\0{tag}"),
        };
        text.into_bytes()
    }

    /// The pin a key names (None: a kind this ferry does not know).
    pub(super) fn from_key(key: &[u8]) -> Option<Pin> {
        let text = std::str::from_utf8(key).ok()?;
        let (kind, rest) = text.split_once('\0')?;
        Some(match kind {
            "c" => Pin::Cache(rest.to_string()),
            "r" => Pin::Repository(rest.to_string()),
            "t" => {
                let (repository, tag) = rest.split_once('\0')?;
                Pin::Tag {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                }
            }
            _ => return None,
        })
    }
}

/// Every pin, to ask of a tag whether it is pinned.
#[derive(Debug, Clone, Default)]
pub struct Pins {
    pins: BTreeSet<Pin>,
}

impl Pins {
    pub fn new(pins: impl IntoIterator<Item = Pin>) -> Pins {
        Pins {
            pins: pins.into_iter().collect(),
        }
    }

    pub fn contains(&self, pin: &Pin) -> bool {
        self.pins.contains(pin)
    }

    pub fn insert(&mut self, pin: Pin) {
        self.pins.insert(pin);
    }

    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    /// Whether `repository`, in `cache`, is pinned as a whole: by itself or
    /// by its cache.
    pub fn holds_repository(&self, cache: &str, repository: &str) -> bool {
        !self.pins.is_empty()
            && (self.pins.contains(&Pin::Cache(cache.to_string()))
                || self.pins.contains(&Pin::Repository(repository.to_string())))
    }

    /// Whether `tag` of `repository`, in `cache`, is pinned: by itself, by
    /// its repository or by its cache.
    pub fn covers(&self, cache: &str, repository: &str, tag: &str) -> bool {
        self.holds_repository(cache, repository)
            || (!self.pins.is_empty()
                && self.pins.contains(&Pin::Tag {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_cover_what_they_name() {
        let pins = [
            Pin::Cache("hub".into()),
            Pin::Repository("quay/org/app".into()),
            Pin::Tag {
                repository: "ghcr/a/b".into(),
                tag: "v1".into(),
            },
        ];
        for pin in &pins {
            assert_eq!(Pin::from_key(&pin.key()).as_ref(), Some(pin));
        }
        let set = Pins::new(pins);
        assert!(set.covers("hub", "hub/library/busybox", "latest"));
        assert!(set.covers("quay", "quay/org/app", "anything"));
        assert!(set.covers("ghcr", "ghcr/a/b", "v1"));
        assert!(!set.covers("ghcr", "ghcr/a/b", "v2"));
        assert!(!set.covers("quay", "quay/org/other", "v1"));
        assert_eq!(Pin::from_key(b"x\0what"), None);
    }
}
