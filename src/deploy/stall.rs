//! The agent's guard against a transfer that stops: every network wait of the write (the block
//! map, the image's answer, each read of its body) is watched, and a wait with no byte for the
//! stall timeout is declared a stall.
//!
//! The HTTP client bounds connecting only; a controller or network that stops sending in the
//! middle of a body would block a read forever. The write therefore runs on its own thread, and
//! the agent's thread polls a `Watch` the reads report to. Once a stall is declared, the blocked
//! read (should it ever return) and every later one answer an error, so the writer can never go
//! on to write the partition tables after the agent has given up and wiped them.

use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::node::humanize;

/// What the reads report and the guard reads, under one lock so that a read returning and the
/// guard declaring a stall cannot both win.
#[derive(Debug, Default)]
struct WatchState {
    /// The URL of the wait in progress, and since when; `None` between waits (the writer is busy
    /// with the disk, which is not a stall).
    waiting: Option<(String, Instant)>,
    /// Bytes of image body received so far.
    bytes: u64,
    /// Set once the writer has begun on the target: a stall after that leaves a disk to wipe.
    touched: bool,
    stalled: bool,
}

/// Shared between the writer's thread (which waits) and the agent's (which watches).
#[derive(Debug, Default)]
pub struct Watch(Mutex<WatchState>);

/// A transfer that stopped: nothing arrived from `url` for `limit`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("transfer from {url} stalled: no byte arrived for {} (after {bytes} bytes of the image; --stall-timeout)", humanize(*limit))]
pub struct Stalled {
    pub url: String,
    pub limit: Duration,
    pub bytes: u64,
}

impl Watch {
    pub fn new() -> Arc<Watch> {
        Arc::new(Watch::default())
    }

    fn state(&self) -> MutexGuard<'_, WatchState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `wait` (a network call) as a watched wait on `url`. Answers an error instead of its
    /// result when a stall was declared meanwhile.
    pub fn wait<T>(&self, url: &str, wait: impl FnOnce() -> T) -> io::Result<T> {
        self.begin(url)?;
        let out = wait();
        self.end()?;
        Ok(out)
    }

    fn begin(&self, url: &str) -> io::Result<()> {
        let mut s = self.state();
        if s.stalled {
            return Err(stalled_io());
        }
        s.waiting = Some((url.to_string(), Instant::now()));
        Ok(())
    }

    fn end(&self) -> io::Result<()> {
        let mut s = self.state();
        s.waiting = None;
        if s.stalled {
            return Err(stalled_io());
        }
        Ok(())
    }

    /// The writer is about to begin on the target.
    pub fn touch(&self) {
        self.state().touched = true;
    }

    /// Whether the writer had begun on the target.
    pub fn touched(&self) -> bool {
        self.state().touched
    }

    /// Declare a stall when the wait in progress has lasted `limit`; answers it once.
    pub fn check(&self, limit: Duration) -> Option<Stalled> {
        let mut s = self.state();
        if s.stalled {
            return None;
        }
        let (url, since) = s.waiting.as_ref()?;
        if since.elapsed() < limit {
            return None;
        }
        let stalled = Stalled { url: url.clone(), limit, bytes: s.bytes };
        s.stalled = true;
        Some(stalled)
    }
}

fn stalled_io() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the transfer stalled and the agent gave up on it")
}

/// A body whose every read is a watched wait, counting the bytes that arrive.
pub struct Watched<R> {
    inner: R,
    url: String,
    watch: Arc<Watch>,
    count: bool,
}

impl<R: Read> Watched<R> {
    /// `count`: whether the bytes are the image's (the block map's are not).
    pub fn new(inner: R, url: &str, watch: Arc<Watch>, count: bool) -> Self {
        Watched { inner, url: url.to_string(), watch, count }
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.watch.begin(&self.url)?;
        let got = self.inner.read(buf);
        let mut s = self.watch.state();
        s.waiting = None;
        if s.stalled {
            return Err(stalled_io());
        }
        if let (Ok(n), true) = (&got, self.count) {
            s.bytes += *n as u64;
        }
        got
    }
}

/// How often the agent looks at the watch: often enough that a stall is declared within a tenth
/// of the limit, never busier than every 10 ms.
pub fn poll_interval(limit: Duration) -> Duration {
    (limit / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that sends `data` and then blocks until `release` says so.
    struct Stops {
        data: Vec<u8>,
        release: std::sync::mpsc::Receiver<()>,
    }

    impl Read for Stops {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                let _ = self.release.recv_timeout(Duration::from_secs(10));
                return Ok(0);
            }
            let n = buf.len().min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_read_blocked_past_the_limit_is_a_stall_and_fails_once_released() {
        let watch = Watch::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut body = Watched::new(Stops { data: vec![7; 1000], release: rx }, "http://c/img", watch.clone(), true);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            body.read_to_end(&mut all).map(|_| all.len())
        });
        let limit = Duration::from_millis(100);
        let deadline = Instant::now() + Duration::from_secs(10);
        let stalled = loop {
            if let Some(s) = watch.check(limit) {
                break s;
            }
            assert!(Instant::now() < deadline, "no stall declared");
            std::thread::sleep(poll_interval(limit));
        };
        assert_eq!((stalled.url.as_str(), stalled.bytes), ("http://c/img", 1000));
        assert!(stalled.to_string().contains("stalled: no byte arrived for 0.1s"), "{stalled}");
        assert!(watch.check(limit).is_none(), "declared once");
        let _ = tx.send(());
        let got = reader.join().expect("reader thread");
        assert_eq!(got.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut), "a released read still fails");
    }

    #[test]
    fn time_between_reads_is_not_a_stall() {
        let watch = Watch::new();
        let mut body = Watched::new(&[1u8; 10][..], "http://c/img", watch.clone(), true);
        let mut buf = [0u8; 4];
        body.read_exact(&mut buf).expect("read");
        std::thread::sleep(Duration::from_millis(30));
        assert!(watch.check(Duration::from_millis(10)).is_none());
        assert!(!watch.touched());
    }
}
