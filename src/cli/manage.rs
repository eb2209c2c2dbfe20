//! The management commands of the `ferry` binary (`ferry remote|
//! distribution|repository ...`): find the admin password, call a running
//! ferry's API (through `cli::client`), and print one line per change, or
//! the API's JSON with `--output json`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::args::{
    ApiArgs, CredentialArgs, DistributionAction, Output, PinTargetArg, PrefetchArgs, RemoteAction,
    RepositoryAction,
};
use super::client::{
    Client, ClientError, RemoteFields, DISTRIBUTIONS, REMOTES, REPOSITORIES, TAGS,
};
use crate::config::Config;
use crate::datadir;
use crate::domain::Secret;

pub(super) enum Action {
    Remote(RemoteAction),
    Distribution(DistributionAction),
    Repository(RepositoryAction),
    Prefetch(PrefetchArgs),
    /// Pin (true) or unpin (false).
    Pin(PinTargetArg, bool),
}

/// The admin password and where it came from: a 401 names both, so the
/// user knows what to fix.
pub(super) struct AdminPassword {
    pub(super) secret: Secret,
    origin: String,
    file: PathBuf,
}

const PASSWORD_ENV: &str = "FERRY_ADMIN_PASSWORD";

/// FERRY_ADMIN_PASSWORD, else `admin_password` of the config, else the
/// password ferry generated and saved in its data directory.
pub(super) fn admin_password(config: &Config) -> Result<AdminPassword, String> {
    let file = config.data_dir.join("admin-password");
    let found = |secret: String, origin: String| AdminPassword {
        secret: Secret(secret),
        origin,
        file: file.clone(),
    };
    if let Some(value) = std::env::var(PASSWORD_ENV).ok().filter(|v| !v.is_empty()) {
        return Ok(found(value, PASSWORD_ENV.to_string()));
    }
    if let Some(secret) = &config.admin_password {
        return Ok(found(
            secret.expose().to_string(),
            "admin_password of the config".into(),
        ));
    }
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(found(text.trim().to_string(), file.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(found(
            String::new(),
            format!(
                "nowhere ({PASSWORD_ENV} is unset and {} does not exist)",
                file.display()
            ),
        )),
        Err(e) => Err(format!(
            "cannot read the admin password in {}: {e}; run as the user ferry runs as, \
             or set {PASSWORD_ENV}",
            file.display()
        )),
    }
}

pub(super) fn unauthorized_message(url: &str, password: &AdminPassword) -> String {
    format!(
        "ferry at {url} refused the admin password (401 Unauthorized). The password came \
         from {}; the CLI looks in {PASSWORD_ENV}, then admin_password of --config, then \
         DATA_DIR/admin-password (here {}, --data-dir or FERRY_DATA_DIR). Set \
         {PASSWORD_ENV}, or pass --data-dir with that ferry's data directory.",
        password.origin,
        password.file.display()
    )
}

/// Reads an upstream password from a file (its first line) or standard
/// input (prompted for without echo on a terminal).
fn upstream_password(args: &CredentialArgs) -> Result<Option<Secret>, String> {
    let line = if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        first_line(&text)
    } else if args.password_stdin {
        read_stdin_password().map_err(|e| format!("cannot read the password: {e}"))?
    } else {
        return Ok(None);
    };
    if line.is_empty() {
        return Err("the upstream password is empty".into());
    }
    Ok(Some(Secret(line)))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

fn read_stdin_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(first_line(&line));
    }
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    eprint!("Upstream password: ");
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Echo back on whatever the read did.
    let restored = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read?;
    restored?;
    Ok(first_line(&line))
}

fn remote_fields(
    upstream: Option<String>,
    credentials: &CredentialArgs,
) -> Result<RemoteFields, String> {
    Ok(RemoteFields {
        upstream,
        username: credentials.username.clone(),
        password: upstream_password(credentials)?,
    })
}

/// Runs one management command; exit status 2 when it cannot start (bad
/// data directory, unreadable password file), 1 when ferry refuses it.
pub(super) fn run(api: &ApiArgs, action: Action) -> ExitCode {
    let fail = |message: String| {
        eprintln!("ferry: {message}");
        ExitCode::from(2)
    };
    if let Some(dir) = &api.data_dir {
        if let Err(e) = datadir::holds_ferry_data(dir) {
            return fail(e.to_string());
        }
    }
    let config = match super::config_with_data_dir(api.config.as_deref(), api.data_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let password = match admin_password(&config) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    // Credentials are read before any request: a bad file changes nothing.
    let fields = match &action {
        Action::Remote(RemoteAction::Create {
            upstream,
            credentials,
            ..
        }) => remote_fields(Some(upstream.clone()), credentials),
        Action::Remote(RemoteAction::Update {
            upstream,
            credentials,
            ..
        }) => remote_fields(upstream.clone(), credentials),
        _ => Ok(RemoteFields::default()),
    };
    let fields = match fields {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let url = api
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let client = Client::new(&url, password.secret.clone());
    let print = Printer(api.output);
    super::run_command(async move {
        match execute(&client, action, fields, print).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.is_unauthorized() => {
                eprintln!("ferry: {}", unauthorized_message(client.base(), &password));
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("ferry: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn execute(
    client: &Client,
    action: Action,
    fields: RemoteFields,
    print: Printer,
) -> Result<(), ClientError> {
    match action {
        Action::Prefetch(args) => return super::prefetch::execute(client, &args, print.0).await,
        Action::Remote(RemoteAction::List) => {
            let items = client.list(REMOTES).await?;
            print.list(&items, &["name", "url", "ferry_source"]);
        }
        Action::Remote(RemoteAction::Create { name, .. }) => {
            let created = client.create_remote(&name, &fields).await?;
            print.changed("created remote", &name, &created);
        }
        Action::Remote(RemoteAction::Update { name, .. }) => {
            let updated = client.update_remote(&name, &fields).await?;
            print.changed("updated remote", &name, &updated);
        }
        Action::Remote(RemoteAction::Delete { name }) => {
            let (href, answer) = client.delete(REMOTES, "remote", &name).await?;
            print.deleted("remote", &name, &href, &answer);
        }
        Action::Distribution(DistributionAction::List) => {
            let items = client.list(DISTRIBUTIONS).await?;
            print.list(&items, &["name", "base_path", "private"]);
        }
        Action::Distribution(DistributionAction::Create {
            name,
            base_path,
            remote,
            private,
        }) => {
            let created = client
                .create_distribution(&name, &base_path, &remote, private)
                .await?;
            print.changed("created distribution", &name, &created);
        }
        Action::Distribution(DistributionAction::Delete { name }) => {
            let (href, answer) = client.delete(DISTRIBUTIONS, "distribution", &name).await?;
            print.deleted("distribution", &name, &href, &answer);
        }
        Action::Repository(RepositoryAction::List) => {
            let items = client.list(REPOSITORIES).await?;
            print.list(&items, &["name", "latest_version_href"]);
        }
        Action::Repository(RepositoryAction::Delete { name }) => {
            let (href, answer) = client.delete(REPOSITORIES, "repository", &name).await?;
            print.deleted("repository", &name, &href, &answer);
        }
        Action::Pin(target, pin) => {
            let href = pin_href(client, &target).await?;
            let action = if pin { "pin" } else { "unpin" };
            let answer = client.post_action(&format!("{href}{action}/")).await?;
            print.pinned(&answer);
        }
    }
    Ok(())
}

/// The href of what a pin names: a distribution (by base path), a
/// repository, or a tag (`<repository>:<tag>`).
async fn pin_href(client: &Client, target: &PinTargetArg) -> Result<String, ClientError> {
    match target {
        PinTargetArg::Cache { base_path } => client
            .list(DISTRIBUTIONS)
            .await?
            .iter()
            .find(|d| d["base_path"] == base_path.trim_matches('/'))
            .and_then(|d| d["pulp_href"].as_str().map(str::to_string))
            .ok_or_else(|| ClientError::NotFound {
                kind: "distribution with base path",
                name: base_path.clone(),
            }),
        PinTargetArg::Repository { name } => client.href_of(REPOSITORIES, "repository", name).await,
        PinTargetArg::Tag { reference } => {
            let not_found = || ClientError::NotFound {
                kind: "tag (expected REPOSITORY:TAG)",
                name: reference.clone(),
            };
            let (repo, tag) = reference.rsplit_once(':').ok_or_else(not_found)?;
            let repo_href = client.href_of(REPOSITORIES, "repository", repo).await?;
            let id = repo_href
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .ok_or_else(not_found)?;
            Ok(format!("{TAGS}{id}:{tag}/"))
        }
    }
}

/// Text for people (one line per item or change), or the API's JSON.
#[derive(Clone, Copy)]
struct Printer(Output);

impl Printer {
    fn json(value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }

    /// Lists print `fields` tab-separated (`private=true` for booleans).
    fn list(self, items: &[Value], fields: &[&str]) {
        if self.0 == Output::Json {
            return Printer::json(&Value::Array(items.to_vec()));
        }
        for item in items {
            let cells: Vec<String> = fields
                .iter()
                .map(|f| match &item[*f] {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => format!("{f}={b}"),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect();
            println!("{}", cells.join("\t"));
        }
    }

    fn changed(self, what: &str, name: &str, item: &Value) {
        match self.0 {
            Output::Json => Printer::json(item),
            Output::Text => println!(
                "{what} {name} ({})",
                item["pulp_href"].as_str().unwrap_or("?")
            ),
        }
    }

    fn pinned(self, answer: &Value) {
        match self.0 {
            Output::Json => Printer::json(answer),
            Output::Text => println!(
                "{} {} {} ({} bytes pinned in its cache, {} in all)",
                if answer["pinned"] == true {
                    "pinned"
                } else {
                    "unpinned"
                },
                answer["kind"].as_str().unwrap_or("?"),
                answer["name"].as_str().unwrap_or("?"),
                answer["cache_pinned_bytes"],
                answer["total_pinned_bytes"],
            ),
        }
    }

    fn deleted(self, kind: &str, name: &str, href: &str, answer: &Value) {
        match self.0 {
            Output::Json => Printer::json(answer),
            Output::Text => println!("deleted {kind} {name} ({href})"),
        }
    }
}
