//! The `ferry` command line: serving, the offline maintenance commands
//! (`gc`, `verify`, `config check`), and the management commands that call
//! a running ferry's API. `src/main.rs` only calls [`main`].

mod args;
mod client;
mod export;
mod import;
mod keygen;
mod manage;
mod offline;
mod prefetch;
mod serve;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{Config, ConfigError};
use args::{Cli, Command, ConfigAction, LogFormat};

/// Parses the command line and runs what it asks for; the process's exit
/// status.
pub fn main() -> ExitCode {
    // Whatever the umask ferry was started with (a shell's 022, a
    // container's 000): nothing it creates is for other users. The data
    // directory's own modes are also set explicitly (datadir::lock).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let (command, serve_args) = match cli.command {
        None => (None, cli.serve),
        Some(Command::Serve(args)) => (None, args),
        Some(other) => (Some(other), cli.serve),
    };
    let Some(command) = command else {
        init_logging(serve_args.log_format);
        return match serve_args.config() {
            Ok(config) => serve::serve(config),
            Err(e) => {
                eprintln!("ferry: {e}");
                ExitCode::from(2)
            }
        };
    };
    init_logging(LogFormat::Text);
    match command {
        // Served above.
        Command::Serve(_) => ExitCode::SUCCESS,
        Command::Config {
            action: ConfigAction::Check { file },
        } => config_check(&file),
        Command::Gc(args) => offline::gc(&args),
        Command::Verify(args) => offline::verify(&args),
        Command::Remote { action, api } => manage::run(&api, manage::Action::Remote(action)),
        Command::Distribution { action, api } => {
            manage::run(&api, manage::Action::Distribution(action))
        }
        Command::Prefetch { args, api } => manage::run(&api, manage::Action::Prefetch(args)),
        Command::Repository { action, api } => {
            manage::run(&api, manage::Action::Repository(action))
        }
        Command::Pin { target, api } => manage::run(&api, manage::Action::Pin(target, true)),
        Command::Unpin { target, api } => manage::run(&api, manage::Action::Pin(target, false)),
        Command::Import(args) => import::import(&args),
        Command::Inventory(args) => import::inventory(&args),
        Command::Keygen(args) => keygen::keygen(&args),
        Command::Export(args) => export::export(&args),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `ferry config check FILE`: the settings ferry would run with, in the
/// file's own TOML shape, defaults filled in and secrets redacted.
fn config_check(file: &Path) -> ExitCode {
    let printed = Config::from_file(file).and_then(|c| c.to_redacted_toml());
    match printed {
        Ok(text) => {
            println!(
                "# {}: valid. Effective settings (defaults filled in, secrets redacted):",
                file.display()
            );
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferry: {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// The config file's settings (or the embedded default's) with the data
/// directory of the command line on top.
fn config_with_data_dir(
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    let mut config = match config {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded_default(),
    };
    if let Some(dir) = data_dir {
        config.data_dir = dir.to_path_buf();
    }
    Ok(config)
}

/// Runs a command's work on a single-threaded runtime.
fn run_command(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("ferry: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
