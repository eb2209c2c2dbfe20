//! `ferry keygen`: a key pair openssl reads (PKCS#8 and SPKI PEM), the
//! private key its owner's only, the fingerprint openssl computes too, and
//! never an existing key overwritten.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::*;

fn run(program: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_writes_a_pair_openssl_reads_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = ferry_bin();
    let ferry = ferry.to_str().unwrap();
    let out = run(ferry, &["keygen", "--output", "site"], dir.path());
    assert!(out.status.success(), "keygen: {}", text(&out.stderr));
    let (private, public) = (dir.path().join("site.key"), dir.path().join("site.pub"));
    assert_eq!(mode(&private), 0o600, "the private key is its owner's only");
    assert_eq!(mode(&public), 0o644);

    // openssl reads both, and they are one pair.
    let derived = run(
        "openssl",
        &["pkey", "-in", "site.key", "-pubout"],
        dir.path(),
    );
    assert!(
        derived.status.success(),
        "openssl: {}",
        text(&derived.stderr)
    );
    assert_eq!(
        text(&derived.stdout),
        std::fs::read_to_string(&public).unwrap()
    );
    let der = run(
        "sh",
        &[
            "-c",
            "openssl pkey -pubin -in site.pub -outform DER | sha256sum",
        ],
        dir.path(),
    );
    let openssl_fingerprint = text(&der.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let printed = text(&out.stdout);
    assert!(
        printed.contains(&format!("fingerprint: sha256:{openssl_fingerprint}")),
        "{printed}"
    );

    // Again: refused, the key as it was.
    let before = std::fs::read(&private).unwrap();
    let again = run(ferry, &["keygen", "--output", "site"], dir.path());
    assert_eq!(again.status.code(), Some(1));
    let stderr = text(&again.stderr);
    assert!(
        stderr.starts_with("ferry: ") && stderr.contains("never overwrites"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&private).unwrap(), before);

    // The default name.
    let out = run(ferry, &["keygen"], dir.path());
    assert!(out.status.success(), "keygen: {}", text(&out.stderr));
    assert!(dir.path().join("ferry-bundle.key").is_file());
    assert!(dir.path().join("ferry-bundle.pub").is_file());
}
