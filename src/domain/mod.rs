//! Domain types, parsed once at the edge so that invalid values never reach
//! the cache, the store or the filesystem.

mod digest;
mod media_type;
mod name;
mod platform;
mod reference;
mod secret;

pub use digest::{Digest, DigestError, DigestVerifier};
pub use media_type::MediaType;
pub use name::{NameError, RepoName};
pub use platform::{valid_platform, Platforms};
pub use reference::{Reference, ReferenceError, Tag};
pub use secret::Secret;

/// The platform a client on this machine pulls by default, in the names
/// of the OCI image spec (Go's): `linux/amd64` on x86-64.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}
