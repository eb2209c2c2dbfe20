//! A throwaway certificate authority made with `openssl`, and server
//! certificates it signs for 127.0.0.1 and localhost, for HTTPS servers in
//! tests (an HTTPS upstream registry, ferry's own HTTPS listener).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::util::{http_client_builder, run_bounded};

pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM), what a client must trust.
    pub cert: PathBuf,
}

async fn openssl(args: &[&str], cwd: &Path) {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args(args).current_dir(cwd);
    run_bounded(cmd, Duration::from_secs(60))
        .await
        .expect_ok(&format!("openssl {}", args.join(" ")));
}

impl TestCa {
    /// A self-signed CA (EC P-256) named `name`, in its own temp dir.
    pub async fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let subject = format!("/CN={name}");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir.path(),
        )
        .await;
        let cert = dir.path().join("ca.crt");
        TestCa { dir, cert }
    }

    /// The CA certificate as PEM text.
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    /// A server certificate (subjectAltName IP:127.0.0.1 and DNS:localhost)
    /// signed by this CA: (certificate, key) PEM files in the CA's dir.
    pub async fn issue_server_cert(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
            dir,
        )
        .await;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "3",
                "-extfile",
                "server.ext",
            ],
            dir,
        )
        .await;
        (dir.join("server.crt"), dir.join("server.key"))
    }

    /// A directory for `podman --cert-dir` trusting this CA only.
    pub fn trust_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("trust");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&self.cert, dir.join("ca.crt")).unwrap();
        dir
    }

    /// A test HTTP client (like `util::http_client`) that trusts only this
    /// CA: for pushing to an HTTPS upstream with verification on.
    pub fn http_client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.cert).unwrap();
        http_client_builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .expect("build reqwest client")
    }
}
