#![forbid(unsafe_code)]

mod cli_manage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use ferry::cache::Storage;
use ferry::config::{CacheConfig, Config, ConfigError};
use ferry::datadir;
use ferry::server::{Ferry, ServeError};

/// A pull-through caching container registry.
#[derive(Parser)]
#[command(name = "ferry", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `ferry` alone serves, with `ferry serve`'s flags.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (the default when no command is given).
    Serve(ServeArgs),
    /// Remove cached content no repository references, and leftover temp
    /// files (ferry must be stopped; a running ferry does this hourly).
    Gc(DataArgs),
    /// Re-hash everything stored; quarantine what does not match its digest
    /// (exit status 1 when damage was found). Ferry must be stopped.
    Verify(DataArgs),
    /// Validate a config file and print the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage remotes (upstream registries) of a running ferry.
    Remote {
        #[command(subcommand)]
        action: RemoteAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Manage distributions (base paths served through a remote) of a
    /// running ferry.
    Distribution {
        #[command(subcommand)]
        action: DistributionAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List or delete the local repositories pulls created.
    Repository {
        #[command(subcommand)]
        action: RepositoryAction,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Where a maintenance command finds the data directory.
#[derive(clap::Args)]
struct DataArgs {
    /// Configuration file whose `data_dir` to use.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the stopped ferry [default: `data_dir` of the
    /// config, else ./ferry-data]. It must exist and hold ferry's data.
    #[arg(long, env = "FERRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// How the management commands reach a running ferry.
#[derive(clap::Args)]
struct ApiArgs {
    /// ferry's address [default: http://<listen address of the config>].
    #[arg(long, env = "FERRY_URL", global = true)]
    url: Option<String>,
    /// That ferry's configuration file (for its address and admin_password).
    #[arg(long, env = "FERRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// That ferry's data directory, where a generated admin password is
    /// saved [default: `data_dir` of the config, else ./ferry-data]. The
    /// password is taken from FERRY_ADMIN_PASSWORD first.
    #[arg(long, env = "FERRY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// `text` for people, `json` (the API's JSON) for scripts.
    #[arg(long, value_enum, default_value = "text", global = true)]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum RemoteAction {
    /// List the remotes: name, upstream URL, and whether the config file
    /// or the API made it.
    List,
    /// Create a remote: an upstream registry that distributions pull through.
    Create {
        /// The remote's name.
        name: String,
        /// The upstream registry's URL, e.g. https://registry-1.docker.io.
        #[arg(long)]
        upstream: String,
        #[command(flatten)]
        credentials: CredentialArgs,
    },
    /// Change a remote's upstream URL or credentials.
    Update {
        /// The remote's name.
        name: String,
        /// The upstream registry's new URL.
        #[arg(long)]
        upstream: Option<String>,
        #[command(flatten)]
        credentials: CredentialArgs,
    },
    /// Delete a remote (refused while a distribution uses it).
    Delete {
        /// The remote's name.
        name: String,
    },
}

/// Upstream credentials. The password is read from a file or standard
/// input, never taken from the command line, where `ps` would show it.
#[derive(clap::Args)]
struct CredentialArgs {
    /// User name at the upstream registry.
    #[arg(long)]
    username: Option<String>,
    /// Read the upstream password from FILE (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
    password_file: Option<PathBuf>,
    /// Read the upstream password from standard input (on a terminal:
    /// prompted for, not echoed).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum DistributionAction {
    /// List the distributions: name, base path, whether pulls need a login.
    List,
    /// Create a distribution: serve BASE_PATH through a remote.
    Create {
        /// The distribution's name.
        name: String,
        /// Path clients pull under: HOST:PORT/BASE_PATH/REPOSITORY:TAG.
        #[arg(long)]
        base_path: String,
        /// Name of the remote to pull through.
        #[arg(long)]
        remote: String,
        /// Pulls need the admin's credentials (`podman login`).
        #[arg(long)]
        private: bool,
    },
    /// Delete a distribution: its base path is no longer served.
    Delete {
        /// The distribution's name.
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Exit 0 and print the effective settings (as TOML, secrets redacted)
    /// if FILE is valid, else explain and exit 2.
    Check {
        /// The config file (TOML) to check.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum RepositoryAction {
    /// List the repositories: name and latest version.
    List,
    /// Delete a repository with its tags (content stays until gc).
    Delete {
        /// The repository's name, e.g. docker-cache/library/busybox.
        name: String,
    },
}

/// `ferry serve`'s flags (each also an environment variable).
#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML). Without it and without --cache, ferry uses
    /// its embedded default: a cache `docker.io` of Docker Hub.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:24817].
    #[arg(long, env = "FERRY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where cached content and metadata live [default: ./ferry-data].
    #[arg(long, env = "FERRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A cache as BASE_PATH=UPSTREAM_URL; repeatable.
    #[arg(long = "cache", env = "FERRY_CACHE", value_delimiter = ',')]
    caches: Vec<String>,
    /// HTTPS address (with --tls-cert and --tls-key).
    #[arg(long, env = "FERRY_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) for the HTTPS listener.
    #[arg(long, env = "FERRY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for the HTTPS listener.
    #[arg(long, env = "FERRY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Seconds a tag is served from cache before ferry revalidates it upstream.
    #[arg(long, env = "FERRY_TAG_TTL_SECS")]
    tag_ttl_secs: Option<u64>,
    /// Log format.
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// File (or embedded default), then flags and environment on top.
    fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match (&self.config, self.caches.is_empty()) {
            (Some(path), _) => Config::from_file(path)?,
            (None, true) => Config::embedded_default(),
            (None, false) => Config {
                caches: Vec::new(),
                ..Config::embedded_default()
            },
        };
        for flag in &self.caches {
            config.caches.push(CacheConfig::from_flag(flag)?);
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(addr) = self.tls_listen {
            config.tls_listen = Some(addr);
        }
        if let Some(cert) = &self.tls_cert {
            config.tls_cert = Some(cert.clone());
        }
        if let Some(key) = &self.tls_key {
            config.tls_key = Some(key.clone());
        }
        if let Some(ttl) = self.tag_ttl_secs {
            config.tag_ttl_secs = ttl;
        }
        if config.admin_password.is_none() {
            config.admin_password = std::env::var("FERRY_ADMIN_PASSWORD")
                .ok()
                .map(ferry::domain::Secret);
        }
        config.validate()?;
        Ok(config)
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

fn main() -> ExitCode {
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
            Ok(config) => serve(config),
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
        Command::Gc(args) => offline(&args, |storage| async move {
            let report = storage
                .collect_garbage(std::time::Duration::ZERO, std::time::Duration::ZERO)
                .await?;
            println!(
                "removed {} objects ({} bytes) and {} temp files",
                report.removed, report.bytes, report.temp_files
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Verify(args) => offline(&args, |storage| async move {
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
        }),
        Command::Remote { action, api } => {
            cli_manage::run(&api, cli_manage::Action::Remote(action))
        }
        Command::Distribution { action, api } => {
            cli_manage::run(&api, cli_manage::Action::Distribution(action))
        }
        Command::Repository { action, api } => {
            cli_manage::run(&api, cli_manage::Action::Repository(action))
        }
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

/// Runs maintenance on a stopped ferry's data directory, which must exist
/// and hold ferry's data (nothing is created), holding its lock throughout.
fn offline<F, Fut>(args: &DataArgs, work: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<Storage>) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, ferry::cache::CacheError>>,
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
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let storage = match Storage::open(&config.data_dir) {
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

/// Runs a command's work on a single-threaded runtime.
pub(crate) fn run_command(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
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

fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
