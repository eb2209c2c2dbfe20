//! `ferry prefetch --file LIST`: sends the list to a running ferry's
//! `<distribution>prefetch/`, then follows the task: a progress bar on a
//! terminal (indicatif), a plain line per change otherwise (logs, CI), and
//! at the end each reference that failed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use serde_json::{json, Value};

use super::args::{Output, PrefetchArgs};
use super::client::{Client, ClientError, DISTRIBUTIONS};

/// The largest list file read (a thousand references fit many times over).
const MAX_LIST_BYTES: u64 = 1024 * 1024;
/// How often the task is polled.
const POLL_EVERY: Duration = Duration::from_millis(500);

pub(super) async fn execute(
    client: &Client,
    args: &PrefetchArgs,
    output: Output,
) -> Result<(), ClientError> {
    let references = read_list(args)?;
    let distribution = distribution_href(client, args.distribution.as_deref()).await?;
    let platforms = args
        .platform
        .clone()
        .unwrap_or_else(crate::domain::host_platform);
    let body =
        json!({ "references": references, "platforms": platforms, "referrers": args.referrers });
    let answer = client
        .post(&format!("{distribution}prefetch/"), body)
        .await?;
    let task = answer["task"]
        .as_str()
        .ok_or_else(|| ClientError::Failed(format!("ferry answered no task: {answer}")))?
        .to_string();
    let bar = (output == Output::Text && std::io::stdout().is_terminal()).then(progress_bar);
    let mut last = String::new();
    let mut ticker = tokio::time::interval(POLL_EVERY);
    let report = loop {
        ticker.tick().await;
        let report = client.get(&task).await?;
        match &bar {
            Some(bar) => {
                let images = count(&report, IMAGES, "done");
                bar.set_length(count(&report, BYTES, "total"));
                bar.set_position(count(&report, BYTES, "done"));
                bar.set_message(format!(
                    "images {images}/{}",
                    count(&report, IMAGES, "total")
                ));
            }
            None if output == Output::Text => {
                let line = progress_line(&report);
                if line != last {
                    println!("{line}");
                    last = line;
                }
            }
            None => {}
        }
        if report["state"] != "running" {
            break report;
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
        println!("{}", progress_line(&report));
    }
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    match report["state"].as_str() {
        Some("completed") => Ok(()),
        _ => {
            if output == Output::Text {
                if let Some(Value::Object(failed)) = report["error"].get("references") {
                    for (reference, why) in failed {
                        eprintln!("failed: {reference}: {}", why.as_str().unwrap_or("?"));
                    }
                }
            }
            let description = report["error"]["description"].as_str().unwrap_or("failed");
            Err(ClientError::Failed(format!("prefetch: {description}")))
        }
    }
}

/// The list's references: trimmed lines, neither empty nor comments.
fn read_list(args: &PrefetchArgs) -> Result<Vec<String>, ClientError> {
    let path = &args.file;
    let cannot = |e: String| ClientError::Failed(format!("cannot read {}: {e}", path.display()));
    let size = std::fs::metadata(path)
        .map_err(|e| cannot(e.to_string()))?
        .len();
    if size > MAX_LIST_BYTES {
        return Err(cannot(format!("larger than {MAX_LIST_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| cannot(e.to_string()))?;
    let references: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if references.is_empty() {
        return Err(cannot("it names no image".into()));
    }
    Ok(references)
}

/// The distribution of `base_path`, or the only one there is.
async fn distribution_href(
    client: &Client,
    base_path: Option<&str>,
) -> Result<String, ClientError> {
    let all = client.list(DISTRIBUTIONS).await?;
    let chosen: Vec<&Value> = match base_path {
        Some(b) => {
            let b = b.trim_matches('/');
            all.iter().filter(|d| d["base_path"] == b).collect()
        }
        None => all.iter().collect(),
    };
    match chosen.as_slice() {
        [one] => one["pulp_href"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Failed("a distribution without an href".into())),
        _ => {
            let names: Vec<&str> = all.iter().filter_map(|d| d["base_path"].as_str()).collect();
            Err(ClientError::Failed(match base_path {
                Some(b) => format!(
                    "no distribution has the base path {b:?} (ferry has: {})",
                    names.join(", ")
                ),
                None => format!(
                    "name the distribution with --distribution (ferry has: {})",
                    names.join(", ")
                ),
            }))
        }
    }
}

const IMAGES: &str = "ferry.prefetch.images";
const BYTES: &str = "ferry.prefetch.bytes";

/// `total` or `done` of the task's progress report `code`.
fn count(task: &Value, code: &str, key: &str) -> u64 {
    task["progress_reports"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["code"] == code))
        .and_then(|r| r[key].as_u64())
        .unwrap_or(0)
}

/// Bytes as the bar, images as its message.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `running: images 2/5, 12.3 MiB of 40.0 MiB, 1 failed`.
fn progress_line(task: &Value) -> String {
    let count = |code: &str, key: &str| count(task, code, key);
    let failed = task["error"]["references"]
        .as_object()
        .map_or(0, |m| m.len());
    let mut line = format!(
        "{}: images {}/{}, {} of {}",
        task["state"].as_str().unwrap_or("?"),
        count(IMAGES, "done"),
        count(IMAGES, "total"),
        mib(count(BYTES, "done")),
        mib(count(BYTES, "total")),
    );
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    line
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
