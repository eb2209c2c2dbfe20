//! A cache's tag policies, compiled: the cache compiles them once when it is
//! built, since every pull of a cached tag asks how long the tag is
//! trusted, and the warm path should match without allocating.

use std::time::Duration;

use super::{TagPolicy, TagTtl};

/// The tag policies of one cache, in their order, and the cache's TTL for
/// tags none of them matches.
pub(crate) struct TagRules {
    rules: Vec<(Glob, Option<Duration>)>,
    default: Duration,
}

impl TagRules {
    pub(crate) fn compile(policies: &[TagPolicy], default: Duration) -> TagRules {
        let rules = policies
            .iter()
            .map(|p| {
                let ttl = match p.ttl {
                    TagTtl::Secs(secs) => Some(Duration::from_secs(secs)),
                    TagTtl::Never => None,
                };
                (Glob::new(&p.pattern), ttl)
            })
            .collect();
        TagRules { rules, default }
    }

    /// How long `tag` is answered without asking the upstream: the first
    /// matching policy's TTL, else the cache's. `None`: for ever.
    pub(crate) fn ttl_of(&self, tag: &str) -> Option<Duration> {
        self.rules
            .iter()
            .find(|(glob, _)| glob.matches(tag.as_bytes()))
            .map_or(Some(self.default), |(_, ttl)| *ttl)
    }
}

/// A shell pattern cut at its `*`s: a matching tag starts with the first
/// piece, ends with the last, and holds the others in order between them.
/// `?` in a piece stands for any one byte (tags and patterns are ASCII, as
/// the config check and the tag parser ensure).
struct Glob {
    pieces: Vec<Box<[u8]>>,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        Glob {
            pieces: pattern.split('*').map(|p| p.as_bytes().into()).collect(),
        }
    }

    fn matches(&self, text: &[u8]) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return piece_is(first, text); // no `*`: the whole tag
        };
        if text.len() < first.len() + last.len()
            || !piece_is(first, &text[..first.len()])
            || !piece_is(last, &text[text.len() - last.len()..])
        {
            return false;
        }
        // Taking each middle piece at its leftmost place leaves the most
        // room for the next: a pattern of `*` alone needs no backtracking.
        let mut between = &text[first.len()..text.len() - last.len()];
        for piece in middle {
            match find(piece, between) {
                Some(at) => between = &between[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn piece_is(piece: &[u8], text: &[u8]) -> bool {
    piece.len() == text.len() && piece.iter().zip(text).all(|(p, t)| *p == b'?' || p == t)
}

fn find(piece: &[u8], text: &[u8]) -> Option<usize> {
    let last_start = text.len().checked_sub(piece.len())?;
    (0..=last_start).find(|&at| piece_is(piece, &text[at..at + piece.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::wildcard_match;

    /// Every string of `alphabet` up to `max` long.
    fn all_strings(alphabet: &[u8], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{}", *c as char)))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn compiled_patterns_match_exactly_what_the_plain_matcher_does() {
        let tags = all_strings(b"ab-", 5);
        for pattern in all_strings(b"a-*?", 4) {
            let glob = Glob::new(&pattern);
            for tag in &tags {
                assert_eq!(
                    glob.matches(tag.as_bytes()),
                    wildcard_match(&pattern, tag),
                    "pattern {pattern:?} on tag {tag:?}"
                );
            }
        }
    }

    #[test]
    fn first_matching_policy_wins_and_unmatched_tags_get_the_cache_ttl() {
        let policy = |pattern: &str, ttl| TagPolicy {
            pattern: pattern.into(),
            ttl,
        };
        let rules = TagRules::compile(
            &[
                policy("latest", TagTtl::Secs(60)),
                policy("v*.*.*", TagTtl::Never),
                policy("*-sha-*", TagTtl::Never),
                policy("v*", TagTtl::Secs(3600)),
            ],
            Duration::from_secs(300),
        );
        assert_eq!(rules.ttl_of("latest"), Some(Duration::from_secs(60)));
        assert_eq!(rules.ttl_of("v1.2.3"), None);
        assert_eq!(rules.ttl_of("main-sha-0a1b2c"), None);
        assert_eq!(rules.ttl_of("v1.2"), Some(Duration::from_secs(3600)));
        assert_eq!(rules.ttl_of("stable"), Some(Duration::from_secs(300)));
        assert_eq!(rules.ttl_of("latest-rc"), Some(Duration::from_secs(300)));
    }
}
