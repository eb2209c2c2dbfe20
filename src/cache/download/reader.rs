//! Reading a blob: from the store, or from the temp file of a download
//! under way while it grows.
//!
//! A reader never receives the final byte of its response (the whole blob
//! or a range of it) before the blob's digest was checked, so a client can
//! never see a complete-looking wrong body: on a mismatch or a cut-off
//! upstream its response is aborted instead.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use super::Progress;
use crate::metrics::METRICS;
use crate::store::{ObjectBlob, ObjectRange};

/// Bounds of one read handed to a client, of a stored blob or a growing
/// file. A connection whose client is slower than the disk holds about
/// two of these (see `BUFFERS_PER_READER` and the connection's write
/// buffer in server/listen.rs), so the size is memory per slow client,
/// while each read is a hand-off to the blocking pool, which costs CPU
/// per chunk. So the readers share a budget: a few get large reads (1 MiB
/// chunks served one client at 1.8 GB/s where 128 KiB ones cost 60% more
/// CPU per GiB on a loaded machine), many get small ones (1 MiB chunks
/// held 1.4 GiB for 1,000 clients of a stored blob). benches/memory.sh.
const MIN_CHUNK: usize = 128 * 1024;
const MAX_CHUNK: usize = 1024 * 1024;
/// What all readers' chunks together aim at (the budget of the bounds).
const CHUNK_BUDGET: usize = 4 * 1024 * 1024;

/// Readers streaming now, across all blobs.
static READERS: AtomicUsize = AtomicUsize::new(0);

/// Counts a reader in `READERS` while it lives.
struct Counted;

impl Counted {
    fn new() -> Counted {
        READERS.fetch_add(1, Ordering::Relaxed);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        READERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// This reader's share of the budget: a power of two within the bounds.
fn chunk_len() -> usize {
    let share = CHUNK_BUDGET / READERS.load(Ordering::Relaxed).max(1);
    share
        .checked_ilog2()
        .map_or(MIN_CHUNK, |bits| 1 << bits)
        .clamp(MIN_CHUNK, MAX_CHUNK)
}

/// Where a blob's bytes are read from: a local file (stored, or the temp
/// file of a download), or an object in the object store.
#[derive(Clone)]
pub(crate) enum Source {
    File(Arc<File>),
    Object(ObjectBlob),
}

/// A blob to send: stored, or still arriving.
pub(crate) struct Blob {
    pub(super) source: Source,
    pub(super) size: Option<u64>,
    pub(super) progress: Option<watch::Receiver<Progress>>,
}

impl Blob {
    pub(crate) fn stored(file: File, size: u64) -> Blob {
        Blob {
            source: Source::File(Arc::new(file)),
            size: Some(size),
            progress: None,
        }
    }

    /// A blob stored in the object store.
    pub(crate) fn object(object: ObjectBlob) -> Blob {
        Blob {
            size: Some(object.size()),
            source: Source::Object(object),
            progress: None,
        }
    }

    /// Whether it comes from the store (not from a download under way).
    pub(crate) fn is_stored(&self) -> bool {
        self.progress.is_none()
    }

    /// The full size, when known (always, unless upstream sent no length).
    pub(crate) fn size(&self) -> Option<u64> {
        self.size
    }

    /// Another reader of the same blob, for another part of the same
    /// response. Reads are positional (`read_at`), so readers can share the
    /// file handle; an object is read with one ranged request per part.
    pub(crate) fn share(&self) -> Blob {
        Blob {
            source: self.source.clone(),
            size: self.size,
            progress: self.progress.clone(),
        }
    }

    /// The bytes from `start` up to `end` (exclusive; `None`: to the end).
    pub(crate) fn stream(
        self,
        start: u64,
        end: Option<u64>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        self.stream_part(start, end, true)
    }

    /// Like `stream`, for one part of a response; `last`: the part that
    /// ends the response. Only that part holds back its last byte until the
    /// digest is verified: the response cannot look complete before its
    /// own last byte, so the parts before it go out as they arrive.
    pub(crate) fn stream_part(
        self,
        start: u64,
        end: Option<u64>,
        last: bool,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        // A stored blob ends at its size; a growing one learns its end.
        let end = if self.progress.is_none() {
            end.or(self.size)
        } else {
            end
        };
        let reader = Reader {
            source: self.source,
            body: None,
            pos: start,
            end,
            progress: self.progress,
            hold_back: last,
            buffers: Buffers::default(),
            _counted: Counted::new(),
        };
        futures_util::stream::unfold(reader, |mut r| async move {
            let chunk = r.next_chunk().await?;
            if let Ok(bytes) = &chunk {
                METRICS.served(bytes.len() as u64);
            }
            Some((chunk, r))
        })
    }
}

struct Reader {
    source: Source,
    /// The ranged read of an object under way (from `pos`).
    body: Option<ObjectRange>,
    pos: u64,
    end: Option<u64>,
    progress: Option<watch::Receiver<Progress>>,
    /// Hold back the last byte until verified (see `Blob::stream_part`).
    hold_back: bool,
    buffers: Buffers,
    _counted: Counted,
}

impl Reader {
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            // How far the file may be read now, and whether that is final.
            let (readable, complete) = match &mut self.progress {
                None => (self.end.unwrap_or(0), true),
                Some(rx) => match &*rx.borrow_and_update() {
                    Progress::Starting => (0, false),
                    // Hold back the last byte of this response (of a range
                    // as of the whole blob) until the digest is verified.
                    Progress::Receiving { file, written, .. } => {
                        self.source = Source::File(file.clone());
                        let arrived = self.end.map_or(*written, |e| e.min(*written));
                        if self.hold_back {
                            (arrived.saturating_sub(1), false)
                        } else {
                            (arrived, false)
                        }
                    }
                    Progress::Done { source, size } => {
                        self.source = source.clone();
                        self.end = Some(self.end.map_or(*size, |e| e.min(*size)));
                        (*size, true)
                    }
                    Progress::Failed(e) => return Some(Err(io::Error::other(e.to_string()))),
                },
            };
            let stop = self.end.map_or(readable, |e| e.min(readable));
            if self.pos < stop {
                if let Source::Object(object) = &self.source {
                    // Only a stored blob is an object: `stop` is its end.
                    let (pos, object) = (self.pos, object.clone());
                    self.body.get_or_insert_with(|| object.range(pos, stop));
                    return Some(self.read_object(stop).await);
                }
                let len = (stop - self.pos).min(chunk_len() as u64) as usize;
                return Some(self.read(len).await);
            }
            if complete {
                return None;
            }
            let rx = self.progress.as_mut()?;
            if rx.changed().await.is_err() {
                return Some(Err(io::Error::other("download ended without a result")));
            }
        }
    }

    /// The next chunk of the object's ranged read.
    async fn read_object(&mut self, stop: u64) -> io::Result<Bytes> {
        let next = match &mut self.body {
            Some(body) => body.next().await,
            None => None,
        };
        match next {
            Some(Ok(bytes)) => {
                self.pos += bytes.len() as u64;
                Ok(bytes)
            }
            Some(Err(e)) => Err(e),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("object read ended at byte {} of {stop}", self.pos),
            )),
        }
    }

    async fn read(&mut self, len: usize) -> io::Result<Bytes> {
        let Source::File(file) = &self.source else {
            return Err(io::Error::other("not a file"));
        };
        let (file, pos) = (file.clone(), self.pos);
        let mut buf = self.buffers.take(len);
        // Positional reads: a growing file is shared with other readers,
        // and a stored one needs no seek.
        let buf = tokio::task::spawn_blocking(move || {
            let n = file.read_at(&mut buf, pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file shorter than expected",
                ));
            }
            buf.truncate(n);
            Ok(buf)
        })
        .await
        .map_err(io::Error::other)??;
        self.pos += buf.len() as u64;
        Ok(self.buffers.lend(buf))
    }
}

/// How many buffers one reader keeps: the chunk hyper is sending, the one
/// it has queued, and the one being filled.
const BUFFERS_PER_READER: usize = 3;

/// A reader's own read buffers, reused once the connection has sent
/// them. Why: a fresh buffer per chunk, allocated on whichever blocking
/// thread ran the read, spread the chunks over glibc's per-thread arenas,
/// and each arena kept its freed chunks resident (49 MiB peak for 20
/// readers of one download against 12 MiB idle, benches/memory.sh; 27 MiB
/// with these buffers and a bounded blocking pool). Reused buffers are
/// allocated here, on the async side, once per reader, and need no
/// zeroing after the first use.
#[derive(Default)]
struct Buffers {
    /// The chunks handed out, still referenced by this reader.
    lent: Vec<Bytes>,
}

impl Buffers {
    /// A buffer of `len` initialised bytes: a lent one the connection is
    /// done with, else a new one of exactly `len`. A returned buffer more
    /// than twice too large is let go, so that a trickle of small chunks
    /// (which a slow connection may queue many of) holds small buffers.
    fn take(&mut self, len: usize) -> Vec<u8> {
        let returned = self.lent.iter().position(Bytes::is_unique);
        let reused = returned
            .and_then(|i| self.lent.swap_remove(i).try_into_mut().ok())
            .map(Vec::from)
            .filter(|buf| buf.capacity() <= len.saturating_mul(2));
        if let Some(mut buf) = reused {
            // Exact: no amortised doubling past the chunk size.
            buf.reserve_exact(len.saturating_sub(buf.len()));
            buf.resize(len, 0);
            return buf;
        }
        // All still in use: forget the oldest (the connection frees it
        // once sent), so a reader never keeps more than its few.
        if self.lent.len() >= BUFFERS_PER_READER {
            self.lent.remove(0);
        }
        vec![0; len]
    }

    /// Hands out a filled buffer, keeping a reference to reuse it.
    fn lend(&mut self, buf: Vec<u8>) -> Bytes {
        let bytes = Bytes::from(buf);
        self.lent.push(bytes.clone());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::FutureExt;

    use super::*;
    use crate::cache::CacheError;
    use crate::domain::Digest;

    /// A download that has written `data` (of a larger blob) so far.
    fn arriving(data: &[u8]) -> (watch::Sender<Progress>, Arc<File>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        let file = Arc::new(file);
        let (tx, _) = watch::channel(Progress::Receiving {
            file: file.clone(),
            written: data.len() as u64,
            total: Some(1000),
        });
        (tx, file)
    }

    fn reader(
        tx: &watch::Sender<Progress>,
        file: &Arc<File>,
        start: u64,
        end: Option<u64>,
    ) -> Reader {
        Reader {
            source: Source::File(file.clone()),
            body: None,
            pos: start,
            end,
            progress: Some(tx.subscribe()),
            hold_back: true,
            buffers: Buffers::default(),
            _counted: Counted::new(),
        }
    }

    /// Reads `len` bytes, then checks the reader waits for more.
    async fn read_then_wait(reader: &mut Reader, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < len {
            got.extend_from_slice(&reader.next_chunk().await.unwrap().unwrap());
        }
        assert!(reader.next_chunk().now_or_never().is_none(), "did not wait");
        got
    }

    #[tokio::test]
    async fn a_range_already_arrived_keeps_its_last_byte_until_verified() {
        let data: Vec<u8> = (0..=255).cycle().take(600).map(|b| b as u8).collect();
        let (tx, file) = arriving(&data);
        for (start, end) in [(100, Some(300)), (0, Some(600)), (500, None)] {
            let mut r = reader(&tx, &file, start, end);
            let stop = end.unwrap_or(600) as usize - 1;
            let got = read_then_wait(&mut r, stop - start as usize).await;
            assert_eq!(got, data[start as usize..stop]);
        }
        // Verified: the rest follows.
        let mut r = reader(&tx, &file, 100, Some(300));
        read_then_wait(&mut r, 199).await;
        tx.send_replace(Progress::Done {
            source: Source::File(file.clone()),
            size: 600,
        });
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), data[299..300]);
        assert!(r.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn a_part_before_the_last_goes_out_whole_as_it_arrives() {
        let data: Vec<u8> = (0..=255).cycle().take(600).map(|b| b as u8).collect();
        let (tx, file) = arriving(&data);
        let mut inner = reader(&tx, &file, 100, Some(300));
        inner.hold_back = false;
        let got = read_then_wait(&mut inner, 200).await;
        assert_eq!(got, data[100..300]);
        tx.send_replace(Progress::Done {
            source: Source::File(file.clone()),
            size: 600,
        });
        assert!(inner.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn a_range_of_a_failed_download_ends_in_an_error() {
        let (tx, file) = arriving(&[7; 600]);
        let mut r = reader(&tx, &file, 100, Some(300));
        read_then_wait(&mut r, 199).await;
        tx.send_replace(Progress::Failed(CacheError::DigestMismatch(
            Digest::sha256_of(b"x"),
        )));
        assert!(matches!(r.next_chunk().await, Some(Err(_))));
    }

    #[test]
    fn a_sent_buffer_is_reused_without_a_new_allocation() {
        let mut buffers = Buffers::default();
        let first = buffers.take(1000);
        let at = first.as_ptr();
        let sent = buffers.lend(first);
        drop(sent); // the connection wrote it out
        let again = buffers.take(800);
        assert_eq!(again.as_ptr(), at);
        assert_eq!(again.len(), 800);
        let again = buffers.lend(again);
        drop(again);
        let grown = buffers.take(1000);
        assert_eq!(grown.as_ptr(), at);
    }

    #[test]
    fn a_reader_keeps_a_few_buffers_however_slow_its_connection() {
        let mut buffers = Buffers::default();
        let queued: Vec<Bytes> = (0..10)
            .map(|_| {
                let buf = buffers.take(1000);
                buffers.lend(buf)
            })
            .collect();
        assert_eq!(buffers.lent.len(), BUFFERS_PER_READER);
        assert_eq!(queued.len(), 10);
    }

    #[test]
    fn a_buffer_far_larger_than_the_chunk_is_let_go() {
        let mut buffers = Buffers::default();
        let big = buffers.take(256 * 1024);
        drop(buffers.lend(big));
        let small = buffers.take(1000);
        assert!(small.capacity() < 2000);
        assert!(buffers.lent.is_empty());
    }

    #[test]
    fn few_readers_read_large_chunks_and_many_small_ones() {
        let few: Vec<Counted> = (0..2).map(|_| Counted::new()).collect();
        // Other tests' readers may be counted too: only the bounds hold.
        assert!((MIN_CHUNK..=MAX_CHUNK).contains(&chunk_len()));
        let many: Vec<Counted> = (0..200).map(|_| Counted::new()).collect();
        assert_eq!(chunk_len(), MIN_CHUNK);
        drop((few, many));
        assert!(chunk_len().is_power_of_two());
    }
}
