//! `ferry keygen`: a key pair for signing bundles.

use std::path::PathBuf;
use std::process::ExitCode;

use super::args::KeygenArgs;
use crate::bundle::{generate_key_pair, TrustedKey};

/// Writes NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (SPKI PEM), never
/// over existing files, and prints the public key's fingerprint.
pub(super) fn keygen(args: &KeygenArgs) -> ExitCode {
    let with_suffix = |suffix: &str| {
        let mut name = args.output.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (private, public) = (with_suffix(".key"), with_suffix(".pub"));
    let written =
        generate_key_pair(&private, &public).and_then(|()| TrustedKey::from_file(&public));
    match written {
        Ok(key) => {
            println!(
                "private key: {} (signs bundles: keep it secret)",
                private.display()
            );
            println!(
                "public key:  {} (give it to those who import the bundles)",
                public.display()
            );
            println!("fingerprint: {}", key.fingerprint());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferry: {e}");
            ExitCode::from(1)
        }
    }
}
