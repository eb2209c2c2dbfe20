//! The HTTPS listener: rustls with the certificate and key from the config,
//! reloaded on SIGHUP without dropping connections (each new handshake uses
//! the current certificate; established ones keep theirs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How long in-flight responses may take to finish at shutdown.
pub(crate) const DRAIN: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("TLS certificate {cert} / key {key}: {reason}")]
pub(crate) struct TlsError {
    cert: PathBuf,
    key: PathBuf,
    reason: String,
}

/// The certificate in use, swappable at run time.
pub(crate) struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Certificates {
    /// Reads and checks the files (blocking).
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Certificates, TlsError> {
        Ok(Certificates {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(server_config(cert, key)?),
        })
    }

    /// Re-reads the files; on failure the old certificate stays in use.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let fail = |reason: String| TlsError {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| fail(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
