//! `ferry` / `ferry serve`: run the registry until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use crate::config::Config;
use crate::server::{Ferry, ServeError};

/// Threads for blocking work (file reads and writes, the metadata store).
/// tokio's default of 512 let 1,000 clients of stored blobs start 512
/// threads, each with its own stack and, up to glibc's limit of 8 per
/// core, its own malloc arena that keeps freed memory. The work is short
/// (one read of a chunk, one write of a batch, one metadata call: no
/// download holds a thread while it waits for the network), so a queue
/// before 64 threads costs little, and 64 still keep a slow disk busy.
const BLOCKING_THREADS: usize = 64;

pub(super) fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let ferry = match Ferry::start(&config).await {
            Ok(f) => f,
            // A data directory ferry may not use: exit 2, as gc and verify.
            Err(e @ ServeError::DataDir(_)) => {
                eprintln!("ferry: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("ferry: {e}");
                return ExitCode::FAILURE;
            }
        };
        match ferry.local_addr() {
            // One line on stdout, for scripts and tests that start ferry on port 0.
            Ok(addr) => println!("listening on {addr}"),
            Err(e) => {
                eprintln!("ferry: {e}");
                return ExitCode::FAILURE;
            }
        }
        if let Some(addr) = ferry.tls_addr() {
            println!("listening (TLS) on {addr}");
        }
        ferry.serve(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            tracing::info!("shutting down");
            return;
        }
    }
    let _ = ctrl_c.await;
}
