//! HTTPie (`http`) as a user scripts it against the management API: the
//! admin's credentials in `~/.netrc` of a throwaway HOME, commands run
//! through `bash -c` (hence `--ignore-stdin`), output parsed by the test
//! or piped through `jq`. HTTPie's background update check is switched off
//! so no test reaches the internet.

use std::time::Duration;

use super::util::{run_bounded, CmdOutput};

const LIMIT: Duration = Duration::from_secs(60);

pub struct Httpie {
    home: tempfile::TempDir,
}

impl Httpie {
    /// A HOME whose `.netrc` (0600) holds `machine 127.0.0.1 login USER
    /// password PASSWORD` (HTTPie, through requests, applies it to
    /// `http://127.0.0.1:PORT/...`).
    pub fn with_netrc(user: &str, password: &str) -> Httpie {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let netrc = home.path().join(".netrc");
        std::fs::write(
            &netrc,
            format!("machine 127.0.0.1 login {user} password {password}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = home.path().join(".config/httpie");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("config.json"),
            r#"{"disable_update_warnings": true}"#,
        )
        .unwrap();
        Httpie { home }
    }

    /// Runs `script` with `bash -c` (errexit, pipefail) in this HOME, with
    /// `vars` in the environment.
    pub async fn script(&self, script: &str, vars: &[(&str, &str)]) -> CmdOutput {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!("set -euo pipefail\n{script}"))
            .env("HOME", self.home.path())
            .env("HTTPIE_CONFIG_DIR", self.home.path().join(".config/httpie"))
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .current_dir(self.home.path());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        run_bounded(cmd, LIMIT).await
    }

    /// `http --ignore-stdin --check-status --body ARGS...`: the JSON body of
    /// a 2xx answer (panics on any other status, with HTTPie's output).
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        let out = self
            .script(
                &format!(
                    "http --ignore-stdin --check-status --body {}",
                    quoted.join(" ")
                ),
                &[],
            )
            .await
            .expect_ok(&format!("http {}", args.join(" ")));
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("http {args:?}: not JSON ({e}): {}", out.stdout))
    }

    /// `http GET url`, as `json` (takes the URL by value so a closure can
    /// build it).
    pub async fn json_get(&self, url: String) -> serde_json::Value {
        self.json(&["GET", &url]).await
    }
}

/// Single-quotes `s` for bash.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
