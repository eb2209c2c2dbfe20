//! ed25519 signatures over `ferry-bundle.json`. Keys are standard PEM
//! files, so other tools read them too: the private key PKCS#8
//! (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey -algorithm ed25519`
//! writes), the public key SPKI (`-----BEGIN PUBLIC KEY-----`, what
//! `openssl pkey -pubout` writes).
//!
//! The signature entry is a small JSON document:
//! `{"algorithm":"ed25519","key_fingerprint":"sha256:<hex>","signature":"<base64>"}`,
//! the signature over the sidecar manifest's exact bytes. The fingerprint is
//! the SHA-256 of the public key's SPKI DER form, so
//! `openssl pkey -pubin -in KEY.pub -outform DER | sha256sum` prints it too.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::BundleError;

/// The only algorithm; named in the entry so another can be added later.
const ALGORITHM: &str = "ed25519";
/// A PEM key is a few hundred bytes: anything much larger is not a key.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// The signature entry is about 200 bytes.
pub(crate) const MAX_SIGNATURE_ENTRY: usize = 4096;

/// The signature entry (`ferry-bundle.json.sig`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureEntry {
    algorithm: String,
    key_fingerprint: String,
    signature: String,
}

/// A private key that signs bundles (`ferry keygen` writes it).
pub(crate) struct BundleSigner {
    key: SigningKey,
    fingerprint: String,
}

impl BundleSigner {
    /// Reads a PKCS#8 PEM private key, refusing one other users may read
    /// (as ssh does): a signing key that leaked signs anything.
    pub(crate) fn from_file(path: &Path) -> Result<BundleSigner, BundleError> {
        let key_error = |reason: String| BundleError::Key {
            path: path.display().to_string(),
            reason,
        };
        let text = read_key_file(path)?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            key_error(format!(
                "not an ed25519 private key in PKCS#8 PEM form (as `ferry keygen` writes): {e}"
            ))
        })?;
        let mode = std::fs::metadata(path)
            .map_err(|source| BundleError::File {
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(key_error(format!(
                "other users may read this private key (mode {:o}): `chmod 600` it",
                mode & 0o777
            )));
        }
        let fingerprint = fingerprint(&key.verifying_key());
        Ok(BundleSigner { key, fingerprint })
    }

    /// The fingerprint of the public half (what an import's key must show).
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public half, as SPKI PEM.
    pub(crate) fn public_key(&self) -> TrustedKey {
        TrustedKey {
            key: self.key.verifying_key(),
            fingerprint: self.fingerprint.clone(),
        }
    }

    /// The bytes of the signature entry for `manifest`'s exact bytes.
    pub(crate) fn sign(&self, manifest: &[u8]) -> Vec<u8> {
        let signature = self.key.sign(manifest);
        let entry = SignatureEntry {
            algorithm: ALGORITHM.to_string(),
            key_fingerprint: self.fingerprint.clone(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        };
        // Serialising three strings cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&entry).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// A public key an import trusts.
#[derive(Clone)]
pub(crate) struct TrustedKey {
    key: VerifyingKey,
    fingerprint: String,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({})", self.fingerprint)
    }
}

impl TrustedKey {
    pub(crate) fn from_file(path: &Path) -> Result<TrustedKey, BundleError> {
        let text = read_key_file(path)?;
        Self::parse(&text).map_err(|e| match e {
            BundleError::Key { reason, .. } => BundleError::Key {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// The key as text (what the CLI sends the API: public, not secret):
    /// SPKI PEM.
    pub(crate) fn parse(text: &str) -> Result<TrustedKey, BundleError> {
        let key = VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| BundleError::Key {
            path: "(the trusted key)".to_string(),
            reason: if text.contains("PRIVATE KEY") {
                "this is a private key: give the public one (NAME.pub of `ferry keygen`)"
                    .to_string()
            } else {
                format!(
                    "not an ed25519 public key in SPKI PEM form (as `ferry keygen` writes): {e}"
                )
            },
        })?;
        let fingerprint = fingerprint(&key);
        Ok(TrustedKey { key, fingerprint })
    }

    /// `sha256:<hex>` of the key's SPKI DER form.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The key as SPKI PEM text (what [`TrustedKey::parse`] reads).
    pub(crate) fn to_pem(&self) -> String {
        // Encoding a valid key cannot fail.
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// Checks the signature entry (`None`: the bundle had none) against
    /// `manifest`'s exact bytes.
    pub(crate) fn verify(
        &self,
        manifest: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<(), BundleError> {
        let entry = signature.ok_or(BundleError::Unsigned)?;
        if entry.len() > MAX_SIGNATURE_ENTRY {
            return Err(BundleError::BadSignature(format!(
                "the signature entry is {} bytes, more than a signature's {MAX_SIGNATURE_ENTRY}",
                entry.len()
            )));
        }
        let entry: SignatureEntry = serde_json::from_slice(entry).map_err(|e| {
            BundleError::BadSignature(format!("the signature entry is not valid: {e}"))
        })?;
        if entry.algorithm != ALGORITHM {
            return Err(BundleError::BadSignature(format!(
                "algorithm {:?} is not supported (only {ALGORITHM})",
                entry.algorithm
            )));
        }
        if entry.key_fingerprint != self.fingerprint {
            return Err(BundleError::BadSignature(format!(
                "it was signed by key {}, not by the trusted key {}",
                entry.key_fingerprint, self.fingerprint
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(entry.signature.as_bytes())
            .map_err(|e| BundleError::BadSignature(format!("the signature is not base64: {e}")))?;
        let signature = Signature::from_slice(&bytes).map_err(|_| {
            BundleError::BadSignature(format!(
                "the signature is {} bytes, not an ed25519 signature's 64",
                bytes.len()
            ))
        })?;
        // Strict: refuses the malleable and small-order forms plain
        // verification lets through.
        self.key.verify_strict(manifest, &signature).map_err(|_| {
            BundleError::BadSignature(
                "the bundle's manifest was changed after it was signed".to_string(),
            )
        })
    }
}

/// Writes a new key pair: the private key readable by its owner only.
/// Neither file may exist yet (a key is never overwritten: losing one
/// makes every bundle it signed unverifiable); the private key is created
/// exclusively, and removed again if the public one cannot be written, so
/// no half pair is left behind.
pub(crate) fn generate_key_pair(private: &Path, public: &Path) -> Result<(), BundleError> {
    let file_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| BundleError::File { path, source }
    };
    for path in [private, public] {
        if path.symlink_metadata().is_ok() {
            return Err(BundleError::Key {
                path: path.display().to_string(),
                reason: "already exists: ferry keygen never overwrites a key".to_string(),
            });
        }
    }
    let mut seed = ed25519_dalek::SecretKey::default();
    getrandom::fill(&mut seed).map_err(|e| BundleError::Key {
        path: private.display().to_string(),
        reason: format!("no randomness from the system: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (the secret only), the form openssl writes and every
    // reader takes; the public half is derived from it.
    let pkcs8 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: seed,
        public_key: None,
    };
    seed.fill(0);
    let private_pem = pkcs8
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| BundleError::Key {
            path: private.display().to_string(),
            reason: format!("cannot encode the key: {e}"),
        })?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| BundleError::Key {
            path: public.display().to_string(),
            reason: format!("cannot encode the key: {e}"),
        })?;
    write_new(private, private_pem.as_bytes(), 0o600).map_err(file_error(private))?;
    if let Err(e) = write_new(public, public_pem.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(private);
        return Err(file_error(public)(e));
    }
    Ok(())
}

/// Creates `path` (never an existing file), writes `bytes` and syncs them.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // Whatever the umask: the public key is for others to read.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn read_key_file(path: &Path) -> Result<String, BundleError> {
    let file_error = |source| BundleError::File {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(file_error)?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(BundleError::Key {
            path: path.display().to_string(),
            reason: format!("more than {MAX_KEY_FILE} bytes: not a key file"),
        });
    }
    Ok(text)
}

fn fingerprint(key: &VerifyingKey) -> String {
    // Encoding a valid key cannot fail.
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path) -> (BundleSigner, TrustedKey) {
        let (private, public) = (dir.join("k.key"), dir.join("k.pub"));
        generate_key_pair(&private, &public).unwrap();
        (
            BundleSigner::from_file(&private).unwrap(),
            TrustedKey::from_file(&public).unwrap(),
        )
    }

    #[test]
    fn signs_and_verifies_the_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, trusted) = pair(dir.path());
        assert_eq!(signer.fingerprint(), trusted.fingerprint());
        let manifest = br#"{"format":"ferry-bundle/1"}"#;
        let entry = signer.sign(manifest);
        trusted.verify(manifest, Some(&entry)).unwrap();

        let changed = br#"{"format":"ferry-bundle/1" }"#;
        let err = trusted.verify(changed, Some(&entry)).unwrap_err();
        assert!(matches!(err, BundleError::BadSignature(_)), "{err}");
        assert!(err.to_string().contains("changed"), "{err}");
    }

    #[test]
    fn refuses_an_unsigned_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let (_, trusted) = pair(dir.path());
        let err = trusted.verify(b"{}", None).unwrap_err();
        assert!(matches!(err, BundleError::Unsigned), "{err}");
    }

    #[test]
    fn refuses_another_keys_signature_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, _) = pair(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (_, trusted) = pair(other.path());
        let err = trusted
            .verify(b"{}", Some(&signer.sign(b"{}")))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(signer.fingerprint()), "{text}");
        assert!(text.contains(trusted.fingerprint()), "{text}");
    }

    #[test]
    fn refuses_a_forged_entry_claiming_the_trusted_key() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, _) = pair(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (_, trusted) = pair(other.path());
        // Someone else's signature, relabelled with the trusted fingerprint.
        let mut entry: SignatureEntry = serde_json::from_slice(&signer.sign(b"{}")).unwrap();
        entry.key_fingerprint = trusted.fingerprint().to_string();
        let forged = serde_json::to_vec(&entry).unwrap();
        let err = trusted.verify(b"{}", Some(&forged)).unwrap_err();
        assert!(matches!(err, BundleError::BadSignature(_)), "{err}");
    }

    #[test]
    fn refuses_damaged_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, trusted) = pair(dir.path());
        let good: SignatureEntry = serde_json::from_slice(&signer.sign(b"{}")).unwrap();
        let cases = [
            b"not json".to_vec(),
            vec![b' '; MAX_SIGNATURE_ENTRY + 1],
            serde_json::to_vec(&SignatureEntry {
                algorithm: "rsa".into(),
                ..clone(&good)
            })
            .unwrap(),
            serde_json::to_vec(&SignatureEntry {
                signature: "!!".into(),
                ..clone(&good)
            })
            .unwrap(),
            serde_json::to_vec(&SignatureEntry {
                signature: "AAAA".into(),
                ..clone(&good)
            })
            .unwrap(),
        ];
        for case in cases {
            let err = trusted.verify(b"{}", Some(&case)).unwrap_err();
            assert!(matches!(err, BundleError::BadSignature(_)), "{err}");
        }
    }

    fn clone(e: &SignatureEntry) -> SignatureEntry {
        SignatureEntry {
            algorithm: e.algorithm.clone(),
            key_fingerprint: e.key_fingerprint.clone(),
            signature: e.signature.clone(),
        }
    }

    #[test]
    fn keygen_never_overwrites_and_keeps_the_private_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        generate_key_pair(&private, &public).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(&public).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let before = std::fs::read(&private).unwrap();
        assert!(String::from_utf8_lossy(&before).starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));

        let err = generate_key_pair(&private, &public).unwrap_err();
        assert!(err.to_string().contains("never overwrites"), "{err}");
        assert_eq!(std::fs::read(&private).unwrap(), before);

        // Only the public file left over: still refused, nothing written.
        let lone = dir.path().join("lone.key");
        let err = generate_key_pair(&lone, &public).unwrap_err();
        assert!(err.to_string().contains("k.pub"), "{err}");
        assert!(!lone.exists());
    }

    #[test]
    fn refuses_a_private_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        generate_key_pair(&private, &public).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = BundleSigner::from_file(&private).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn key_files_of_the_wrong_kind_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        generate_key_pair(&private, &public).unwrap();
        let err = TrustedKey::from_file(&private).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("k.key") && text.contains("private key"),
            "{text}"
        );
        let err = BundleSigner::from_file(&public).err().unwrap();
        assert!(err.to_string().contains("k.pub"), "{err}");
        let err = TrustedKey::parse("hello").unwrap_err();
        assert!(matches!(err, BundleError::Key { .. }), "{err}");
    }

    /// Made with `openssl genpkey -algorithm ed25519` (OpenSSL 3.0), its
    /// `openssl pkey -pubout`, and `openssl pkeyutl -sign -rawin` of "hello".
    const OPENSSL_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHdz91GijS6n4SKYvSiY9sQEn5Ye7wV2AVLjZtCKnO2p
-----END PRIVATE KEY-----
";
    const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAMKQ4D+AgjQpwRfgyf+bILf4Ej5RXnWZI+eDIFn8HRqI=
-----END PUBLIC KEY-----
";
    const OPENSSL_SIGNATURE: &str =
        "IQS5oBXPjIRPKWy/z4t7i/geS+O/NWZPnUO8xeAb2OJuGo1a6yf681+Ho2df0AKNFN4dsg3GntikKN+UhyRRAQ==";

    #[test]
    fn reads_openssl_keys_and_signs_as_openssl_does() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("o.key");
        write_new(&private, OPENSSL_PRIVATE.as_bytes(), 0o600).unwrap();
        let signer = BundleSigner::from_file(&private).unwrap();
        let trusted = TrustedKey::parse(OPENSSL_PUBLIC).unwrap();
        assert_eq!(signer.fingerprint(), trusted.fingerprint());
        assert_eq!(trusted.to_pem(), OPENSSL_PUBLIC);
        // ed25519 is deterministic: the same bytes as openssl's.
        let entry: SignatureEntry = serde_json::from_slice(&signer.sign(b"hello")).unwrap();
        assert_eq!(entry.signature, OPENSSL_SIGNATURE);
        trusted
            .verify(b"hello", Some(&signer.sign(b"hello")))
            .unwrap();
    }

    #[test]
    fn the_public_key_round_trips_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let (signer, trusted) = pair(dir.path());
        let again = TrustedKey::parse(&signer.public_key().to_pem()).unwrap();
        assert_eq!(again.fingerprint(), trusted.fingerprint());
        assert_eq!(
            again.to_pem(),
            std::fs::read_to_string(dir.path().join("k.pub")).unwrap()
        );
    }
}
