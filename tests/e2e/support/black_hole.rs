//! FAKE: a black-holed uplink. No registry accepts a connection and then
//! never answers on purpose, but a firewall dropping packets, a dead VPN or
//! a satellite link going down look exactly like that to ferry. This is a
//! TCP relay in front of a real upstream (or in front of nothing): while
//! relaying it forwards bytes both ways; once black-holed it still accepts
//! connections and reads what ferry sends, and answers nothing, on new
//! connections and on kept-alive ones alike. It records each request it
//! swallowed, and whether ferry still waits on it (keeps it open).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::util::BackgroundServer;

struct Swallowed {
    /// The request line, e.g. `HEAD /v2/library/busybox/manifests/1.36 HTTP/1.1`.
    line: String,
    /// Cleared when ferry closes the connection (gave up waiting).
    open: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    black: AtomicBool,
    swallowed: Mutex<Vec<Swallowed>>,
}

impl State {
    fn is_black(&self) -> bool {
        self.black.load(Ordering::SeqCst)
    }
}

pub struct FakeBlackHole {
    state: Arc<State>,
    server: BackgroundServer,
}

impl FakeBlackHole {
    /// A black hole from the start: nothing behind it.
    pub fn start() -> FakeBlackHole {
        let hole = FakeBlackHole::start_inner(None);
        hole.black_hole();
        hole
    }

    /// A relay to `target` (`127.0.0.1:PORT`) until [`black_hole`] is called.
    ///
    /// [`black_hole`]: FakeBlackHole::black_hole
    pub fn relay(target: &str) -> FakeBlackHole {
        FakeBlackHole::start_inner(Some(target.to_string()))
    }

    fn start_inner(target: Option<String>) -> FakeBlackHole {
        let state = Arc::new(State::default());
        let st = state.clone();
        let server = BackgroundServer::start(move |listener| async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(st.clone(), target.clone(), conn));
            }
        });
        FakeBlackHole { state, server }
    }

    /// From now on nothing is answered, also on connections already open.
    pub fn black_hole(&self) {
        self.state.black.store(true, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Requests swallowed whose request line starts with `prefix`.
    pub fn swallowed(&self, prefix: &str) -> usize {
        self.lines(prefix, false)
    }

    /// Of those, the ones ferry still waits on (has not closed).
    pub fn waiting(&self, prefix: &str) -> usize {
        self.lines(prefix, true)
    }

    fn lines(&self, prefix: &str, open_only: bool) -> usize {
        self.state
            .swallowed
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.line.starts_with(prefix))
            .filter(|s| !open_only || s.open.load(Ordering::SeqCst))
            .count()
    }

    /// Every swallowed request line (for assertion messages).
    pub fn requests(&self) -> Vec<String> {
        let swallowed = self.state.swallowed.lock().unwrap();
        swallowed.iter().map(|s| s.line.clone()).collect()
    }
}

async fn serve(state: Arc<State>, target: Option<String>, mut conn: TcpStream) {
    let upstream = match &target {
        Some(t) if !state.is_black() => TcpStream::connect(t).await.ok(),
        _ => None,
    };
    let Some(upstream) = upstream else {
        hold(&state, &mut conn, Vec::new()).await;
        return;
    };
    let (mut from_client, mut to_client) = conn.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let held = Arc::new(AtomicBool::new(false));
    let (st, h) = (state.clone(), held.clone());
    // Answers are relayed only while neither the hole nor this connection
    // has gone black; after that they are read and dropped.
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_upstream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if st.is_black() || h.load(Ordering::SeqCst) {
                continue;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        // A black hole does not hang up either: keep ferry's side open.
        if st.is_black() || h.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        drop(to_client);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state.is_black() {
            held.store(true, Ordering::SeqCst);
            hold(&state, &mut from_client, buf[..n].to_vec()).await;
            break;
        }
        if to_upstream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    answers.abort();
}

/// Reads what ferry sends (`first`, then more) and answers nothing, until
/// ferry hangs up.
async fn hold<R: AsyncReadExt + Unpin>(state: &State, conn: &mut R, first: Vec<u8>) {
    let mut pending = first;
    let mut open: Option<Arc<AtomicBool>> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if open.is_none() {
            if let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                let flag = Arc::new(AtomicBool::new(true));
                state.swallowed.lock().unwrap().push(Swallowed {
                    line: String::from_utf8_lossy(&pending[..end]).into_owned(),
                    open: flag.clone(),
                });
                open = Some(flag);
            }
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) if open.is_none() => pending.extend_from_slice(&buf[..n]),
            Ok(_) => {}
        }
    }
    if let Some(flag) = open {
        flag.store(false, Ordering::SeqCst);
    }
}
