//! A real forward proxy: Debian's `tinyproxy` on a free 127.0.0.1 port, in
//! the foreground, with a generated config and its log in a temp dir. The
//! log's `Request` lines tell which requests went through it.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::util::free_port;

pub struct Tinyproxy {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Tinyproxy {
    /// Starts tinyproxy accepting clients from 127.0.0.1. `connect_ports`
    /// are the ports CONNECT (HTTPS tunnels) may reach; with `basic_auth`
    /// clients must send these proxy credentials.
    pub async fn start(connect_ports: &[u16], basic_auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "Port {port}\n\
             Listen 127.0.0.1\n\
             Timeout 600\n\
             LogFile \"{log}\"\n\
             LogLevel Info\n\
             MaxClients 100\n\
             Allow 127.0.0.1\n\
             DisableViaHeader Yes\n",
            log = dir.path().join("tinyproxy.log").display()
        );
        for p in connect_ports {
            config.push_str(&format!("ConnectPort {p}\n"));
        }
        if let Some((user, password)) = basic_auth {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let config_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&config_path, config).unwrap();
        let stderr = File::create(dir.path().join("tinyproxy.stderr")).unwrap();
        // -d: stay in the foreground (a child we can kill and reap).
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn tinyproxy (apt: tinyproxy)");
        let mut proxy = Tinyproxy {
            port,
            dir,
            child: Some(child),
        };
        proxy.wait_ready().await;
        proxy
    }

    /// Polls the port until it accepts, failing fast if tinyproxy exits.
    async fn wait_ready(&mut self) {
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let stderr = std::fs::read_to_string(self.dir.path().join("tinyproxy.stderr"))
                    .unwrap_or_default();
                panic!(
                    "tinyproxy exited ({status}) before listening:\n{stderr}\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "tinyproxy did not listen on 127.0.0.1:{} within 30 s",
            self.port
        );
    }

    /// `http://127.0.0.1:PORT`, for `proxy_url` or `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }

    /// The request lines tinyproxy received, in order, e.g.
    /// `CONNECT 127.0.0.1:20001 HTTP/1.1` or
    /// `GET http://127.0.0.1:20001/v2/ HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("]: Request (file descriptor ")?;
                Some(rest.split_once("): ")?.1.trim().to_string())
            })
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- tinyproxy log:\n{}", self.log());
        }
    }
}
