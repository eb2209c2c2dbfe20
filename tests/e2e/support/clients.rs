//! Wrappers around the real clients a user would run: skopeo and podman.
//! Every command is bounded in time. Nothing under /etc is relied upon:
//! policy and registries.conf are written to a temp dir and passed in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::util::{run_bounded, CmdOutput};

const LIMIT: Duration = Duration::from_secs(180);

/// Per-client scratch: signature policy, an empty registries.conf (no
/// mirrors or short-name aliases from the host) and an empty auth file.
struct ClientEnv {
    dir: tempfile::TempDir,
}

impl ClientEnv {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("auth.json"), "{}").unwrap();
        ClientEnv { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("HOME", self.dir.path());
        cmd
    }
}

/// `user:password` for `--src-creds` / `--creds`.
pub type Creds<'a> = Option<(&'a str, &'a str)>;

/// `skopeo copy docker://IMAGE dir:DEST` (plain HTTP allowed). `image` is
/// `HOST:PORT/repo:tag` or `HOST:PORT/repo@sha256:...`.
pub async fn skopeo_copy(image: &str, dest: &Path, creds: Creds<'_>) -> CmdOutput {
    let env = ClientEnv::new();
    let mut cmd = env.command("skopeo");
    cmd.arg("--insecure-policy")
        .args(["copy", "--src-tls-verify=false", "--retry-times=0"]);
    if let Some((u, p)) = creds {
        cmd.arg(format!("--src-creds={u}:{p}"));
    }
    cmd.arg(format!("docker://{image}"))
        .arg(format!("dir:{}", dest.display()));
    run_bounded(cmd, LIMIT).await
}

/// `skopeo inspect --raw docker://IMAGE`: the manifest bytes as served.
pub async fn skopeo_inspect_raw(image: &str, creds: Creds<'_>) -> CmdOutput {
    let env = ClientEnv::new();
    let mut cmd = env.command("skopeo");
    cmd.arg("--insecure-policy").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--retry-times=0",
    ]);
    if let Some((u, p)) = creds {
        cmd.arg(format!("--creds={u}:{p}"));
    }
    cmd.arg(format!("docker://{image}"));
    run_bounded(cmd, LIMIT).await
}

/// `skopeo list-tags docker://REPO` (`HOST:PORT/repo`): the tags as JSON.
pub async fn skopeo_list_tags(repo: &str, creds: Creds<'_>) -> CmdOutput {
    let env = ClientEnv::new();
    let mut cmd = env.command("skopeo");
    cmd.args(["list-tags", "--tls-verify=false", "--retry-times=0"]);
    if let Some((u, p)) = creds {
        cmd.arg(format!("--creds={u}:{p}"));
    }
    cmd.arg(format!("docker://{repo}"));
    run_bounded(cmd, LIMIT).await
}

/// What `skopeo copy ... dir:` wrote: `manifest.json` and one file per blob,
/// named by the digest's hex.
pub struct DirImage {
    pub manifest: Bytes,
    root: PathBuf,
}

impl DirImage {
    pub fn read(root: &Path) -> DirImage {
        let manifest =
            std::fs::read(root.join("manifest.json")).expect("dir: image has manifest.json");
        DirImage {
            manifest: manifest.into(),
            root: root.to_path_buf(),
        }
    }

    /// The blob stored for `digest` (`sha256:hex`).
    pub fn blob(&self, digest: &str) -> Bytes {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::read(self.root.join(hex))
            .unwrap_or_else(|e| panic!("blob {digest} in dir image: {e}"))
            .into()
    }
}

/// A throwaway podman store (vfs driver, no cgroups, file events) so tests
/// neither need nor touch the host's container storage.
pub struct Podman {
    env: ClientEnv,
    /// Overlay storage with partial pulls on (see `with_partial_pulls`).
    partial: bool,
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}

impl Podman {
    pub fn new() -> Self {
        Podman {
            env: ClientEnv::new(),
            partial: false,
        }
    }

    /// A throwaway store on the overlay driver (root only) with zstd:chunked
    /// partial pulls on, as a user enables them in storage.conf: layers are
    /// fetched as byte ranges, and files the store already holds are not
    /// fetched again.
    pub fn with_partial_pulls() -> Self {
        let env = ClientEnv::new();
        let conf = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = {:?}\nrunroot = {:?}\n\
             [storage.options]\n\
             pull_options = {{enable_partial_images = \"true\", use_hard_links = \"false\"}}\n",
            env.path("root"),
            env.path("run"),
        );
        std::fs::write(env.path("storage.conf"), conf).unwrap();
        Podman { env, partial: true }
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = self.env.command("podman");
        if self.partial {
            cmd.env("CONTAINERS_STORAGE_CONF", self.env.path("storage.conf"));
        }
        cmd.arg("--root")
            .arg(self.env.path("root"))
            .arg("--runroot")
            .arg(self.env.path("run"))
            .args([
                "--storage-driver",
                if self.partial { "overlay" } else { "vfs" },
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        cmd.arg("--tmpdir").arg(self.env.path("tmp"));
        cmd
    }

    /// `podman pull --tls-verify=false [--arch ARCH] IMAGE`.
    pub async fn pull(&self, image: &str, arch: Option<&str>, creds: Creds<'_>) -> CmdOutput {
        let mut cmd = self.command();
        cmd.args(["pull", "--tls-verify=false", "--quiet"]);
        cmd.arg("--signature-policy")
            .arg(self.env.path("policy.json"));
        if let Some(a) = arch {
            cmd.args(["--arch", a]);
        }
        if let Some((u, p)) = creds {
            cmd.arg(format!("--creds={u}:{p}"));
        }
        cmd.arg(image);
        run_bounded(cmd, LIMIT).await
    }

    /// `podman --log-level=debug pull --tls-verify=false IMAGE`: its
    /// stderr says what podman asked for and why (e.g. why a partial pull
    /// fell back to a full download), for assertion messages.
    pub async fn pull_logged(&self, image: &str) -> CmdOutput {
        let mut cmd = self.command();
        cmd.args(["--log-level=debug", "pull", "--tls-verify=false"]);
        cmd.arg("--signature-policy")
            .arg(self.env.path("policy.json"))
            .arg(image);
        run_bounded(cmd, LIMIT).await
    }

    /// `podman login --tls-verify=false -u USER --password-stdin HOST`, the
    /// password written to stdin. Later pulls of this store use the login.
    pub async fn login(&self, host: &str, user: &str, password: &str) -> CmdOutput {
        use std::process::Stdio;
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command();
        cmd.args([
            "login",
            "--tls-verify=false",
            "-u",
            user,
            "--password-stdin",
            host,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn podman login");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let out = tokio::time::timeout(LIMIT, child.wait_with_output())
            .await
            .expect("podman login did not finish in time")
            .expect("wait for podman login");
        CmdOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `podman pull --cert-dir DIR IMAGE` with TLS verification on: `DIR`
    /// holds the CA certificates (`*.crt`) the registry's certificate must
    /// chain to.
    pub async fn pull_verified(&self, image: &str, cert_dir: &Path) -> CmdOutput {
        let mut cmd = self.command();
        cmd.args(["pull", "--tls-verify=true", "--quiet"])
            .arg("--cert-dir")
            .arg(cert_dir)
            .arg("--signature-policy")
            .arg(self.env.path("policy.json"))
            .arg(image);
        run_bounded(cmd, LIMIT).await
    }

    /// `podman import TAR NAME`: a one-layer image of the tar's files.
    pub async fn import(&self, tar: &Path, name: &str) -> CmdOutput {
        let mut cmd = self.command();
        cmd.arg("import").arg(tar).arg(name);
        run_bounded(cmd, LIMIT).await
    }

    /// `podman push --compression-format FORMAT` of a local image to `dest`
    /// (`HOST:PORT/repo:tag`, plain HTTP).
    pub async fn push(&self, image: &str, dest: &str, format: &str) -> CmdOutput {
        let mut cmd = self.command();
        cmd.args(["push", "--tls-verify=false", "--quiet"])
            .args(["--compression-format", format])
            .arg("--signature-policy")
            .arg(self.env.path("policy.json"))
            .args([image, dest]);
        run_bounded(cmd, LIMIT).await
    }

    /// Reads `path` in the image's file system (`podman image mount`, root
    /// only), unmounting it again.
    pub async fn read_image_file(&self, image: &str, path: &str) -> Vec<u8> {
        let mut cmd = self.command();
        cmd.args(["image", "mount", image]);
        let out = run_bounded(cmd, LIMIT)
            .await
            .expect_ok("podman image mount");
        let file = Path::new(out.stdout.trim()).join(path);
        let data = std::fs::read(&file);
        let mut cmd = self.command();
        cmd.args(["image", "unmount", image]);
        run_bounded(cmd, LIMIT)
            .await
            .expect_ok("podman image unmount");
        data.unwrap_or_else(|e| panic!("{image}: {path}: {e}"))
    }

    /// `podman image inspect --format TEMPLATE IMAGE`, trimmed.
    pub async fn inspect(&self, image: &str, template: &str) -> String {
        let mut cmd = self.command();
        cmd.args(["image", "inspect", "--format", template, image]);
        run_bounded(cmd, LIMIT)
            .await
            .expect_ok("podman image inspect")
            .stdout
            .trim()
            .to_string()
    }

    /// The image's ID (its config digest hex) and the manifest digest podman
    /// recorded for it.
    pub async fn image_id_and_digest(&self, image: &str) -> (String, String) {
        let out = self.inspect(image, "{{.Id}} {{.Digest}}").await;
        let (id, digest) = out
            .split_once(' ')
            .unwrap_or_else(|| panic!("unexpected inspect output {out:?}"));
        (id.to_string(), digest.to_string())
    }

    /// Pulls `image` (anonymously, or as whoever logged in) and asserts
    /// podman recorded the manifest digest `digest`.
    pub async fn assert_pulls(&self, image: &str, digest: &str, what: &str) {
        self.pull(image, None, None).await.expect_ok(what);
        assert_eq!(self.image_id_and_digest(image).await.1, digest, "{what}");
    }
}
