//! ed25519 signatures over `ferry-bundle.json`. Stubs until the signing
//! work lands: the shapes below are what export and import call.

use std::path::Path;

use super::BundleError;

/// A private key that signs bundles (`ferry keygen` writes it).
pub(crate) struct BundleSigner(());

impl BundleSigner {
    pub(crate) fn from_file(_path: &Path) -> Result<BundleSigner, BundleError> {
        Err(BundleError::Unsupported("bundle signing"))
    }

    /// The bytes of the signature entry for `manifest`'s exact bytes.
    pub(crate) fn sign(&self, _manifest: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}

/// A public key an import trusts.
#[derive(Clone)]
pub(crate) struct TrustedKey(());

impl TrustedKey {
    pub(crate) fn from_file(_path: &Path) -> Result<TrustedKey, BundleError> {
        Err(BundleError::Unsupported("bundle signing"))
    }

    /// The key as text (what the CLI sends the API: public, not secret).
    pub(crate) fn parse(_text: &str) -> Result<TrustedKey, BundleError> {
        Err(BundleError::Unsupported("bundle signing"))
    }

    /// Checks the signature entry (`None`: the bundle had none) against
    /// `manifest`'s exact bytes.
    pub(crate) fn verify(
        &self,
        _manifest: &[u8],
        _signature: Option<&[u8]>,
    ) -> Result<(), BundleError> {
        Err(BundleError::Unsupported("bundle signing"))
    }
}

/// Writes a new key pair: the private key readable by its owner only.
pub(crate) fn generate_key_pair(_private: &Path, _public: &Path) -> Result<(), BundleError> {
    Err(BundleError::Unsupported("bundle signing"))
}
