//! A cache's policy: what it does beyond reaching its upstream. How long
//! each tag is trusted before a revalidation, when cached content is served
//! although the upstream refused, how much the cache may store, and how
//! much of the uplink it may use.
//!
//! One type for the config file, the stored record and the API. The config
//! file and the API write a tag's TTL as seconds or `"never"` and the stale
//! cases as a list of names; the stored record (postcard, which is not
//! self-describing) holds the plain values, so each `Serialize`/`Deserialize`
//! below asks the format whether it is human-readable.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Platforms;

/// What a cache does beyond reaching its upstream. Every field defaults to
/// what ferry did before policies existed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CachePolicy {
    /// Tag patterns with their own TTL; the first that matches a tag wins,
    /// and a tag no pattern matches has the cache's `tag_ttl_secs`.
    pub tag_policies: Vec<TagPolicy>,
    /// When cached content stays pullable although the upstream refused.
    pub stale_if: StaleIf,
    /// Most bytes this cache may keep (besides the global `max_size`).
    pub max_size: Option<u64>,
    /// Most requests to the upstream at once (all kinds).
    pub max_upstream_connections: Option<u32>,
    /// Most bytes per second read from the upstream.
    pub max_upstream_bandwidth: Option<u64>,
    /// When a pull gets an index, fetch these platforms of it (or all) in
    /// the background, so another architecture pulls offline later. Written
    /// `"all"` or a list of `os/arch[/variant]`; unset: off.
    #[serde(default, with = "complete_images")]
    pub complete_images: Option<Platforms>,
}

/// Most platforms `complete_images` may list.
const MAX_PLATFORMS: usize = 16;

/// `complete_images` as the config file and the API write it (`"all"` or a
/// list); the stored record keeps `Platforms` as it is.
pub(crate) mod complete_images {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<Platforms>, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return v.serialize(s);
        }
        match v {
            None => s.serialize_none(),
            Some(Platforms::All) => s.serialize_str("all"),
            Some(Platforms::Listed(list)) => list.serialize(s),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Platforms>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Word(String),
            List(Vec<String>),
        }
        if !d.is_human_readable() {
            return Option::<Platforms>::deserialize(d);
        }
        match Option::<Written>::deserialize(d)? {
            None => Ok(None),
            Some(Written::Word(w)) if w == "all" => Ok(Some(Platforms::All)),
            Some(Written::Word(w)) => Err(D::Error::custom(format!(
                "invalid complete_images {w:?}: use \"all\" or a list such as [\"linux/amd64\", \"linux/arm64\"]"
            ))),
            Some(Written::List(list)) => Ok(Some(Platforms::Listed(list))),
        }
    }
}

/// Tags matching `pattern` (shell wildcards `*` and `?` on the tag) are
/// revalidated after `ttl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagPolicy {
    pub pattern: String,
    pub ttl: TagTtl,
}

/// How long a cached tag is answered without asking the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagTtl {
    Secs(u64),
    /// The tag never moves: once cached, it is never revalidated.
    Never,
}

/// The upstream answers after which a cached tag is still served (the
/// answer is logged and counted). Which upstream answers ferry treats as
/// transient errors: timeouts, refused or cut connections, 5xx and 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleIf {
    /// Transient errors (on by default: what the cache is for).
    pub error: bool,
    /// 401 or 403 for content ferry holds: a broken token service or
    /// expired credentials, not a statement about the content (on by default).
    pub unauthorized: bool,
    /// 404 for a cached tag: deleted upstream. Off by default: the cache
    /// follows its source when the source says a tag is gone.
    pub not_found: bool,
}

impl Default for StaleIf {
    fn default() -> StaleIf {
        StaleIf {
            error: true,
            unauthorized: true,
            not_found: false,
        }
    }
}

const STALE_CASES: [&str; 3] = ["error", "unauthorized", "not_found"];

/// Which of the `stale_if` cases an upstream answer falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleCase {
    Error,
    Unauthorized,
    NotFound,
}

impl StaleCase {
    /// The name in the config file, the API and the metric's label.
    pub fn name(self) -> &'static str {
        match self {
            StaleCase::Error => STALE_CASES[0],
            StaleCase::Unauthorized => STALE_CASES[1],
            StaleCase::NotFound => STALE_CASES[2],
        }
    }
}

impl StaleIf {
    /// Whether cached content may be served after an answer of `case`.
    pub fn allows(self, case: StaleCase) -> bool {
        match case {
            StaleCase::Error => self.error,
            StaleCase::Unauthorized => self.unauthorized,
            StaleCase::NotFound => self.not_found,
        }
    }

    fn names(self) -> Vec<&'static str> {
        let on = [self.error, self.unauthorized, self.not_found];
        STALE_CASES
            .iter()
            .zip(on)
            .filter_map(|(name, on)| on.then_some(*name))
            .collect()
    }

    fn from_names<E: serde::de::Error>(names: &[String]) -> Result<StaleIf, E> {
        let mut stale = StaleIf {
            error: false,
            unauthorized: false,
            not_found: false,
        };
        for name in names {
            match name.as_str() {
                "error" => stale.error = true,
                "unauthorized" => stale.unauthorized = true,
                "not_found" => stale.not_found = true,
                other => {
                    return Err(E::custom(format!(
                        "unknown stale_if case {other:?}: use {}",
                        STALE_CASES.join(", ")
                    )))
                }
            }
        }
        Ok(stale)
    }
}

impl Serialize for StaleIf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.names().serialize(s)
        } else {
            (self.error, self.unauthorized, self.not_found).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for StaleIf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StaleIf, D::Error> {
        if d.is_human_readable() {
            StaleIf::from_names(&Vec::<String>::deserialize(d)?)
        } else {
            let (error, unauthorized, not_found) = <(bool, bool, bool)>::deserialize(d)?;
            Ok(StaleIf {
                error,
                unauthorized,
                not_found,
            })
        }
    }
}

impl Serialize for TagTtl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (s.is_human_readable(), self) {
            (true, TagTtl::Secs(n)) => s.serialize_u64(*n),
            (true, TagTtl::Never) => s.serialize_str("never"),
            (false, TagTtl::Secs(n)) => Some(*n).serialize(s),
            (false, TagTtl::Never) => None::<u64>.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TagTtl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TagTtl, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Secs(u64),
            Word(String),
        }
        if !d.is_human_readable() {
            return Ok(Option::<u64>::deserialize(d)?.map_or(TagTtl::Never, TagTtl::Secs));
        }
        match Written::deserialize(d)? {
            Written::Secs(n) => Ok(TagTtl::Secs(n)),
            Written::Word(w) if w == "never" => Ok(TagTtl::Never),
            Written::Word(w) => Err(D::Error::custom(format!(
                "invalid ttl {w:?}: use seconds or \"never\""
            ))),
        }
    }
}

/// A tag pattern ferry accepts: tag characters plus `*` and `?`.
fn valid_tag_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 128
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-*?".contains(c))
}

impl CachePolicy {
    /// What serde cannot check, as the field at fault and the message.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(bad) = self
            .tag_policies
            .iter()
            .find(|p| !valid_tag_pattern(&p.pattern))
        {
            return Err((
                "tag_policies",
                format!(
                    "Invalid tag pattern {:?}: use tag characters with * and ?.",
                    bad.pattern
                ),
            ));
        }
        if self.max_upstream_connections == Some(0) {
            return Err((
                "max_upstream_connections",
                "Ensure this value is greater than or equal to 1.".into(),
            ));
        }
        if self.max_upstream_bandwidth.is_some_and(|b| b < 1024) {
            return Err((
                "max_upstream_bandwidth",
                "Ensure this value is at least 1024 (bytes per second).".into(),
            ));
        }
        if self.max_size == Some(0) {
            return Err(("max_size", "Ensure this value is greater than 0.".into()));
        }
        if let Some(Platforms::Listed(list)) = &self.complete_images {
            if list.is_empty()
                || list.len() > MAX_PLATFORMS
                || !list.iter().all(|p| crate::domain::valid_platform(p))
            {
                return Err((
                    "complete_images",
                    format!("Give \"all\", or a list of 1 to {MAX_PLATFORMS} os/architecture[/variant] such as \"linux/arm64\"."),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_written_in_the_config_and_round_trips_through_postcard() {
        let text = r#"
            stale_if = ["error", "not_found"]
            max_size = 1000
            tag_policies = [{ pattern = "v*.*.*", ttl = "never" }, { pattern = "latest", ttl = 60 }]
        "#;
        let policy: CachePolicy = toml::from_str(text).unwrap();
        assert_eq!(policy.tag_policies[0].ttl, TagTtl::Never);
        assert_eq!(policy.tag_policies[1].ttl, TagTtl::Secs(60));
        assert!(policy.stale_if.error && policy.stale_if.not_found);
        assert!(!policy.stale_if.unauthorized);
        let bytes = postcard::to_allocvec(&policy).unwrap();
        assert_eq!(postcard::from_bytes::<CachePolicy>(&bytes).unwrap(), policy);
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["stale_if"], serde_json::json!(["error", "not_found"]));
        assert_eq!(json["tag_policies"][0]["ttl"], "never");
        assert!(toml::from_str::<CachePolicy>("stale_if = [\"sometimes\"]").is_err());
        let allowed: Vec<_> = [
            StaleCase::Error,
            StaleCase::Unauthorized,
            StaleCase::NotFound,
        ]
        .into_iter()
        .filter(|c| policy.stale_if.allows(*c))
        .map(StaleCase::name)
        .collect();
        assert_eq!(allowed, ["error", "not_found"]);
    }

    #[test]
    fn checks_what_serde_cannot() {
        let mut policy = CachePolicy::default();
        assert!(policy.check().is_ok());
        policy.tag_policies.push(TagPolicy {
            pattern: "v1/".into(),
            ttl: TagTtl::Never,
        });
        assert_eq!(policy.check().unwrap_err().0, "tag_policies");
        policy.tag_policies.clear();
        policy.max_upstream_bandwidth = Some(10);
        assert_eq!(policy.check().unwrap_err().0, "max_upstream_bandwidth");
        policy.max_upstream_bandwidth = None;
        policy.complete_images = Some(Platforms::Listed(vec!["linux".into()]));
        assert_eq!(policy.check().unwrap_err().0, "complete_images");
        policy.complete_images = Some(Platforms::Listed(vec![]));
        assert_eq!(policy.check().unwrap_err().0, "complete_images");
    }

    #[test]
    fn complete_images_reads_all_or_a_list() {
        let read = |line: &str| {
            toml::from_str::<CachePolicy>(&format!("tag_policies = []\nstale_if = []\n{line}"))
        };
        let all: CachePolicy = read("complete_images = \"all\"").unwrap();
        assert_eq!(all.complete_images, Some(Platforms::All));
        let listed: CachePolicy =
            read("complete_images = [\"linux/amd64\", \"linux/arm64/v8\"]").unwrap();
        let want = Platforms::Listed(vec!["linux/amd64".into(), "linux/arm64/v8".into()]);
        assert_eq!(listed.complete_images, Some(want));
        assert!(listed.check().is_ok());
        assert!(read("complete_images = \"some\"").is_err());
        assert_eq!(read("").unwrap().complete_images, None);
        assert_eq!(CachePolicy::default().complete_images, None);
        for policy in [all, listed] {
            let json = serde_json::to_value(&policy).unwrap();
            let back: CachePolicy = serde_json::from_value(json).unwrap();
            assert_eq!(back, policy);
            let bytes = postcard::to_allocvec(&policy).unwrap();
            assert_eq!(postcard::from_bytes::<CachePolicy>(&bytes).unwrap(), policy);
        }
        let json = serde_json::to_value(CachePolicy {
            complete_images: Some(Platforms::All),
            ..CachePolicy::default()
        })
        .unwrap();
        assert_eq!(json["complete_images"], "all");
    }
}
