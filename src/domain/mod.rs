//! Domain types, parsed once at the edge so that invalid values never reach
//! the cache, the store or the filesystem.

mod digest;
mod media_type;
mod name;
mod reference;
mod secret;

pub use digest::{Digest, DigestError, DigestVerifier};
pub use media_type::MediaType;
pub use name::{NameError, RepoName};
pub use reference::{Reference, ReferenceError, Tag};
pub use secret::Secret;
