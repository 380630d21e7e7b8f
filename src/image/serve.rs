//! kiln's own small HTTP server for boot artifacts: kernels, initrds, iPXE
//! scripts and images, from one directory, to machines on the boot network.
//!
//! GET and HEAD of regular files under the root, with byte ranges (so an
//! agent can resume a download). Nothing else: no listings, no uploads, no
//! path that leaves the root (checked after resolving symlinks). One thread
//! per connection, at most `MAX_CONNECTIONS` at once; one request per
//! connection (`Connection: close`), which iPXE and curl both handle.
//!
//! No client can hold the server (`Limits`): a request's headers must arrive
//! within a deadline, a POST body within another, a response must keep
//! moving at a minimum rate measured over minutes (a node on a slow link, or
//! one pausing for its disk, keeps its download; a client that stops reading
//! does not keep its slot), and one address holds at most a few connections,
//! so clients that trickle from one host cannot take the slots agents need.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once; more are answered 503.
pub const MAX_CONNECTIONS: usize = 64;

/// What one client may take of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once, from everyone.
    pub max_connections: usize,
    /// Connections served at once from one address; more are answered 503.
    pub per_client: usize,
    /// From accepting a connection to the end of its request's headers.
    pub header_deadline: Duration,
    /// From the end of the headers to the end of a POST body (at most `MAX_POST_BODY`).
    pub body_deadline: Duration,
    /// A response must send `min_bytes_per_window` in each window this long
    /// (or finish within it); a client reading slower is dropped.
    pub response_window: Duration,
    pub min_bytes_per_window: u64,
}

impl Default for Limits {
    /// Headers in 20 s and a body in 20 s (both are a few hundred bytes to
    /// 64 KiB: a healthy client sends them at once). Downloads at 4 MiB per
    /// 2 minutes, about 34 KiB/s: a node on a 1 Mbit/s link keeps its
    /// download, and so does one that pauses for up to about as long as the
    /// agent's own stall timeout (2 minutes) before it catches up. 8
    /// connections per address: an agent or a boot ROM uses one or two.
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            per_client: 8,
            header_deadline: Duration::from_secs(20),
            body_deadline: Duration::from_secs(20),
            response_window: Duration::from_secs(120),
            min_bytes_per_window: 4 << 20,
        }
    }
}
const MAX_HEADER: usize = 8192;
/// The largest POST body accepted; larger ones are answered 413.
pub const MAX_POST_BODY: usize = 64 * 1024;
/// The header an agent proves itself with, and the controller its answers (`deploy::auth`).
pub const AUTH_HEADER: &str = "Kiln-Agent-Auth";

/// A POST under `/agent/` as the routes see it.
#[derive(Debug, Clone, Copy)]
pub struct Posted<'a> {
    pub path: &'a str,
    pub body: &'a [u8],
    pub peer: SocketAddr,
    /// The `Kiln-Agent-Auth` header, when sent.
    pub auth: Option<&'a str>,
}

/// The answer to a POST: status, JSON body, and the `Kiln-Agent-Auth` header to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub auth: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: String) -> Reply {
        Reply { status, body, auth: None }
    }
}

/// Bytes served with byte ranges like a file: a file with some bytes replaced, a generated script.
pub trait Content: Send {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn content_type(&self) -> &'static str;
    /// Write bytes `start..end` to `out`.
    fn copy_range(&mut self, start: u64, end: u64, out: &mut dyn Write) -> io::Result<()>;
}

impl Content for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn content_type(&self) -> &'static str {
        "text/plain"
    }
    fn copy_range(&mut self, start: u64, end: u64, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self[start as usize..end as usize])
    }
}

/// What a GET under `/boot/` is answered with.
pub enum Generated {
    /// Refused or unknown: status and a JSON error.
    Refused(u16, String),
    Content(Box<dyn Content>),
}

/// Answers POST requests under `/agent/` and GET/HEAD requests under `/boot/` (content made for
/// the asker). Called on the connection's own thread; it may block (the deploy controller holds a
/// result's answer until the node's next boot is set).
pub trait PostRoutes: Send + Sync {
    fn post(&self, posted: &Posted<'_>) -> Reply;
    /// `None`: not a route of these (the file mounts are tried).
    fn get(&self, _path: &str, _peer: SocketAddr) -> Option<Generated> {
        None
    }
}

/// What a server serves: file trees under URL prefixes (the first that has
/// the file wins) and, optionally, POST routes under `/agent/`.
#[derive(Clone)]
pub struct Routes {
    /// (URL prefix ending in `/`, directory).
    pub mounts: Vec<(String, PathBuf)>,
    pub post: Option<Arc<dyn PostRoutes>>,
}

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
    /// The connections being answered, which stopping waits for (at most `DRAIN`).
    slots: Arc<Mutex<Slots>>,
}

/// How long stopping waits for the answers being written: a deploy controller that has just
/// recorded a node's report must not exit before the node hears it was taken.
const DRAIN: Duration = Duration::from_secs(5);

impl Server {
    /// Serve `root` on `listen` (port 0 picks a free port) in the background.
    pub fn start(root: &Path, listen: SocketAddr) -> Result<Server, ServeError> {
        Server::start_routes(Routes { mounts: vec![("/".into(), root.to_path_buf())], post: None }, listen)
    }

    /// Serve `routes` on `listen` in the background.
    pub fn start_routes(routes: Routes, listen: SocketAddr) -> Result<Server, ServeError> {
        Server::start_with_limits(routes, listen, Limits::default())
    }

    /// `start_routes` with other limits (tests use short deadlines).
    pub fn start_with_limits(routes: Routes, listen: SocketAddr, limits: Limits) -> Result<Server, ServeError> {
        let mut mounts = Vec::with_capacity(routes.mounts.len());
        for (prefix, root) in routes.mounts {
            let root = root.canonicalize().map_err(|source| ServeError::Root { path: root.clone(), source })?;
            if !root.is_dir() {
                return Err(ServeError::Root {
                    path: root,
                    source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                });
            }
            mounts.push((prefix, root));
        }
        let routes = Routes { mounts, post: routes.post };
        let listener = TcpListener::bind(listen).map_err(|source| ServeError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: listen, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let slots = Arc::new(Mutex::new(Slots::default()));
        let slots2 = slots.clone();
        let thread = std::thread::spawn(move || accept_loop(listener, routes, limits, stop2, slots2));
        tracing::info!(%addr, "serving boot artifacts");
        Ok(Server { addr, stop, thread: Some(thread), slots })
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
        // No new connection is taken now; let those being answered finish, for a while.
        let until = Instant::now() + DRAIN;
        while self.slots.lock().unwrap_or_else(|p| p.into_inner()).total > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
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

/// The connections being served, in all and per address.
#[derive(Default)]
struct Slots {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// One connection's place in `Slots`, given back when dropped.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    client: IpAddr,
}

/// Why a connection was not served.
enum Full {
    Server,
    Client,
}

fn take_slot(slots: &Arc<Mutex<Slots>>, client: IpAddr, limits: &Limits) -> Result<Slot, Full> {
    let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
    if s.total >= limits.max_connections {
        return Err(Full::Server);
    }
    let mine = s.per_client.entry(client).or_insert(0);
    if *mine >= limits.per_client {
        return Err(Full::Client);
    }
    *mine += 1;
    s.total += 1;
    Ok(Slot { slots: slots.clone(), client })
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_client.remove(&self.client);
            }
        }
    }
}

fn accept_loop(listener: TcpListener, routes: Routes, limits: Limits, stop: Arc<AtomicBool>, slots: Arc<Mutex<Slots>>) {
    let routes = Arc::new(routes);
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = conn else { continue };
        let accepted = Instant::now();
        let Ok(peer) = stream.peer_addr() else { continue };
        let slot = match take_slot(&slots, peer.ip(), &limits) {
            Ok(slot) => slot,
            Err(full) => {
                if matches!(full, Full::Client) {
                    tracing::debug!(%peer, limit = limits.per_client, "refused: too many connections from one address");
                }
                // A few hundred bytes into a new socket's buffer: this never blocks for long.
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = respond_status(&mut stream, 503, "Service Unavailable", false);
                continue;
            }
        };
        let routes = routes.clone();
        std::thread::spawn(move || {
            let _slot = slot;
            let _ = stream.set_write_timeout(Some(limits.response_window));
            if let Err(e) = handle(&mut stream, &routes, &limits, accepted) {
                if e.kind() == io::ErrorKind::TimedOut {
                    tracing::info!(%peer, "dropped a slow client: {e}");
                } else {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        });
    }
}

/// Reads from a connection until a deadline, however the bytes trickle in:
/// each read may wait only for what is left of the time.
struct Timed<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    what: &'static str,
    limit: Duration,
}

impl<'a> Timed<'a> {
    fn new(stream: &'a TcpStream, deadline: Instant, what: &'static str, limit: Duration) -> Self {
        Timed { stream, deadline, what, limit }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, format!("{} not received within {:?}", self.what, self.limit))
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        self.stream.set_read_timeout(Some(left))?;
        match (&mut &*self.stream).read(buf) {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(self.timed_out()),
            other => other,
        }
    }
}

/// A parsed request: method, path, and the headers kiln uses.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    range: Option<String>,
    content_length: Option<u64>,
    chunked: bool,
    auth: Option<String>,
}

/// Reads the request line and headers (at most `MAX_HEADER` bytes in all)
/// from `reader`, which keeps any body bytes that arrived with them.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEADER as u64;
    let mut next_line = |reader: &mut dyn BufRead| -> io::Result<Option<String>> {
        let mut line = String::new();
        let n = reader.take(budget).read_line(&mut line)?;
        budget = budget.saturating_sub(n as u64);
        Ok((n > 0 && line.ends_with('\n')).then_some(line))
    };
    let Some(line) = next_line(reader)? else { return Ok(None) };
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    if !version.starts_with("HTTP/1.") {
        return Ok(None);
    }
    let (mut range, mut content_length, mut chunked, mut auth) = (None, None, false, None);
    loop {
        let Some(h) = next_line(reader)? else { return Ok(None) };
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("content-length") {
                match value.parse() {
                    Ok(n) => content_length = Some(n),
                    Err(_) => return Ok(None),
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            } else if name.eq_ignore_ascii_case(AUTH_HEADER) {
                auth = Some(value.to_string());
            }
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("").to_string();
    Ok(Some(Request { method: method.to_string(), path, range, content_length, chunked, auth }))
}

fn handle(stream: &mut TcpStream, routes: &Routes, limits: &Limits, accepted: Instant) -> io::Result<()> {
    let deadline = accepted + limits.header_deadline;
    let mut reader = BufReader::new(Timed::new(&*stream, deadline, "request headers", limits.header_deadline));
    let req = match read_request(&mut reader) {
        Ok(Some(req)) => req,
        Ok(None) => return respond_status(stream, 400, "Bad Request", false),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = respond_status(stream, 408, "Request Timeout", false);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let head = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        "POST" if routes.post.is_some() => {
            let body = reader.get_mut();
            (body.deadline, body.what, body.limit) =
                (Instant::now() + limits.body_deadline, "request body", limits.body_deadline);
            return handle_post(&*stream, reader, &req, routes);
        }
        _ => return respond_status(stream, 405, "Method Not Allowed", false),
    };
    drop(reader);
    if req.path.starts_with("/boot/") {
        let peer = stream.peer_addr()?;
        match routes.post.as_ref().and_then(|r| r.get(&req.path, peer)) {
            Some(Generated::Content(content)) => return send(stream, &req, head, content, limits),
            Some(Generated::Refused(code, json)) => return respond_json(stream, code, &json),
            None => {}
        }
    }
    let found = routes.mounts.iter().find_map(|(prefix, root)| {
        let rest = req.path.strip_prefix(prefix.trim_end_matches('/'))?;
        rest.starts_with('/').then(|| resolve(root, rest)).flatten()
    });
    let Some(path) = found else {
        tracing::debug!(path = %req.path, "not found");
        return respond_status(stream, 404, "Not Found", head);
    };
    let file = File::open(&path)?;
    let len = file.metadata()?.len();
    send(stream, &req, head, Box::new(FileContent { file, len, content_type: content_type(&path) }), limits)
}

/// A regular file, served as it is.
struct FileContent {
    file: File,
    len: u64,
    content_type: &'static str,
}

impl Content for FileContent {
    fn len(&self) -> u64 {
        self.len
    }
    fn content_type(&self) -> &'static str {
        self.content_type
    }
    fn copy_range(&mut self, start: u64, end: u64, out: &mut dyn Write) -> io::Result<()> {
        use std::io::Seek;
        self.file.seek(io::SeekFrom::Start(start))?;
        let mut buf = vec![0u8; 256 << 10];
        let mut left = end - start;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being served"));
            }
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Answer a GET or HEAD with `content`, honouring a single byte range.
fn send(
    stream: &mut TcpStream,
    req: &Request,
    head: bool,
    mut content: Box<dyn Content>,
    limits: &Limits,
) -> io::Result<()> {
    let len = content.len();
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
        content.content_type(),
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
    let mut paced = Paced::new(stream, limits, end - start);
    content.copy_range(start, end, &mut paced)?;
    stream.flush()
}

/// The client's side of a response body: drops a client that takes longer than
/// `response_window` for each `min_bytes_per_window` (or for the rest, when less is left): a
/// write may wait only for what is left of its window.
struct Paced<'a> {
    stream: &'a TcpStream,
    limits: &'a Limits,
    /// The bytes asked for, for the error.
    len: u64,
    window_start: Instant,
    window_sent: u64,
}

impl<'a> Paced<'a> {
    fn new(stream: &'a TcpStream, limits: &'a Limits, len: u64) -> Paced<'a> {
        Paced { stream, limits, len, window_start: Instant::now(), window_sent: 0 }
    }

    fn slow(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "response slower than {} bytes per {:?} ({} bytes asked for)",
                self.limits.min_bytes_per_window, self.limits.response_window, self.len
            ),
        )
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let now = Instant::now();
        if self.window_sent >= self.limits.min_bytes_per_window {
            (self.window_start, self.window_sent) = (now, 0);
        }
        let until = (self.window_start + self.limits.response_window).saturating_duration_since(now);
        if until.is_zero() {
            return Err(self.slow());
        }
        self.stream.set_write_timeout(Some(until))?;
        match (&mut &*self.stream).write(buf) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "client closed the connection")),
            Ok(k) => {
                self.window_sent += k as u64;
                Ok(k)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(self.slow()),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        (&mut &*self.stream).flush()
    }
}

/// A POST under `/agent/`: the body (with a Content-Length, at most
/// `MAX_POST_BODY`) goes to the routes' handler, its answer back as JSON.
fn handle_post(stream: &TcpStream, mut reader: BufReader<Timed<'_>>, req: &Request, routes: &Routes) -> io::Result<()> {
    let Some(post) = routes.post.as_ref() else {
        return respond_json(stream, 405, &error_json("method not allowed"));
    };
    if !req.path.starts_with("/agent/") {
        return respond_json(stream, 404, &error_json(&format!("no POST route {}", req.path)));
    }
    if req.chunked {
        return respond_json(stream, 411, &error_json("a Content-Length is required (no chunked bodies)"));
    }
    let Some(len) = req.content_length else {
        return respond_json(stream, 411, &error_json("a Content-Length is required"));
    };
    if len > MAX_POST_BODY as u64 {
        return respond_json(stream, 413, &error_json(&format!("body of {len} bytes is over {MAX_POST_BODY}")));
    }
    let mut body = Vec::with_capacity(len as usize);
    if let Err(e) = (&mut reader).take(len).read_to_end(&mut body) {
        if e.kind() == io::ErrorKind::TimedOut {
            let _ = respond_json(stream, 408, &error_json(&e.to_string()));
        }
        return Err(e);
    }
    drop(reader);
    if body.len() as u64 != len {
        return respond_json(stream, 400, &error_json("body ended before its Content-Length"));
    }
    let peer = stream.peer_addr()?;
    let reply = post.post(&Posted { path: &req.path, body: &body, peer, auth: req.auth.as_deref() });
    tracing::debug!(path = %req.path, status = reply.status, %peer, "agent request");
    respond(stream, reply.status, &reply.body, reply.auth.as_deref())
}

/// `{"error": message}`.
pub fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn respond_json(stream: &TcpStream, code: u16, body: &str) -> io::Result<()> {
    respond(stream, code, body, None)
}

fn respond(mut stream: &TcpStream, code: u16, body: &str, auth: Option<&str>) -> io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        _ => "Status",
    };
    let auth = auth.map(|a| format!("{}: {a}\r\n", AUTH_HEADER)).unwrap_or_default();
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes())
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
    if code == 503 {
        msg.push_str("Retry-After: 1\r\n");
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

    struct Echo;

    impl PostRoutes for Echo {
        fn post(&self, p: &Posted<'_>) -> Reply {
            let body = serde_json::json!({"path": p.path, "len": p.body.len(), "auth": p.auth}).to_string();
            Reply { status: 200, body, auth: Some("echoed".into()) }
        }
        fn get(&self, path: &str, _: SocketAddr) -> Option<Generated> {
            match path {
                "/boot/script" => Some(Generated::Content(Box::new(b"#!ipxe\nshell\n".to_vec()))),
                "/boot/secret" => Some(Generated::Refused(403, error_json("not for you"))),
                _ => None,
            }
        }
    }

    /// Send `request` raw and answer the status line and body.
    fn exchange(addr: SocketAddr, request: &[u8]) -> (String, String) {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(request).expect("send");
        // Half-close: a server still waiting for body bytes sees the end instead.
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        let status = text.lines().next().unwrap_or("").to_string();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// Answers after a pause, saying when it was asked and when it is done.
    struct Slow {
        asked: std::sync::mpsc::Sender<()>,
        done: Arc<AtomicBool>,
    }

    impl PostRoutes for Slow {
        fn post(&self, _: &Posted<'_>) -> Reply {
            let _ = self.asked.send(());
            std::thread::sleep(Duration::from_millis(400));
            self.done.store(true, Ordering::SeqCst);
            Reply::json(200, "{}".into())
        }
    }

    #[test]
    fn stopping_lets_an_answer_being_made_reach_its_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (asked, heard) = std::sync::mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let slow = Slow { asked, done: done.clone() };
        let routes = Routes { mounts: vec![("/files/".into(), dir.path().to_path_buf())], post: Some(Arc::new(slow)) };
        let server = Server::start_routes(routes, "127.0.0.1:0".parse().expect("addr")).expect("starts");
        let addr = server.addr();
        let client =
            std::thread::spawn(move || exchange(addr, b"POST /agent/booted HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"));
        heard.recv_timeout(Duration::from_secs(10)).expect("the request arrived");
        // A controller stops its server once the node's report is recorded, then exits: the
        // answer must be out by then.
        server.stop();
        assert!(done.load(Ordering::SeqCst), "stop returned while an answer was still being made");
        let (status, _) = client.join().expect("client");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    #[test]
    fn post_routes_take_bounded_bodies_beside_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.json"), b"{}").expect("write");
        let routes = Routes { mounts: vec![("/files/".into(), dir.path().to_path_buf())], post: Some(Arc::new(Echo)) };
        let server = Server::start_routes(routes, "127.0.0.1:0".parse().expect("addr")).expect("starts");
        let addr = server.addr();
        let (status, _) = exchange(addr, b"GET /files/a.json HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (status, _) = exchange(addr, b"GET /a.json HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 404 Not Found", "only under the prefix");
        let (status, body) = exchange(addr, b"POST /agent/hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", r#"{"auth":null,"len":5,"path":"/agent/hello"}"#)
        );
        let (_, body) =
            exchange(addr, b"POST /agent/hello HTTP/1.1\r\nkiln-agent-auth: node=n1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(body, r#"{"auth":"node=n1","len":0,"path":"/agent/hello"}"#);
        let (status, body) = exchange(addr, b"GET /boot/script HTTP/1.1\r\nRange: bytes=0-5\r\n\r\n");
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 206 Partial Content", "#!ipxe"));
        let (status, _) = exchange(addr, b"GET /boot/secret HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 403 Forbidden");
        let (status, _) = exchange(addr, b"GET /boot/other HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, _) = exchange(addr, b"POST /agent/hello HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 411 Length Required");
        let big = format!("POST /agent/hello HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_POST_BODY + 1);
        let (status, _) = exchange(addr, big.as_bytes());
        assert_eq!(status, "HTTP/1.1 413 Content Too Large");
        let (status, _) = exchange(addr, b"POST /files/a.json HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 404 Not Found", "no uploads");
        let (status, _) = exchange(addr, b"POST /agent/x HTTP/1.1\r\nContent-Length: 9\r\n\r\nshort");
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "a body shorter than its length");
    }
}
