//! `ferry import FILE...` and `ferry inventory`: into (or out of) a running
//! ferry through its API (`--url`: the bundle is streamed as the request
//! body), or a stopped ferry's data directory (`--data-dir`, under its
//! lock). FILE... is one bundle, the parts of a split one in any order, or
//! an OCI layout directory (sent as a tar made on the fly).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use serde_json::Value;

use super::args::{DataArgs, ImportArgs, InventoryArgs, TargetArgs};
use super::client::{Client, ClientError};
use super::manage::{admin_password, unauthorized_message};
use crate::bundle::{check_parts, open_parts, TrustedKey, INDEX_JSON, OCI_LAYOUT};
use crate::cache::{ImportError, ImportOptions, Storage};

const IMPORT: &str = "/pulp/api/v3/bundles/import/";
const INVENTORY: &str = "/pulp/api/v3/bundles/inventory/";
/// Bytes read from a bundle file per chunk sent.
const CHUNK: usize = 256 * 1024;

pub(super) fn import(args: &ImportArgs) -> ExitCode {
    // Everything that can be checked before touching a ferry is.
    let input = match open_input(&args.files) {
        Ok(input) => input,
        Err(e) => return fail(e),
    };
    if let Err(e) = crate::manage::parse_map(&args.map) {
        return fail(format!("--map {e}"));
    }
    let key_text = match &args.trusted_key {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None => None,
    };
    match &args.target.url {
        Some(url) => running(&args.target, url, &args.files, |client| async move {
            let mut query = vec![];
            if !args.map.is_empty() {
                query.push(("map", args.map.join(",")));
            }
            if let Some(to) = &args.to {
                query.push(("to", to.clone()));
            }
            if args.pin {
                query.push(("pin", "true".to_string()));
            }
            if let Some(key) = &key_text {
                query.push(("trusted_key", key.trim().to_string()));
            }
            let report = client
                .upload(IMPORT, &query, "application/x-tar", chunks_of(input))
                .await?;
            Ok(print_report(&report, args.json))
        }),
        None => {
            let data = match data_args(&args.target) {
                Ok(data) => data,
                Err(e) => return fail(e),
            };
            let trusted_key = match key_text.as_deref().map(TrustedKey::parse).transpose() {
                Ok(key) => key,
                Err(e) => return fail(format!("--trusted-key: {e}")),
            };
            let configured = configured_base_paths(&args.target);
            let map = crate::manage::parse_map(&args.map).unwrap_or_default();
            let (to, pin, json) = (args.to.clone(), args.pin, args.json);
            let files = args.files.clone();
            super::offline::offline(&data, move |storage| async move {
                let mut served = configured;
                served.extend(stored_base_paths(&storage).await?);
                let options = ImportOptions {
                    map,
                    to,
                    pin,
                    trusted_key,
                    served,
                };
                match storage.import_bundle(input, options).await {
                    Ok(report) => {
                        let value = serde_json::to_value(&report).unwrap_or(Value::Null);
                        Ok(print_report(&value, json))
                    }
                    Err(ImportError::Bundle(e)) => {
                        eprintln!("ferry: {}", refused(e.to_string(), &files));
                        Ok(ExitCode::FAILURE)
                    }
                    Err(ImportError::Cache(e)) => Err(e),
                }
            })
        }
    }
}

pub(super) fn inventory(args: &InventoryArgs) -> ExitCode {
    let write = |inventory: &Value| -> ExitCode {
        let text = serde_json::to_string_pretty(inventory).unwrap_or_default() + "\n";
        match &args.output {
            Some(path) => match std::fs::write(path, text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("{}: {e}", path.display())),
            },
            None => {
                print!("{text}");
                ExitCode::SUCCESS
            }
        }
    };
    match &args.target.url {
        Some(url) => running(&args.target, url, &[], |client| async move {
            Ok(write(&client.get(INVENTORY).await?))
        }),
        None => {
            let data = match data_args(&args.target) {
                Ok(data) => data,
                Err(e) => return fail(e),
            };
            super::offline::offline(&data, |storage| async move {
                let inventory = storage.bundle_inventory().await?;
                Ok(write(
                    &serde_json::to_value(&inventory).unwrap_or(Value::Null),
                ))
            })
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("ferry: {message}");
    ExitCode::from(2)
}

/// Without `--url`, the stopped ferry's data directory is required: an
/// import never guesses which ferry it changes.
fn data_args(target: &TargetArgs) -> Result<DataArgs, String> {
    if target.data_dir.is_none() && target.config.is_none() {
        return Err(
            "give --url URL (a running ferry) or --data-dir DIR (a stopped ferry's data directory)"
                .into(),
        );
    }
    Ok(DataArgs {
        config: target.config.clone(),
        data_dir: target.data_dir.clone(),
    })
}

/// Calls a running ferry with the admin password found as the other
/// management commands find it.
fn running<F, Fut>(target: &TargetArgs, url: &str, files: &[PathBuf], work: F) -> ExitCode
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, ClientError>>,
{
    let config =
        match super::config_with_data_dir(target.config.as_deref(), target.data_dir.as_deref()) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
    let password = match admin_password(&config) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let client = Client::new(url, password.secret.clone());
    let base = client.base().to_string();
    super::run_command(async move {
        match work(client).await {
            Ok(code) => code,
            Err(e) if e.is_unauthorized() => {
                eprintln!("ferry: {}", unauthorized_message(&base, &password));
                ExitCode::FAILURE
            }
            Err(ClientError::Refused { body, .. }) => {
                eprintln!("ferry: {}", refused(refusal(&body), files));
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("ferry: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Why an import was refused. Of split parts, a damaged one shows first
/// as what the damage broke (a blob's digest, a tar header), its checksum
/// being known only at its end: the parts are checked again, so that the
/// message names the part to copy again.
fn refused(message: String, files: &[PathBuf]) -> String {
    let split = files.len() > 1 || files.first().is_some_and(|f| looks_like_part(f));
    match split.then(|| check_parts(files)) {
        Some(Err(e)) => format!("import refused: {e} ({message})"),
        _ => format!("import refused: {message}"),
    }
}

/// The message of an API refusal (`{"bundle": ["..."]}` or `{"detail": ...}`).
fn refusal(body: &str) -> String {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) else {
        return body.trim().to_string();
    };
    let messages: Vec<String> = fields
        .iter()
        .map(|(field, value)| {
            let text = match value {
                Value::Array(list) => list
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("; "),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match field.as_str() {
                "bundle" | "detail" => text,
                _ => format!("{field}: {text}"),
            }
        })
        .collect();
    messages.join("; ")
}

/// Prints an import's report; exit status 1 when a pin was refused.
fn print_report(report: &Value, json: bool) -> ExitCode {
    let list = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        for tag in list("imported") {
            println!("imported {tag}");
        }
        for tag in list("unchanged") {
            println!("unchanged {tag}");
        }
        for tag in list("pinned") {
            println!("pinned {tag}");
        }
        println!(
            "bundle {} from {}: {} tags imported, {} unchanged; {} blobs stored ({} bytes), {} already held",
            report["bundle"].as_str().unwrap_or(""),
            report["source"].as_str().unwrap_or(""),
            list("imported").len(),
            list("unchanged").len(),
            report["blobs_stored"],
            report["bytes_stored"],
            report["blobs_present"]
        );
    }
    let refused = list("pin_refused");
    for why in &refused {
        eprintln!("ferry: pin refused: {why}");
    }
    if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The bundle as one stream: a file, split parts reassembled (in any
/// order, each checked), or a layout directory tarred on the fly.
fn open_input(files: &[PathBuf]) -> Result<Box<dyn Read + Send>, String> {
    if let [dir] = files {
        if dir.is_dir() {
            return layout_as_tar(dir);
        }
        if !looks_like_part(dir) {
            let file = std::fs::File::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            return Ok(Box::new(file));
        }
    }
    match open_parts(files).map_err(|e| e.to_string())? {
        Some(parts) => Ok(Box::new(parts)),
        None => {
            let file = std::fs::File::open(&files[0])
                .map_err(|e| format!("{}: {e}", files[0].display()))?;
            Ok(Box::new(file))
        }
    }
}

/// `FILE.part001` or `FILE.sha256`: one of a split bundle's files.
fn looks_like_part(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".sha256")
        || name
            .rsplit_once(".part")
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// An OCI layout directory as a tar stream (written by a thread into a
/// pipe): `oci-layout`, `index.json` and `blobs/sha256/*`, nothing else.
fn layout_as_tar(dir: &Path) -> Result<Box<dyn Read + Send>, String> {
    for name in [OCI_LAYOUT, INDEX_JSON] {
        if !dir.join(name).is_file() {
            return Err(format!(
                "{} is not an OCI layout: it has no {name}",
                dir.display()
            ));
        }
    }
    let blobs_dir = dir.join("blobs").join("sha256");
    let blobs: Vec<PathBuf> = match std::fs::read_dir(&blobs_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => return Err(format!("{}: {e}", blobs_dir.display())),
    };
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut tar = tar::Builder::new(writer);
        let mut write = || -> std::io::Result<()> {
            tar.append_path_with_name(dir.join(OCI_LAYOUT), OCI_LAYOUT)?;
            tar.append_path_with_name(dir.join(INDEX_JSON), INDEX_JSON)?;
            for blob in &blobs {
                let name = blob.file_name().map(|n| n.to_string_lossy().into_owned());
                let name = format!("{}{}", crate::bundle::BLOBS_DIR, name.unwrap_or_default());
                tar.append_path_with_name(blob, name)?;
            }
            tar.finish()
        };
        // A failure ends the stream early: the import reports it truncated.
        if let Err(e) = write() {
            eprintln!("ferry: reading {}: {e}", dir.display());
        }
    });
    Ok(Box::new(reader))
}

/// A blocking reader as a stream of chunks (read on the blocking pool).
fn chunks_of(
    reader: Box<dyn Read + Send>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    if sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = sender.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// The base paths of the config's caches (a stopped ferry serves those).
fn configured_base_paths(target: &TargetArgs) -> Vec<String> {
    super::config_with_data_dir(target.config.as_deref(), target.data_dir.as_deref())
        .map(|c| c.caches.iter().map(|c| c.base_path.clone()).collect())
        .unwrap_or_default()
}

/// The base paths of the distributions created through the API.
async fn stored_base_paths(
    storage: &std::sync::Arc<Storage>,
) -> Result<Vec<String>, crate::cache::CacheError> {
    let distributions = storage.meta().distributions().await?;
    Ok(distributions.into_iter().map(|d| d.base_path).collect())
}
