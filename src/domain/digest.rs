use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};

/// A content digest (`sha256:<64 hex>` or `sha512:<128 hex>`), validated so
/// that its text is safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest must have the form algorithm:hex")]
    Malformed,
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("digest hex part must be {0} lowercase hex characters")]
    BadHex(usize),
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part: lowercase hex, validated.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `text` has the form of a digest in the OCI grammar,
    /// `algorithm ":" encoded` with algorithm `[a-z0-9]+([+._-][a-z0-9]+)*`
    /// and encoded `[a-zA-Z0-9=_-]+`, whatever its algorithm and length.
    /// Text of this form is a digest, valid or not (a client error when
    /// not); text not of it names no content at all (a path that
    /// docker-registry does not route).
    pub fn has_form(text: &str) -> bool {
        let Some((algorithm, encoded)) = text.split_once(':') else {
            return false;
        };
        let lower_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let algorithm_ok = algorithm
            .split(['+', '.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(lower_alnum));
        let encoded_ok = !encoded.is_empty()
            && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
        algorithm_ok && encoded_ok
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// A streaming hasher that computes a digest of the same algorithm.
    pub fn verifier(&self) -> DigestVerifier {
        DigestVerifier::new(self.algorithm)
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut v = self.verifier();
        v.update(bytes);
        v.finish() == *self
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other if !other.is_empty() => {
                return Err(DigestError::UnsupportedAlgorithm(other.to_string()))
            }
            _ => return Err(DigestError::Malformed),
        };
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(DigestError::BadHex(algorithm.hex_len()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Incremental hashing of a byte stream, finished into a [`Digest`].
pub enum DigestVerifier {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl DigestVerifier {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => DigestVerifier::Sha256(Sha256::new()),
            Algorithm::Sha512 => DigestVerifier::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestVerifier::Sha256(h) => h.update(bytes),
            DigestVerifier::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            DigestVerifier::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            DigestVerifier::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(d.hex().len(), 64);
        assert_eq!("sha256:ABC".parse::<Digest>(), Err(DigestError::BadHex(64)));
        assert_eq!(
            format!("sha256:{}", "A".repeat(64)).parse::<Digest>(),
            Err(DigestError::BadHex(64))
        );
        assert_eq!(
            format!("sha256:../{}", "a".repeat(61)).parse::<Digest>(),
            Err(DigestError::BadHex(64))
        );
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert_eq!("nocolon".parse::<Digest>(), Err(DigestError::Malformed));
    }

    #[test]
    fn tells_the_form_of_a_digest() {
        for text in [
            "sha256:abc",
            "md5:AAAA",
            "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
            "sha256:not-a-digest",
        ] {
            assert!(Digest::has_form(text), "{text}");
        }
        for text in [
            "latest",
            "sha256:",
            ":abc",
            "sha256",
            "SHA256:abc",
            "sha256:a:b",
            "sha256:a/b",
            "sha256:a%2fb",
            "+sha256:abc",
            "sha256-:abc",
        ] {
            assert!(!Digest::has_form(text), "{text}");
        }
    }

    #[test]
    fn hashes() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
    }
}
