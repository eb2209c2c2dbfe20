//! The first hour with ferry's command line: start-up and maintenance
//! commands that fail with the right message and exit status (a data
//! directory in use, damaged, missing, not a directory, not permitted),
//! `ferry config check` hiding every secret, and the management CLI's round
//! trip with `--output json`, upstream credentials from a file or stdin, and
//! a 401 that says where the password was looked for.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// What one run of the ferry binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect_code(self, code: i32, what: &str) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: exit status\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// `ferry ARGS` in `cwd` with no FERRY_* variables but `env`, optionally
/// wrapped by `wrapper` (e.g. setpriv), stdin fed from `stdin`; bounded.
async fn run_ferry(
    wrapper: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    cwd: &Path,
) -> Run {
    let bin = ferry_bin();
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(rest).arg(&bin);
            c
        }
        None => tokio::process::Command::new(&bin),
    };
    cmd.args(args).current_dir(cwd).env("RUST_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("FERRY_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn ferry");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ferry {args:?} did not finish within 60 s"))
        .expect("wait for ferry");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ferry_in(cwd: &Path, args: &[&str]) -> Run {
    run_ferry(&[], args, &[], None, cwd).await
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

const MOVE_ASIDE: &str = "aside";

// ------------------------------------------------- start-up failures ---

/// A second ferry (server or maintenance command) on a directory in use is
/// told which process holds it, exits 2, and is not advised to move its
/// metadata aside; once the first one stops, the directory is free again.
#[tokio::test]
async fn a_second_ferry_on_a_data_dir_in_use_names_the_first_one() {
    let cwd = tempfile::tempdir().unwrap();
    let mut first = Ferry::start_simple("http://127.0.0.1:9");
    let pid = first.pid().unwrap();
    let dir = text(&first.data_dir());
    let expected = format!("another ferry (PID {pid}) is using {dir}; stop it first");
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
        vec!["gc", "--data-dir", &dir],
        vec!["verify", "--data-dir", &dir],
    ] {
        let run = ferry_in(cwd.path(), &args).await.expect_code(2, args[0]);
        assert!(run.stderr.contains(&expected), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains(MOVE_ASIDE), "{args:?}: {}", run.stderr);
        assert!(!run.stdout.contains("listening on"), "{}", run.stdout);
    }
    assert!(first.is_running(), "the first ferry died");

    first.stop();
    let verify = first.offline("verify").await;
    assert_eq!(verify.code, Some(0), "verify after stop: {}", verify.stderr);
    assert!(verify.stdout.contains("0 damaged"), "{}", verify.stdout);
}

/// A metadata database that does not open as one (here: garbage settings)
/// is the one case that gets the advice to move `meta/` aside.
#[tokio::test]
async fn only_a_damaged_database_gets_the_move_aside_advice() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("data");
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(dir.join("meta/conf"), [0xffu8; 64]).unwrap();
    let meta = text(&dir.join("meta"));
    for args in [
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &text(&dir),
        ],
        vec!["gc", "--data-dir", &text(&dir)],
    ] {
        let run = ferry_in(cwd.path(), &args).await;
        assert!(matches!(run.code, Some(1 | 2)), "{args:?}: {run:?}");
        assert!(
            run.stderr
                .contains("is damaged or was written by a newer ferry"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("mv {meta} {meta}.damaged")),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// A data directory whose path runs through a regular file: "not a
/// directory", from the server and the maintenance commands alike.
#[tokio::test]
async fn a_data_dir_under_a_file_is_not_a_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let file = cwd.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    for dir in [file.clone(), file.join("data")] {
        let dir = text(&dir);
        for args in [
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
            vec!["gc", "--data-dir", &dir],
            vec!["verify", "--data-dir", &dir],
        ] {
            let run = ferry_in(cwd.path(), &args).await.expect_code(2, &dir);
            assert!(
                run.stderr
                    .contains(&format!("ferry: {dir} is not a directory")),
                "{args:?}: {}",
                run.stderr
            );
            assert!(!run.stderr.contains(MOVE_ASIDE), "{}", run.stderr);
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

/// A directory ferry may not enter: "permission denied", plainly. Root
/// ignores file modes, so as root ferry runs as `nobody` (setpriv) on a
/// directory only root may enter; as another user the directory's mode is
/// simply 000.
#[tokio::test]
async fn a_data_dir_ferry_may_not_enter_is_permission_denied() {
    let cwd = tempfile::tempdir().unwrap();
    let locked = cwd.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let wrapper: &[&str] = if is_root {
        // `nobody` must reach the binary but not `locked` (mode 0700, root's).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        &[]
    };
    let dir = text(&locked.join("data"));
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
        vec!["gc", "--data-dir", &dir],
    ] {
        let run = run_ferry(wrapper, &args, &[], None, cwd.path())
            .await
            .expect_code(2, args[0]);
        assert!(
            run.stderr.contains(&format!("permission denied on {dir}")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains(MOVE_ASIDE), "{}", run.stderr);
    }
    if !is_root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert!(!locked.join("data").exists());
}

/// `ferry gc` and `ferry verify` on a directory that does not exist or
/// holds no ferry data: exit 2 with a message, and nothing is created.
#[tokio::test]
async fn gc_and_verify_refuse_a_missing_or_empty_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let missing = cwd.path().join("missing");
    let empty = cwd.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let refusals = [
        (
            &missing,
            format!("the data directory {} does not exist", missing.display()),
        ),
        (
            &empty,
            format!(
                "{} holds no ferry data (neither meta/ nor blobs/)",
                empty.display()
            ),
        ),
    ];
    for command in ["gc", "verify"] {
        for (dir, message) in &refusals {
            let run = ferry_in(cwd.path(), &[command, "--data-dir", &text(dir)])
                .await
                .expect_code(2, command);
            assert!(run.stderr.contains(message), "{}", run.stderr);
        }
        assert!(!missing.exists(), "ferry {command} created {missing:?}");
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        // Without --data-dir: the default ./ferry-data, also not created.
        let run = ferry_in(cwd.path(), &[command])
            .await
            .expect_code(2, command);
        assert!(
            run.stderr.contains("./ferry-data does not exist"),
            "{}",
            run.stderr
        );
        assert!(!cwd.path().join("ferry-data").exists());
    }
}

// ------------------------------------------------------ config check ---

/// The effective settings, in the file's own TOML shape (ferry reads them
/// back), with every secret redacted: passwords, the client key, the admin
/// password, credential headers, and passwords inside URLs.
#[tokio::test]
async fn config_check_prints_the_settings_with_every_secret_redacted() {
    let cwd = tempfile::tempdir().unwrap();
    let config = cwd.path().join("ferry.toml");
    std::fs::write(
        &config,
        r#"
admin_password = "Adm1n-s3cret"
max_size = "2GiB"

[[cache]]
base_path = "docker-cache"
upstream = "https://mirror-user:Url-s3cret@registry.example.com/"
username = "robot"
password = "Upstream-s3cret"
client_key = "Key-s3cret"
proxy_url = "http://proxy-user:Proxy-url-s3cret@proxy.example.com:3128/"
proxy_username = "proxy-user"
proxy_password = "Proxy-s3cret"

[cache.headers]
Authorization = "Bearer Header-s3cret"
X-Team = "edge"
"#,
    )
    .unwrap();
    let run = ferry_in(cwd.path(), &["config", "check", &text(&config)])
        .await
        .expect_code(0, "config check");
    for secret in [
        "Adm1n-s3cret",
        "Url-s3cret",
        "Upstream-s3cret",
        "Key-s3cret",
        "Proxy-url-s3cret",
        "Proxy-s3cret",
        "Header-s3cret",
    ] {
        assert!(!run.stdout.contains(secret), "{secret}:\n{}", run.stdout);
        assert!(!run.stderr.contains(secret), "{secret}:\n{}", run.stderr);
    }
    for line in [
        "admin_password = \"<redacted>\"",
        "max_size = 2147483648",
        "tag_ttl_secs = 300",
        "[[cache]]",
        "upstream = \"https://mirror-user:<redacted>@registry.example.com/\"",
        "username = \"robot\"",
        "password = \"<redacted>\"",
        "client_key = \"<redacted>\"",
        "proxy_url = \"http://proxy-user:<redacted>@proxy.example.com:3128/\"",
        "proxy_password = \"<redacted>\"",
        "Authorization = \"<redacted>\"",
        "X-Team = \"edge\"",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            run.stdout
        );
    }
    // The printout is itself a valid config file.
    let printed = cwd.path().join("printed.toml");
    std::fs::write(&printed, &run.stdout).unwrap();
    ferry_in(cwd.path(), &["config", "check", &text(&printed)])
        .await
        .expect_code(0, "config check of the printout");

    // An invalid file: exit 2 and the reason.
    std::fs::write(&config, "listen = 5\n").unwrap();
    let run = ferry_in(cwd.path(), &["config", "check", &text(&config)])
        .await
        .expect_code(2, "config check of a bad file");
    assert!(run.stderr.contains("invalid config"), "{}", run.stderr);
}

// --------------------------------------------------- management CLI ---

/// remote/distribution create, list and delete with `--output json`,
/// against a Basic-auth upstream whose password the CLI reads from a file
/// (it has no flag that takes a password); a pull proves the credentials
/// arrived; text output confirms each change in one line.
#[tokio::test]
async fn cli_round_trip_with_json_output_and_credentials_from_a_file() {
    let (upstream, image) = upstream_with_busybox_behind_basic_auth().await;
    let ferry = Ferry::start_with(&[], &[], &[]);
    let cwd = tempfile::tempdir().unwrap();
    let (url, up) = (ferry.url(), upstream.url());
    let env = [
        ("FERRY_URL", url.as_str()),
        ("FERRY_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ];
    // `ferry` with the words of `line` (no word has a space here).
    let cli = |line: String, stdin: Option<&'static str>| {
        let cwd = cwd.path().to_path_buf();
        async move {
            let args: Vec<&str> = line.split_whitespace().collect();
            run_ferry(&[], &args, &env, stdin, &cwd).await
        }
    };
    let json = |line: &str| cli(format!("{line} --output json"), None);

    // No flag takes a password on the command line.
    let run = cli(
        format!("remote create up --upstream {up} --password {PASSWORD}"),
        None,
    )
    .await
    .expect_code(2, "--password");
    assert!(run.stderr.contains("--password"), "{}", run.stderr);

    let password_file = cwd.path().join("upstream-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let password_file = text(&password_file);
    let remote = json(&format!(
        "remote create up --upstream {up} --username {USER} --password-file {password_file}"
    ))
    .await
    .expect_code(0, "remote create")
    .json();
    assert_eq!(remote["name"], "up");
    assert_eq!(remote["url"], up.as_str());
    let remote_href = remote["pulp_href"].as_str().unwrap().to_string();
    assert!(remote_href.starts_with("/pulp/api/v3/remotes/container/pull-through/"));
    let password_field = remote["hidden_fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "password")
        .map(|f| f["is_set"].clone());
    assert_eq!(password_field, Some(Value::Bool(true)));
    assert!(!remote.to_string().contains(PASSWORD));

    let dist = json(&format!(
        "distribution create dc --base-path {CACHE} --remote up"
    ))
    .await
    .expect_code(0, "distribution create")
    .json();
    assert_eq!(dist["name"], "dc");
    assert_eq!(dist["base_path"], CACHE);
    assert_eq!(dist["remote"], remote_href.as_str());
    let dist_href = dist["pulp_href"].as_str().unwrap().to_string();
    for (kind, href) in [("remote", &remote_href), ("distribution", &dist_href)] {
        let list = json(&format!("{kind} list"))
            .await
            .expect_code(0, kind)
            .json();
        assert_eq!(list.as_array().unwrap().len(), 1, "{kind}s: {list}");
        assert_eq!(list[0]["pulp_href"], href.as_str());
    }

    // The credentials from the file reach the upstream: the pull works.
    assert_skopeo_copy_matches(&via_ferry(&ferry, BUSYBOX, "1.36"), &image).await;

    // A password from stdin (piped, as a script would), one line of text back.
    let run = cli(
        format!("remote update up --username {USER} --password-stdin"),
        Some("changed-password\n"),
    )
    .await
    .expect_code(0, "remote update");
    assert_eq!(run.stdout, format!("updated remote up ({remote_href})\n"));

    let run = json("distribution delete dc")
        .await
        .expect_code(0, "distribution delete");
    assert!(
        run.json()["task"]
            .as_str()
            .is_some_and(|t| t.starts_with("/pulp/api/v3/tasks/")),
        "{}",
        run.stdout
    );
    let run = cli("remote delete up".into(), None)
        .await
        .expect_code(0, "remote delete");
    assert_eq!(run.stdout, format!("deleted remote up ({remote_href})\n"));
    for kind in ["remote", "distribution"] {
        let list = json(&format!("{kind} list"))
            .await
            .expect_code(0, kind)
            .json();
        assert_eq!(list, Value::Array(vec![]), "{kind}s left");
    }

    // Text output: one confirmation line per change.
    for (line, confirmation) in [
        (
            format!("remote create up2 --upstream {up}"),
            "created remote up2 (/pulp/api/v3/remotes/",
        ),
        (
            "distribution create d2 --base-path d2 --remote up2".to_string(),
            "created distribution d2 (/pulp/api/v3/distributions/",
        ),
    ] {
        let run = cli(line, None).await.expect_code(0, confirmation);
        assert!(
            run.stdout.starts_with(confirmation) && run.stdout.lines().count() == 1,
            "{}",
            run.stdout
        );
    }
}

/// A wrong or missing admin password: the 401 says where the CLI looked
/// and how to give it; the generated password is found through --data-dir;
/// a --data-dir that is no ferry's data directory is refused.
#[tokio::test]
async fn a_401_says_where_the_cli_looked_for_the_admin_password() {
    // No FERRY_ADMIN_PASSWORD: ferry generates one into its data dir.
    let ferry = Ferry::start_simple("http://127.0.0.1:9");
    let data_dir = text(&ferry.data_dir());
    let cwd = tempfile::tempdir().unwrap();
    let url = ferry.url();

    let run = run_ferry(
        &[],
        &["remote", "list", "--url", &url],
        &[("FERRY_ADMIN_PASSWORD", "wrong")],
        None,
        cwd.path(),
    )
    .await
    .expect_code(1, "wrong password");
    for part in [
        &format!("ferry at {url} refused the admin password (401 Unauthorized)"),
        "The password came from FERRY_ADMIN_PASSWORD",
        "Set FERRY_ADMIN_PASSWORD, or pass --data-dir",
    ] {
        assert!(run.stderr.contains(part), "{part:?} in {}", run.stderr);
    }

    let run = ferry_in(cwd.path(), &["remote", "list", "--url", &url])
        .await
        .expect_code(1, "no password");
    assert!(
        run.stderr.contains(
            "The password came from nowhere (FERRY_ADMIN_PASSWORD is unset and \
             ./ferry-data/admin-password does not exist)"
        ),
        "{}",
        run.stderr
    );

    let run = ferry_in(
        cwd.path(),
        &["remote", "list", "--url", &url, "--data-dir", &data_dir],
    )
    .await
    .expect_code(0, "password from --data-dir");
    assert!(run.stdout.starts_with("docker-cache\t"), "{}", run.stdout);

    let run = ferry_in(
        cwd.path(),
        &[
            "remote",
            "list",
            "--url",
            &url,
            "--data-dir",
            &text(cwd.path()),
        ],
    )
    .await
    .expect_code(2, "--data-dir without ferry data");
    assert!(run.stderr.contains("holds no ferry data"), "{}", run.stderr);
}
