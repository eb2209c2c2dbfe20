use serde::{Deserialize, Serialize};

/// A password or key: never printed by `Debug` or `Display`, so it cannot
/// leak into logs, and never serialized into an API response (those types
/// leave secrets out; only the store persists them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}
