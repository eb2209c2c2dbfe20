use crate::domain::Digest;

/// What can be wrong with a bundle, its parts, its signature or a key:
/// each names the thing at fault, for a person reading the message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleError {
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("bundle I/O error: {0}")]
    Io(std::io::Error),
    #[error("the bundle is not valid: {0}")]
    Invalid(String),
    #[error("blob {digest} in the bundle does not match its digest")]
    DigestMismatch { digest: Digest },
    #[error("the bundle assumes the receiver holds content it does not have: {}", list(.missing))]
    MissingAssumed { missing: Vec<Digest> },
    #[error("the bundle is not signed, and a trusted key was given")]
    Unsigned,
    #[error("the bundle's signature does not verify with the trusted key: {0}")]
    BadSignature(String),
    #[error("key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("part {part} of the bundle is missing")]
    MissingPart { part: String },
    #[error("part {part} of the bundle is damaged: its checksum does not match")]
    DamagedPart { part: String },
    #[error("{0} is not built yet")]
    Unsupported(&'static str),
}

/// A reader of split parts reports a missing or damaged part through
/// `io::Read` as an I/O error carrying the `BundleError`: `?` turns it back
/// into that error, wherever a reader on top (tar, zstd) wrapped it.
impl From<std::io::Error> for BundleError {
    fn from(error: std::io::Error) -> BundleError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = cause {
            match e.downcast_ref::<BundleError>() {
                Some(BundleError::MissingPart { part }) => {
                    return BundleError::MissingPart { part: part.clone() }
                }
                Some(BundleError::DamagedPart { part }) => {
                    return BundleError::DamagedPart { part: part.clone() }
                }
                _ => {}
            }
            cause = match e.downcast_ref::<std::io::Error>() {
                // An io::Error's source() skips its own payload: look at it.
                Some(io) => io.get_ref().map(|inner| inner as _),
                None => e.source(),
            };
        }
        BundleError::Io(error)
    }
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
