#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use ferry::cache::Storage;
use ferry::client::Client;
use ferry::config::{CacheConfig, Config, ConfigError};
use ferry::server::Ferry;

/// A pull-through caching container registry.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (the default when no command is given).
    Serve,
    /// Manage remotes (upstream registries) of a running ferry.
    Remote {
        #[command(subcommand)]
        action: RemoteAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Manage distributions (base paths served through a remote).
    Distribution {
        #[command(subcommand)]
        action: DistributionAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove cached content no repository references, and leftover temp
    /// files (ferry must be stopped; a running ferry does this hourly).
    Gc,
    /// Re-hash everything stored; quarantine what does not match its digest
    /// (exit status 1 when damage was found). Ferry must be stopped.
    Verify,
    /// Validate a config file and print the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// List or delete the local repositories pulls created.
    Repository {
        #[command(subcommand)]
        action: RepositoryAction,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(clap::Args)]
struct ApiArgs {
    /// ferry's address [default: http://<listen address of the config>].
    #[arg(long, env = "FERRY_URL", global = true)]
    url: Option<String>,
}

#[derive(Subcommand)]
enum RemoteAction {
    List,
    Create { name: String, upstream_url: String },
    Delete { name: String },
}

#[derive(Subcommand)]
enum DistributionAction {
    List,
    Create {
        name: String,
        #[arg(long)]
        base_path: String,
        /// Name of the remote to pull through.
        #[arg(long)]
        remote: String,
        #[arg(long)]
        private: bool,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Exit 0 and print the settings if FILE is valid, else explain and exit 2.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum RepositoryAction {
    List,
    Delete { name: String },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML). Without it and without --cache, ferry uses
    /// its embedded default: a cache `docker.io` of Docker Hub.
    #[arg(long, env = "FERRY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:24817].
    #[arg(long, env = "FERRY_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Where cached content and metadata live [default: ./ferry-data].
    #[arg(long, env = "FERRY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// A cache as BASE_PATH=UPSTREAM_URL; repeatable.
    #[arg(
        long = "cache",
        env = "FERRY_CACHE",
        value_delimiter = ',',
        global = true
    )]
    caches: Vec<String>,
    /// HTTPS address (with --tls-cert and --tls-key).
    #[arg(long, env = "FERRY_TLS_LISTEN", global = true)]
    tls_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) for the HTTPS listener.
    #[arg(long, env = "FERRY_TLS_CERT", global = true)]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for the HTTPS listener.
    #[arg(long, env = "FERRY_TLS_KEY", global = true)]
    tls_key: Option<PathBuf>,
    /// Seconds a tag is served from cache before ferry revalidates it upstream.
    #[arg(long, env = "FERRY_TAG_TTL_SECS", global = true)]
    tag_ttl_secs: Option<u64>,
    /// Log format.
    #[arg(
        long,
        env = "FERRY_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
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
    // directory's own modes are also set explicitly (Storage::open).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    init_logging(cli.serve.log_format);
    if let Some(Command::Config {
        action: ConfigAction::Check { file },
    }) = &cli.command
    {
        return match Config::from_file(file) {
            // Debug output redacts every secret.
            Ok(config) => {
                println!("{config:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferry: {}: {e}", file.display());
                ExitCode::from(2)
            }
        };
    }
    let config = match cli.serve.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        None | Some(Command::Serve) => serve(config),
        Some(Command::Gc) => offline(&config, |storage| async move {
            let report = storage.collect_garbage(std::time::Duration::ZERO).await?;
            println!(
                "removed {} objects ({} bytes) and {} temp files",
                report.removed, report.bytes, report.temp_files
            );
            Ok(ExitCode::SUCCESS)
        }),
        Some(Command::Verify) => offline(&config, |storage| async move {
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
        Some(command) => manage(command, &config),
    }
}

/// Runs maintenance on a stopped ferry's data directory.
fn offline<F, Fut>(config: &Config, work: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<Storage>) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, ferry::cache::CacheError>>,
{
    let storage = match Storage::open(&config.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "ferry: cannot open {}: {e}\n(is ferry running on this data directory? stop it first)",
                config.data_dir.display()
            );
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

/// Runs a management command against the API of a running ferry. The
/// password comes from FERRY_ADMIN_PASSWORD, the config, or the data dir.
fn manage(command: Command, config: &Config) -> ExitCode {
    let password = config
        .admin_password
        .as_ref()
        .map(|p| p.expose().to_string())
        .or_else(|| std::fs::read_to_string(config.data_dir.join("admin-password")).ok())
        .unwrap_or_default();
    let url = |api: &ApiArgs| {
        api.url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen))
    };
    run_command(async move {
        let result = async {
            let print = |lines: Vec<String>| lines.iter().for_each(|l| println!("{l}"));
            match command {
                Command::Serve | Command::Config { .. } | Command::Gc | Command::Verify => Ok(()),
                Command::Remote { action, api } => {
                    let c = Client::new(&url(&api), password.trim());
                    match action {
                        RemoteAction::List => c.remotes().await.map(print),
                        RemoteAction::Create { name, upstream_url } => c
                            .create_remote(&name, &upstream_url)
                            .await
                            .map(|href| println!("{href}")),
                        RemoteAction::Delete { name } => c.delete_remote(&name).await,
                    }
                }
                Command::Distribution { action, api } => {
                    let c = Client::new(&url(&api), password.trim());
                    match action {
                        DistributionAction::List => c.distributions().await.map(print),
                        DistributionAction::Create {
                            name,
                            base_path,
                            remote,
                            private,
                        } => {
                            c.create_distribution(&name, &base_path, &remote, private)
                                .await
                        }
                        DistributionAction::Delete { name } => c.delete_distribution(&name).await,
                    }
                }
                Command::Repository { action, api } => {
                    let c = Client::new(&url(&api), password.trim());
                    match action {
                        RepositoryAction::List => c.repositories().await.map(print),
                        RepositoryAction::Delete { name } => c.delete_repository(&name).await,
                    }
                }
            }
        }
        .await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferry: {e}");
                ExitCode::FAILURE
            }
        }
    })
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
