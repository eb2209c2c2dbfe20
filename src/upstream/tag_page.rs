//! One `tags/list` page (`{"name": ..., "tags": [...]}`) appended to the
//! tags collected so far, refusing more than a total number of tags while it
//! parses: a page of millions of one-letter tags fails early instead of
//! expanding into millions of allocations first.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub(crate) struct TagPage<'a> {
    tags: &'a mut Vec<String>,
    max: usize,
}

impl<'a> TagPage<'a> {
    pub(crate) fn new(tags: &'a mut Vec<String>, max: usize) -> Self {
        TagPage { tags, max }
    }
}

impl<'de> DeserializeSeed<'de> for TagPage<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TagPage<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tag list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "tags" {
                map.next_value_seed(TagArray {
                    tags: &mut *self.tags,
                    max: self.max,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The `tags` member: an array of strings, or `null` (docker-registry sends
/// `null` for a repository without tags).
struct TagArray<'a> {
    tags: &'a mut Vec<String>,
    max: usize,
}

impl<'de> DeserializeSeed<'de> for TagArray<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for TagArray<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of tags or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(tag) = seq.next_element::<String>()? {
            if self.tags.len() >= self.max {
                return Err(de::Error::custom(format!("more than {} tags", self.max)));
            }
            self.tags.push(tag);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str, tags: &mut Vec<String>, max: usize) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        TagPage::new(tags, max).deserialize(&mut de)?;
        de.end()
    }

    #[test]
    fn appends_pages_and_accepts_null() {
        let mut tags = Vec::new();
        parse(r#"{"name":"a/b","tags":["1","2"]}"#, &mut tags, 10).unwrap();
        parse(r#"{"tags":null,"name":"a/b"}"#, &mut tags, 10).unwrap();
        parse(
            r#"{"name":"a/b","tags":["3"],"extra":{"x":[1]}}"#,
            &mut tags,
            10,
        )
        .unwrap();
        assert_eq!(tags, ["1", "2", "3"]);
    }

    #[test]
    fn refuses_past_the_bound_and_bad_json() {
        let mut tags = vec!["0".to_string()];
        assert!(parse(r#"{"tags":["1","2","3"]}"#, &mut tags, 3).is_err());
        assert_eq!(tags.len(), 3);
        for bad in [r#"{"tags":[1]}"#, r#"["x"]"#, r#"{"tags":["a"]} x"#, "{"] {
            assert!(parse(bad, &mut Vec::new(), 10).is_err(), "{bad}");
        }
    }
}
