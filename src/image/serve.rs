//! kiln's own small HTTP server for boot artifacts: kernels, initrds, iPXE
//! scripts and images, from one directory, to machines on the boot network.
//!
//! GET and HEAD of regular files under the root, with byte ranges (so an
//! agent can resume a download). Nothing else: no listings, no uploads, no
//! path that leaves the root (checked after resolving symlinks). One thread
//! per connection, at most `MAX_CONNECTIONS` at once; one request per
//! connection (`Connection: close`), which iPXE and curl both handle.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once; more are answered 503.
pub const MAX_CONNECTIONS: usize = 64;
const MAX_HEADER: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serve directory {}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A running server; stops when `stop` is called or it is dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `root` on `listen` (port 0 picks a free port) in the background.
    pub fn start(root: &Path, listen: SocketAddr) -> Result<Server, ServeError> {
        let root = root.canonicalize().map_err(|source| ServeError::Root { path: root.to_path_buf(), source })?;
        if !root.is_dir() {
            return Err(ServeError::Root {
                path: root,
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let listener = TcpListener::bind(listen).map_err(|source| ServeError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: listen, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || accept_loop(listener, root, stop2));
        tracing::info!(%addr, "serving boot artifacts");
        Ok(Server { addr, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Block until the server stops (it does not, unless stopped elsewhere).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

fn accept_loop(listener: TcpListener, root: PathBuf, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    let root = Arc::new(root);
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = conn else { continue };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = respond_status(&mut stream, 503, "Service Unavailable", false);
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (root, active) = (root.clone(), active.clone());
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(300)));
            if let Err(e) = handle(&mut stream, &root) {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// A parsed request: method, path, and the Range header if any.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    range: Option<String>,
}

fn read_request(stream: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream.take(MAX_HEADER as u64));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    if !version.starts_with("HTTP/1.") {
        return Ok(None);
    }
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("").to_string();
    Ok(Some(Request { method: method.to_string(), path, range }))
}

fn handle(stream: &mut TcpStream, root: &Path) -> io::Result<()> {
    let Some(req) = read_request(stream)? else {
        return respond_status(stream, 400, "Bad Request", false);
    };
    let head = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return respond_status(stream, 405, "Method Not Allowed", false),
    };
    let Some(path) = resolve(root, &req.path) else {
        tracing::debug!(path = %req.path, "not found");
        return respond_status(stream, 404, "Not Found", head);
    };
    let mut file = File::open(&path)?;
    let len = file.metadata()?.len();
    let (status, start, end) = match req.range.as_deref().map(|r| parse_range(r, len)) {
        None => (200, 0, len),
        Some(Some((s, e))) => (206, s, e),
        Some(None) => {
            let msg = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return stream.write_all(msg.as_bytes());
        }
    };
    let mut header = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        if status == 200 { "OK" } else { "Partial Content" },
        content_type(&path),
        end - start
    );
    if status == 206 {
        header.push_str(&format!("Content-Range: bytes {start}-{}/{len}\r\n", end.saturating_sub(1)));
    }
    header.push_str("\r\n");
    stream.write_all(header.as_bytes())?;
    tracing::debug!(path = %req.path, status, bytes = end - start, "serving");
    if head || end == start {
        return Ok(());
    }
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(start))?;
    let copied = io::copy(&mut file.take(end - start), stream)?;
    if copied != end - start {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being served"));
    }
    stream.flush()
}

fn respond_status(stream: &mut TcpStream, code: u16, reason: &str, head: bool) -> io::Result<()> {
    let body = format!("{code} {reason}\n");
    let mut msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        msg.push_str("Allow: GET, HEAD\r\n");
    }
    msg.push_str("\r\n");
    if !head {
        msg.push_str(&body);
    }
    stream.write_all(msg.as_bytes())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("ipxe") | Some("txt") => "text/plain",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The file under `root` a URL path names, or `None` when it names nothing
/// servable: not found, not a regular file, or outside the root.
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let rel = decoded.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|seg| seg == ".." || seg.contains('\0') || seg.contains('\\')) {
        return None;
    }
    let full = root.join(rel).canonicalize().ok()?;
    // A symlink may still point out of the root: compare resolved paths.
    if !full.starts_with(root) || !full.is_file() {
        return None;
    }
    Some(full)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` as a half-open range within `len`;
/// `None` when unsatisfiable or not a single byte range.
pub fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return None;
        }
        return Some((len.saturating_sub(n), len));
    }
    let start: u64 = a.parse().ok()?;
    if start >= len {
        return None;
    }
    let end = if b.is_empty() { len } else { b.parse::<u64>().ok()?.saturating_add(1).min(len) };
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-2", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        std::fs::write(root.join("boot/vmlinuz"), b"k").expect("write");
        std::fs::write(dir.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).expect("symlink");
        let root = root.canonicalize().expect("canonical");
        assert!(resolve(&root, "/boot/vmlinuz").is_some());
        assert!(resolve(&root, "/boot/%76mlinuz").is_some());
        assert!(resolve(&root, "/../secret").is_none());
        assert!(resolve(&root, "/boot/%2e%2e/%2e%2e/secret").is_none());
        assert!(resolve(&root, "/link").is_none(), "a symlink out of the root is not served");
        assert!(resolve(&root, "/boot").is_none(), "directories are not listed");
        assert!(resolve(&root, "/").is_none());
    }
}
