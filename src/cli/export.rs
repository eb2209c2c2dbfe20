//! `ferry export --output FILE`: a bundle of what a ferry holds, from a
//! running ferry through its API (`--url`: `bundles/plan/`, then
//! `bundles/export/` with the manifest planned, streamed to the file) or
//! from a stopped ferry's data directory (`--data-dir`, under its lock).
//! A signature is made here, over the exact manifest bytes: the private
//! key never leaves this machine. The bundle is written to a temp file
//! beside FILE and renamed at the end, so FILE is whole or absent; split
//! parts are whole once their checksum file, written last, is there.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::args::{DataArgs, ExportArgs};
use super::client::{Client, ClientError};
use super::manage::{admin_password, unauthorized_message};
use crate::bundle::{
    BundleManifest, BundleSigner, BundleSource, Inventory, Selection, SplitWriter, INVENTORY_FORMAT,
};
use crate::cache::bundle::BundleToWrite;
use crate::cache::Storage;

use crate::domain::Platforms;

const PLAN: &str = "/pulp/api/v3/bundles/plan/";
const EXPORT: &str = "/pulp/api/v3/bundles/export/";
/// The largest inventory file read for `--have`.
const MAX_INVENTORY_BYTES: u64 = 256 * 1024 * 1024;

/// Everything read from the command line and local files before any work:
/// a bad flag or file changes nothing.
struct Prepared {
    selection: Selection,
    signer: Option<BundleSigner>,
    target: Target,
}

pub(super) fn export(args: &ExportArgs) -> ExitCode {
    let prepared = match prepare(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    match (&args.url, &args.data_dir) {
        (None, Some(dir)) => offline(args, dir, prepared),
        _ => online(args, prepared),
    }
}

fn prepare(args: &ExportArgs) -> Result<Prepared, String> {
    let platforms = args.platform.as_deref().map(|p| {
        if p.trim().eq_ignore_ascii_case("all") {
            Platforms::All
        } else {
            Platforms::Listed(p.split(',').map(|s| s.trim().to_string()).collect())
        }
    });
    let have = match &args.have {
        Some(path) => read_inventory(path)?.blobs,
        None => Vec::new(),
    };
    let selection = Selection {
        caches: args.caches.clone(),
        repositories: args.repositories.clone(),
        tags: args.tags.clone(),
        pinned: args.pinned,
        pulled_since: args.since.as_deref().map(since).transpose()?,
        platforms,
        referrers: args.referrers,
        have,
        zstd: args.zstd,
    };
    let signer = args
        .sign
        .as_deref()
        .map(BundleSigner::from_file)
        .transpose()
        .map_err(|e| e.to_string())?;
    let target = match &args.split {
        Some(size) => match crate::config::parse_size(size) {
            Some(part_size) if part_size > 0 => Target::Split {
                output: args.output.clone(),
                part_size,
            },
            _ => return Err(format!("--split {size:?}: use e.g. 4GiB, 700MB or bytes")),
        },
        None => Target::File {
            temp: temp_beside(&args.output)?,
            output: args.output.clone(),
        },
    };
    Ok(Prepared {
        selection,
        signer,
        target,
    })
}

/// `--since`: a duration back from now, or a date (RFC 3339, or a day).
fn since(text: &str) -> Result<u64, String> {
    let now = SystemTime::now();
    let at = if let Ok(ago) = humantime::parse_duration(text) {
        now.checked_sub(ago).unwrap_or(UNIX_EPOCH)
    } else {
        let text = text.trim();
        let full = if text.len() == 10 {
            format!("{text}T00:00:00Z")
        } else {
            text.to_string()
        };
        humantime::parse_rfc3339_weak(&full).map_err(|_| {
            format!("--since {text:?}: give a date (2026-12-01, 2026-12-01T08:00:00Z) or a duration (7d, 12h)")
        })?
    };
    Ok(at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs())
}

fn read_inventory(path: &Path) -> Result<Inventory, String> {
    let cannot = |e: &dyn std::fmt::Display| format!("--have {}: {e}", path.display());
    let size = std::fs::metadata(path).map_err(|e| cannot(&e))?.len();
    if size > MAX_INVENTORY_BYTES {
        return Err(cannot(&format!("larger than {MAX_INVENTORY_BYTES} bytes")));
    }
    let text = std::fs::read(path).map_err(|e| cannot(&e))?;
    let inventory: Inventory = serde_json::from_slice(&text)
        .map_err(|e| cannot(&format!("not a ferry inventory ({e})")))?;
    if inventory.format != INVENTORY_FORMAT {
        return Err(cannot(&format!(
            "format {:?}, expected {INVENTORY_FORMAT:?}",
            inventory.format
        )));
    }
    Ok(inventory)
}

/// Where the bundle goes.
enum Target {
    /// One file, written as `temp` and renamed to `output` at the end.
    File {
        temp: PathBuf,
        output: PathBuf,
    },
    Split {
        output: PathBuf,
        part_size: u64,
    },
}

/// `.NAME.partial-PID` in FILE's directory (a rename within it is atomic).
fn temp_beside(output: &Path) -> Result<PathBuf, String> {
    let name = output
        .file_name()
        .ok_or_else(|| format!("--output {}: not a file name", output.display()))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".partial-{}", std::process::id()));
    Ok(output.with_file_name(temp))
}

enum Sink {
    File(BufWriter<File>),
    Split(SplitWriter),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Split(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Split(s) => s.flush(),
        }
    }
}

/// Removes the `.NAME.partial-PID` files of exports of FILE that were
/// killed (their process is gone): a crashed export leaves no litter that
/// outlives the next one.
fn remove_dead_partials(output: &Path) {
    let (Some(dir), Some(name)) = (output.parent(), output.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.partial-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        let gone = matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        );
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Target {
    fn open(&self) -> Result<Sink, String> {
        match self {
            Target::File { temp, output } => {
                remove_dead_partials(output);
                File::options()
                    .write(true)
                    .create_new(true)
                    .open(temp)
                    .map(|f| Sink::File(BufWriter::with_capacity(1024 * 1024, f)))
                    .map_err(|e| format!("{}: {e}", temp.display()))
            }
            Target::Split { output, part_size } => SplitWriter::create(output, *part_size)
                .map(Sink::Split)
                .map_err(|e| e.to_string()),
        }
    }

    /// Makes the bundle whole under its name; the files written.
    fn finish(&self, sink: Sink) -> Result<Vec<PathBuf>, String> {
        match (self, sink) {
            (Target::File { temp, output }, Sink::File(file)) => {
                let file = file
                    .into_inner()
                    .map_err(|e| format!("{}: {}", temp.display(), e.error()))?;
                file.sync_all()
                    .and_then(|()| std::fs::rename(temp, output))
                    .map_err(|e| format!("{}: {e}", output.display()))?;
                Ok(vec![output.clone()])
            }
            (_, Sink::Split(split)) => split.finish().map_err(|e| e.to_string()),
            (_, Sink::File(_)) => Err("internal error: sink and target differ".into()),
        }
    }

    /// Removes what a failed export wrote.
    fn abandon(&self) {
        match self {
            Target::File { temp, .. } => {
                let _ = std::fs::remove_file(temp);
            }
            Target::Split { output, .. } => {
                // No checksum file was written: remove the parts (numbered
                // from 1 without a gap).
                for number in 1.. {
                    let mut name = output.as_os_str().to_owned();
                    name.push(format!(".part{number:03}"));
                    if std::fs::remove_file(PathBuf::from(name)).is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// The one line a finished export prints (and what it left out, on
/// standard error).
fn summary(manifest: &BundleManifest, files: &[PathBuf]) {
    for left in &manifest.left_out {
        eprintln!("ferry: left out {}: {}", left.reference, left.reason);
    }
    let bytes: u64 = manifest.blobs.iter().map(|b| b.size).sum();
    let written: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let referrers = match manifest.referrers.len() {
        0 => String::new(),
        n => format!(" and {n} referrers"),
    };
    let assumed = match manifest.assumed.len() {
        0 => String::new(),
        n => format!(", {n} assumed at the receiver"),
    };
    let place = match files {
        [one] => one.display().to_string(),
        _ => format!(
            "{} files ({})",
            files.len(),
            files
                .first()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        ),
    };
    println!(
        "exported {} references{referrers}, {} blobs ({bytes} bytes{assumed}) to {place}: {written} bytes",
        manifest.references.len(),
        manifest.blobs.len(),
    );
}

/// From a stopped ferry's data directory, holding its lock throughout.
fn offline(args: &ExportArgs, dir: &Path, prepared: Prepared) -> ExitCode {
    let data = DataArgs {
        config: args.config.clone(),
        data_dir: Some(dir.to_path_buf()),
    };
    super::offline::offline(&data, move |storage| async move {
        Ok(export_offline(storage, prepared).await)
    })
}

async fn export_offline(storage: Arc<Storage>, prepared: Prepared) -> ExitCode {
    let Prepared {
        selection,
        signer,
        target,
    } = prepared;
    let zstd = selection.zstd;
    let source = BundleSource::this_host();
    let planned = storage
        .plan_export(selection, source)
        .await
        .and_then(|m| BundleToWrite::new(m, zstd));
    let mut bundle = match planned {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(signer) = &signer {
        bundle.signature = Some(signer.sign(&bundle.manifest_bytes));
    }
    let manifest = bundle.manifest.clone();
    let sink = match target.open() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match storage.write_bundle(bundle, sink).await {
        Ok(sink) => target.finish(sink),
        Err(e) => Err(e.to_string()),
    };
    done(&target, &manifest, written)
}

fn done(
    target: &Target,
    manifest: &BundleManifest,
    written: Result<Vec<PathBuf>, String>,
) -> ExitCode {
    match written {
        Ok(files) => {
            summary(manifest, &files);
            ExitCode::SUCCESS
        }
        Err(e) => {
            target.abandon();
            eprintln!("ferry: {e}");
            ExitCode::FAILURE
        }
    }
}

/// From a running ferry: plan, sign here, then the stream of the bundle
/// as planned.
fn online(args: &ExportArgs, prepared: Prepared) -> ExitCode {
    let config = match super::config_with_data_dir(args.config.as_deref(), args.data_dir.as_deref())
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let password = match admin_password(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let client = Client::new(&url, password.secret.clone());
    super::run_command(async move {
        match through_api(&client, prepared).await {
            Ok(code) => code,
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

async fn through_api(client: &Client, prepared: Prepared) -> Result<ExitCode, ClientError> {
    let Prepared {
        selection,
        signer,
        target,
    } = prepared;
    let selection = serde_json::to_value(&selection)
        .map_err(|e| ClientError::Failed(format!("cannot send the selection: {e}")))?;
    let planned = client
        .post_download(PLAN, &selection)
        .await?
        .bytes()
        .await
        .map_err(|e| ClientError::Failed(format!("reading the plan: {e}")))?;
    let manifest: BundleManifest = serde_json::from_slice(&planned)
        .map_err(|e| ClientError::Failed(format!("ferry answered no bundle plan: {e}")))?;
    let text = String::from_utf8(planned.to_vec())
        .map_err(|e| ClientError::Failed(format!("ferry answered no bundle plan: {e}")))?;
    let signature = signer
        .as_ref()
        .map(|s| String::from_utf8_lossy(&s.sign(text.as_bytes())).into_owned());
    let body = json!({ "selection": selection, "manifest": text, "signature": signature });
    // Opened first: an unwritable FILE is found before ferry starts work.
    let mut sink = target.open().map_err(ClientError::Failed)?;
    let mut resp = match client.post_download(EXPORT, &body).await {
        Ok(resp) => resp,
        Err(e) => {
            drop(sink);
            target.abandon();
            return Err(e);
        }
    };
    // Written as it arrives. Plain writes: this command has one task, and
    // nothing else waits on the thread.
    let received: Result<(), String> = async {
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            format!(
                "the bundle stream broke off: {}",
                crate::upstream::error_chain(&e)
            )
        })? {
            sink.write_all(&chunk)
                .map_err(|e| format!("writing the bundle: {e}"))?;
        }
        Ok(())
    }
    .await;
    let written = received.and_then(|()| target.finish(sink));
    Ok(done(&target, &manifest, written))
}
