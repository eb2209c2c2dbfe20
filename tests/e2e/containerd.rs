//! containerd's own client, `ctr`, pulling through ferry: by ferry's base
//! path, and as a mirror from a hosts dir (`?ns=`). Each pull runs against
//! a private containerd daemon (own root, state and socket, CRI off, native
//! snapshotter: no overlay mounts), started and killed by the test. containerd
//! must run as root.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::util::{run_bounded, CmdOutput};
use crate::support::*;

/// A private containerd daemon in a temp dir, killed on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Containerd {
    /// Starts containerd and waits (bounded) until `ctr version` reaches it.
    async fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        // Every path of its own, so nothing of the system's containerd (or
        // /opt/containerd) is touched.
        let config = format!(
            "version = 2\n\
             root = {root:?}\n\
             state = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {sock:?}\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt:?}\n",
            root = p("root"),
            state = p("state"),
            sock = p("containerd.sock"),
            opt = p("opt"),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd (apt: containerd)");
        let mut c = Containerd {
            dir,
            child: Some(child),
        };
        for _ in 0..300 {
            let mut cmd = tokio::process::Command::new("ctr");
            cmd.arg("--address").arg(c.socket()).arg("version");
            if run_bounded(cmd, Duration::from_secs(10)).await.success {
                return c;
            }
            if let Some(status) = c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()) {
                panic!(
                    "containerd exited ({status}) before answering:\n{}",
                    c.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("containerd did not answer within 30 s:\n{}", c.log());
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCKET ARGS...`, bounded to 120 s.
    async fn ctr(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = tokio::process::Command::new("ctr");
        cmd.arg("--address").arg(self.socket()).args(args);
        run_bounded(cmd, Duration::from_secs(120)).await
    }

    /// `ctr images pull --snapshotter native FLAGS... REFERENCE`: fetches and
    /// verifies every blob, then unpacks the layers (asserted from ctr's
    /// output, which names the unpacked manifest).
    async fn pull(&self, flags: &[&str], reference: &str, image: &Image) {
        let mut args = vec!["images", "pull", "--snapshotter", "native"];
        args.extend_from_slice(flags);
        args.push(reference);
        let out = self
            .ctr(&args)
            .await
            .expect_ok(&format!("ctr images pull {flags:?} {reference}"));
        let unpacked = format!("unpacking linux/amd64 {}", image.digest);
        assert!(
            out.stdout.contains(&unpacked),
            "ctr did not unpack {}:\n{}",
            image.digest,
            out.stdout
        );
    }

    /// Asserts that containerd holds `reference` as exactly `image`: the
    /// image record names the upstream digest, the manifest bytes are the
    /// upstream's, every blob is present, and `ctr images check` finds the
    /// image complete.
    async fn assert_has(&self, reference: &str, image: &Image) {
        let ls = self.ctr(&["images", "ls"]).await.expect_ok("ctr images ls");
        let line = ls
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(reference))
            .unwrap_or_else(|| panic!("{reference} not in `ctr images ls`:\n{}", ls.stdout));
        assert!(
            line.split_whitespace().any(|f| f == image.digest),
            "`ctr images ls` digest differs from upstream {}: {line}",
            image.digest
        );
        let manifest = self
            .ctr(&["content", "get", &image.digest])
            .await
            .expect_ok("ctr content get manifest");
        assert_eq!(
            manifest.stdout.as_bytes(),
            &image.manifest[..],
            "manifest bytes in containerd differ from upstream"
        );
        let content = self
            .ctr(&["content", "ls", "-q"])
            .await
            .expect_ok("ctr content ls");
        for blob in &image.blobs {
            assert!(
                content.stdout.lines().any(|d| d.trim() == blob.digest),
                "blob {} missing from containerd's content store:\n{}",
                blob.digest,
                content.stdout
            );
        }
        let check = self
            .ctr(&["images", "check", &format!("name=={reference}")])
            .await
            .expect_ok("ctr images check");
        let line = check
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(reference))
            .unwrap_or_else(|| panic!("{reference} not in `ctr images check`:\n{}", check.stdout));
        assert!(
            line.contains("complete"),
            "`ctr images check` does not find {reference} complete: {line}"
        );
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- containerd log:\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// `DIR/HOST/hosts.toml` for `--hosts-dir DIR`: `host` (served over plain
/// HTTP) with `mirror` in front of it for pull and resolve.
fn write_hosts_toml(dir: &Path, host: &str, mirror: &str) {
    let host_dir = dir.join(host);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(
        host_dir.join("hosts.toml"),
        format!(
            "server = \"http://{host}\"\n\n\
             [host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .unwrap();
}

/// `ctr images pull` (fetch, verify, unpack) by ferry's base path gets the
/// upstream's image; then, with the upstream down, a pull of the upstream's
/// own name with ferry as its mirror in a hosts dir is answered by ferry
/// (containerd sends `?ns=UPSTREAM_HOST`), blobs included, into a second
/// containerd with an empty content store.
#[tokio::test]
async fn ctr_pulls_through_ferry_by_path_and_as_mirror() {
    let (mut upstream, image) = upstream_with_busybox().await;
    let ferry = Ferry::start_simple(&upstream.url());

    let direct = Containerd::start().await;
    let reference = via_ferry(&ferry, BUSYBOX, "1.36");
    direct.pull(&["--plain-http"], &reference, &image).await;
    direct.assert_has(&reference, &image).await;
    drop(direct);

    upstream.stop();
    let mirrored = Containerd::start().await;
    let hosts_dir = tempfile::tempdir().unwrap();
    write_hosts_toml(hosts_dir.path(), &upstream.host(), ferry.host());
    let reference = image_ref(&upstream.host(), BUSYBOX, "1.36");
    let hosts = hosts_dir.path().display().to_string();
    mirrored
        .pull(&["--hosts-dir", &hosts], &reference, &image)
        .await;
    mirrored.assert_has(&reference, &image).await;
}
