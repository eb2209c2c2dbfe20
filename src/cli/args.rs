//! The `ferry` command line: its commands and flags (each flag also an
//! environment variable), and how `serve`'s flags sit on top of the config.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{CacheConfig, Config, ConfigError};

/// A pull-through caching container registry.
#[derive(Parser)]
#[command(name = "ferry", version, about, args_conflicts_with_subcommands = true)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Option<Command>,
    /// `ferry` alone serves, with `ferry serve`'s flags.
    #[command(flatten)]
    pub(super) serve: ServeArgs,
}

#[derive(Subcommand)]
pub(super) enum Command {
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
    /// Fill a cache of a running ferry from a list of image references
    /// before anyone pulls them; shows progress, names each failure.
    Prefetch {
        #[command(flatten)]
        args: PrefetchArgs,
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
    /// Keep a cache, a repository or a tag out of quota eviction (refused
    /// when what is pinned would exceed a max_size).
    Pin {
        #[command(subcommand)]
        target: PinTargetArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Remove a pin made with `ferry pin`.
    Unpin {
        #[command(subcommand)]
        target: PinTargetArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write a key pair that signs bundles: NAME.key (private, PKCS#8 PEM,
    /// mode 0600) and NAME.pub (public, SPKI PEM); never overwrites.
    Keygen(KeygenArgs),
    /// Write a bundle (an OCI image layout in a tar) of what a ferry holds,
    /// to carry across an air gap: from a running ferry (--url) or a
    /// stopped one's data directory (--data-dir).
    Export(Box<ExportArgs>),
    /// Import a bundle (`ferry export`), its split parts, or a plain OCI
    /// layout into a running ferry (--url) or a stopped one (--data-dir).
    Import(ImportArgs),
    /// Print what a ferry holds (blobs and tags), for `ferry export
    /// --have` to leave out of a differential bundle.
    Inventory(InventoryArgs),
}

/// A running ferry (`--url`) or a stopped one's data directory.
#[derive(clap::Args)]
pub(super) struct TargetArgs {
    /// A running ferry's address: the work goes through its API.
    #[arg(long, env = "FERRY_URL")]
    pub(super) url: Option<String>,
    /// Without --url: the data directory of a stopped ferry to work on.
    /// With --url: where that ferry saved its generated admin password.
    #[arg(long, env = "FERRY_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// That ferry's configuration file (its caches, data_dir, address and
    /// admin_password).
    #[arg(long, env = "FERRY_CONFIG")]
    pub(super) config: Option<PathBuf>,
}

/// What `ferry import` reads and where it places it.
#[derive(clap::Args)]
pub(super) struct ImportArgs {
    /// One bundle (plain or zstd tar), the parts of a split one in any
    /// order, or an OCI layout directory (`skopeo copy ... oci:DIR:TAG`).
    #[arg(required = true)]
    pub(super) files: Vec<PathBuf>,
    /// Import references under base path FROM under TO instead (repeatable).
    #[arg(long, value_name = "FROM=TO")]
    pub(super) map: Vec<String>,
    /// `<base_path>/<repository>` for a plain OCI layout's bare tags.
    #[arg(long, value_name = "BASE_PATH/REPOSITORY")]
    pub(super) to: Option<String>,
    /// Pin every imported tag (refused pins are reported; exit status 1).
    #[arg(long)]
    pub(super) pin: bool,
    /// Refuse a bundle not signed by this public key (`ferry keygen`).
    #[arg(long, value_name = "PUBFILE")]
    pub(super) trusted_key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub(super) json: bool,
    #[command(flatten)]
    pub(super) target: TargetArgs,
}

/// Where `ferry inventory` writes.
#[derive(clap::Args)]
pub(super) struct InventoryArgs {
    /// Write the inventory to FILE [default: standard output].
    #[arg(long, value_name = "FILE")]
    pub(super) output: Option<PathBuf>,
    #[command(flatten)]
    pub(super) target: TargetArgs,
}

#[derive(Subcommand, Clone)]
pub(super) enum PinTargetArg {
    /// A whole cache, by the base path of its distribution.
    Cache { base_path: String },
    /// A repository, e.g. docker-cache/library/busybox.
    Repository { name: String },
    /// One tag, e.g. docker-cache/library/busybox:1.36.
    Tag { reference: String },
}

/// What `ferry prefetch` fetches.
#[derive(clap::Args)]
pub(super) struct PrefetchArgs {
    /// The list: one reference a line, relative to the distribution
    /// (`repository:tag`, `repository@sha256:...`, tag wildcards such as
    /// `repository:v1.*`); `#` starts a comment.
    #[arg(long)]
    pub(super) file: PathBuf,
    /// Base path of the distribution to fill [default: the only one].
    #[arg(long)]
    pub(super) distribution: Option<String>,
    /// Platforms of multi-platform images: `all`, or a comma-separated list
    /// such as `linux/amd64,linux/arm64` [default: this machine's].
    #[arg(long)]
    pub(super) platform: Option<String>,
    /// Also fetch each image's referrers (signatures, SBOMs, attestations)
    /// and their blobs, so they verify with the upstream gone.
    #[arg(long)]
    pub(super) referrers: bool,
}

/// Where `ferry keygen` writes the key pair.
#[derive(clap::Args)]
pub(super) struct KeygenArgs {
    /// Path and name of the pair, without suffix: NAME.key and NAME.pub.
    #[arg(long, default_value = "ferry-bundle")]
    pub(super) output: PathBuf,
}

/// `ferry export`'s flags.
#[derive(clap::Args)]
pub(super) struct ExportArgs {
    /// The bundle to write (with --split: FILE.part001, ... and FILE.sha256).
    #[arg(long, value_name = "FILE")]
    pub(super) output: PathBuf,
    /// A running ferry's address [default: http://<listen address of the
    /// config>].
    #[arg(long, env = "FERRY_URL")]
    pub(super) url: Option<String>,
    /// A stopped ferry's data directory: export from it directly (its lock
    /// is taken). With --url: where that ferry saved its admin password.
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
    /// That ferry's configuration file (address, admin_password, data_dir).
    #[arg(long, env = "FERRY_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Caches by base path (wildcards `*`, `?`); repeatable.
    #[arg(long = "cache", value_name = "BASE_PATH")]
    pub(super) caches: Vec<String>,
    /// Repositories by local name, e.g. `docker-cache/library/*`; repeatable.
    #[arg(long = "repository", value_name = "NAME")]
    pub(super) repositories: Vec<String>,
    /// Tags (wildcards); repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub(super) tags: Vec<String>,
    /// Only pinned tags.
    #[arg(long)]
    pub(super) pinned: bool,
    /// Only tags pulled since a date (`2026-12-01`, RFC 3339) or for a
    /// duration (`7d`, `12h`); a tag never pulled counts from when stored.
    #[arg(long, value_name = "DATE|DURATION")]
    pub(super) since: Option<String>,
    /// Platforms of multi-platform images: `all`, or a comma-separated list
    /// such as `linux/amd64,linux/arm64` [default: every platform stored].
    #[arg(long)]
    pub(super) platform: Option<String>,
    /// Also the referrers (signatures, SBOMs) stored for what is exported.
    #[arg(long)]
    pub(super) referrers: bool,
    /// The receiver's `ferry inventory`: leave out the blobs it holds.
    #[arg(long, value_name = "INVENTORY.json")]
    pub(super) have: Option<PathBuf>,
    /// zstd-compress the bundle.
    #[arg(long)]
    pub(super) zstd: bool,
    /// Write parts of at most SIZE (`4GiB`, `700MB`) and a checksum file.
    #[arg(long, value_name = "SIZE")]
    pub(super) split: Option<String>,
    /// Sign the bundle's manifest with this private key (`ferry keygen`).
    #[arg(long, value_name = "KEYFILE")]
    pub(super) sign: Option<PathBuf>,
}

/// Where a maintenance command finds the data directory.
#[derive(clap::Args)]
pub(super) struct DataArgs {
    /// Configuration file whose `data_dir` to use.
    #[arg(long, env = "FERRY_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Data directory of the stopped ferry [default: `data_dir` of the
    /// config, else ./ferry-data]. It must exist and hold ferry's data.
    #[arg(long, env = "FERRY_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
}

/// How the management commands reach a running ferry.
#[derive(clap::Args)]
pub(super) struct ApiArgs {
    /// ferry's address [default: http://<listen address of the config>].
    #[arg(long, env = "FERRY_URL", global = true)]
    pub(super) url: Option<String>,
    /// That ferry's configuration file (for its address and admin_password).
    #[arg(long, env = "FERRY_CONFIG", global = true)]
    pub(super) config: Option<PathBuf>,
    /// That ferry's data directory, where a generated admin password is
    /// saved [default: `data_dir` of the config, else ./ferry-data]. The
    /// password is taken from FERRY_ADMIN_PASSWORD first.
    #[arg(long, env = "FERRY_DATA_DIR", global = true)]
    pub(super) data_dir: Option<PathBuf>,
    /// `text` for people, `json` (the API's JSON) for scripts.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub(super) output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(super) enum RemoteAction {
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
pub(super) struct CredentialArgs {
    /// User name at the upstream registry.
    #[arg(long)]
    pub(super) username: Option<String>,
    /// Read the upstream password from FILE (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password_stdin")]
    pub(super) password_file: Option<PathBuf>,
    /// Read the upstream password from standard input (on a terminal:
    /// prompted for, not echoed).
    #[arg(long)]
    pub(super) password_stdin: bool,
}

#[derive(Subcommand)]
pub(super) enum DistributionAction {
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
pub(super) enum ConfigAction {
    /// Exit 0 and print the effective settings (as TOML, secrets redacted)
    /// if FILE is valid, else explain and exit 2.
    Check {
        /// The config file (TOML) to check.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub(super) enum RepositoryAction {
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
pub(super) struct ServeArgs {
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
    pub(super) log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// File (or embedded default), then flags and environment on top.
    pub(super) fn config(&self) -> Result<Config, ConfigError> {
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
                .map(crate::domain::Secret);
        }
        config.validate()?;
        Ok(config)
    }
}
