//! `ferry gc` and `ferry verify`: maintenance on a stopped ferry's data
//! directory.

use std::process::ExitCode;

use super::args::DataArgs;
use super::{config_with_data_dir, run_command};
use crate::cache::Storage;
use crate::datadir;
use crate::server::ServeError;

/// Removes cached content no repository references, and leftover temp files.
pub(super) fn gc(args: &DataArgs) -> ExitCode {
    offline(args, |storage| async move {
        if storage.cluster().is_some() {
            let temp_files =
                crate::cache::blocking(move || storage.remove_leftover_temp_files()).await?;
            println!(
                "removed {temp_files} temp files; this data directory belongs to a cluster \
                 member, whose bucket the other members share: the running members' \
                 garbage collection removes what none of them references"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let report = storage
            .collect_garbage(std::time::Duration::ZERO, std::time::Duration::ZERO)
            .await?;
        println!(
            "removed {} objects ({} bytes) and {} temp files",
            report.removed, report.bytes, report.temp_files
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Re-hashes everything stored; exit status 1 when damage was found.
pub(super) fn verify(args: &DataArgs) -> ExitCode {
    offline(args, |storage| async move {
        let report = storage.verify().await?;
        println!(
            "checked {} objects ({} bytes); {} damaged",
            report.checked,
            report.bytes,
            report.damaged.len()
        );
        for digest in &report.damaged {
            println!("damaged and quarantined: {digest}");
        }
        Ok(if report.damaged.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Runs maintenance on a stopped ferry's data directory, which must exist
/// and hold ferry's data (nothing is created), holding its lock throughout.
pub(super) fn offline<F, Fut>(args: &DataArgs, work: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<Storage>) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, crate::cache::CacheError>>,
{
    let config = match config_with_data_dir(args.config.as_deref(), args.data_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let _lock = match datadir::lock(&config.data_dir, datadir::Missing::Refuse) {
        Ok(lock) => lock,
        Err(e) => {
            let hint = match e {
                datadir::DataDirError::InUse { .. } => {
                    " (stop it first; export, import and inventory can go through it with --url)"
                }
                _ => "",
            };
            eprintln!("ferry: {e}{hint}");
            return ExitCode::from(2);
        }
    };
    // A member of a cluster knows it is one: its collection must not remove
    // what the other members stored.
    let cluster = config
        .cluster_settings()
        .ok()
        .flatten()
        .map(|s| crate::cluster::Cluster::new(&s));
    let storage = match Storage::open_with_quota(&config.data_dir, None, &config.storage, cluster) {
        Ok(s) => s,
        Err(source) => {
            let path = config.data_dir.clone();
            eprintln!("ferry: {}", ServeError::Storage { path, source });
            return ExitCode::from(2);
        }
    };
    run_command(async move {
        work(storage).await.unwrap_or_else(|e| {
            eprintln!("ferry: {e}");
            ExitCode::FAILURE
        })
    })
}
