//! A small real HTTP(S) server that serves a recorded Redfish tree by path and injects faults.
//!
//! It speaks plain HTTP/1.1 over std `TcpListener` (one thread per
//! connection, `Connection: close`), optionally inside a rustls server
//! session. GETs are answered from `<root>/<path>/index.json`; PATCHes are
//! merged into an in-memory copy (with ETag and If-Match like bmcweb);
//! POSTs to `/Actions/` paths are accepted and recorded. Every request is
//! logged so a test can see what kiln actually sent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{read_request, Accepting};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub if_match: Option<String>,
    pub authorization: Option<String>,
    pub body: String,
}

/// What to do instead of answering normally.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer with this status and a Redfish error body carrying `message`.
    Status(u16, String),
    /// Sleep this long before answering normally.
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Fault {
    /// `None`: any method.
    method: Option<String>,
    path_contains: String,
    kind: FaultKind,
    /// `None`: every time.
    remaining: Option<usize>,
}

#[derive(Default)]
pub struct Options {
    /// Folder holding `redfish/v1/...` (a recorded tree); `None` serves only files.
    pub root: Option<PathBuf>,
    /// Basic-auth user and password every `/redfish/v1/...` request but the root must carry.
    pub auth: Option<(String, String)>,
    /// Send `ETag` headers and check `If-Match` on PATCH.
    pub etags: bool,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

struct Shared {
    options: Options,
    overlay: Mutex<HashMap<String, Value>>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    faults: Mutex<Vec<Fault>>,
    seen: Mutex<Vec<Seen>>,
}

pub struct RecordedServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: Accepting,
}

impl RecordedServer {
    pub fn start(options: Options) -> Self {
        let shared = Arc::new(Shared {
            options,
            overlay: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            faults: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let server = Accepting::start(move |stream| serve_connection(&s, stream));
        RecordedServer { addr: server.addr, shared, _server: server }
    }

    /// Serve the recorded tree at `tests/fixtures/redfish/<name>`.
    pub fn recorded(name: &str, auth: Option<(&str, &str)>) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redfish").join(name);
        assert!(root.join("redfish/v1/index.json").is_file(), "fixture tree {} missing", root.display());
        RecordedServer::start(Options {
            root: Some(root),
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
            etags: true,
            tls: None,
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.shared.options.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Answer `status` to requests whose path contains `path_contains`, `times` times (or always).
    /// `method` `None` matches any method.
    pub fn fail(&self, method: Option<&str>, path_contains: &str, status: u16, message: &str, times: Option<usize>) {
        self.push_fault(method, path_contains, FaultKind::Status(status, message.to_string()), times);
    }

    /// Delay answers to matching requests.
    pub fn delay(&self, method: Option<&str>, path_contains: &str, by: Duration, times: Option<usize>) {
        self.push_fault(method, path_contains, FaultKind::Delay(by), times);
    }

    fn push_fault(&self, method: Option<&str>, path_contains: &str, kind: FaultKind, remaining: Option<usize>) {
        self.shared.faults.lock().expect("faults lock").push(Fault {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            kind,
            remaining,
        });
    }

    /// Serve raw bytes at `path` (an image file for virtual media).
    pub fn add_file(&self, path: &str, bytes: Vec<u8>) {
        self.shared.files.lock().expect("files lock").insert(path.to_string(), bytes);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen lock").clone()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests().iter().filter(|r| r.method == method && r.path == path).count()
    }

    /// The current state of a resource (recorded, with any PATCHes applied).
    pub fn resource(&self, path: &str) -> Option<Value> {
        load(&self.shared, path)
    }

    /// The ETag the server gives a resource now.
    pub fn etag_of(&self, path: &str) -> Option<String> {
        load(&self.shared, path).map(|v| etag(&v))
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn serve_connection(shared: &Shared, tcp: TcpStream) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let mut stream: Box<dyn Stream> = match &shared.options.tls {
        Some(config) => match rustls::ServerConnection::new(config.clone()) {
            Ok(conn) => Box::new(rustls::StreamOwned::new(conn, tcp)),
            Err(_) => return,
        },
        None => Box::new(tcp),
    };
    // A client that refuses our certificate ends the handshake; reading then fails and we stop.
    let Some((method, target, headers, body)) = read_request(&mut stream) else {
        return;
    };
    let path = target.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
    let path = if path.is_empty() { "/".to_string() } else { path };
    let header = |name: &str| headers.get(name).cloned();
    shared.seen.lock().expect("seen lock").push(Seen {
        method: method.clone(),
        path: path.clone(),
        if_match: header("if-match"),
        authorization: header("authorization"),
        body: body.clone(),
    });

    if let Some(fault) = take_fault(shared, &method, &path) {
        match fault {
            FaultKind::Status(status, message) => {
                return respond_json(&mut stream, status, &error_body(&message), None);
            }
            FaultKind::Delay(by) => thread::sleep(by),
        }
    }

    if method == "GET" {
        if let Some(bytes) = shared.files.lock().expect("files lock").get(&path).cloned() {
            return respond(&mut stream, 200, "application/octet-stream", &bytes, None);
        }
    }
    if let Some((user, password)) = &shared.options.auth {
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        if path != "/redfish/v1" && header("authorization").as_deref() != Some(expected.as_str()) {
            return respond_json(&mut stream, 401, &error_body("Incorrect username or password"), None);
        }
    }
    match method.as_str() {
        "GET" => match load(shared, &path) {
            Some(v) => {
                let tag = shared.options.etags.then(|| etag(&v));
                respond_json(&mut stream, 200, &v, tag.as_deref())
            }
            None => respond_json(&mut stream, 404, &error_body(&format!("{path} not found")), None),
        },
        "PATCH" => {
            let Some(current) = load(shared, &path) else {
                return respond_json(&mut stream, 404, &error_body(&format!("{path} not found")), None);
            };
            if shared.options.etags {
                if let Some(m) = header("if-match") {
                    if m != etag(&current) {
                        return respond_json(&mut stream, 412, &error_body("the ETag does not match"), None);
                    }
                }
            }
            let Ok(patch) = serde_json::from_str::<Value>(&body) else {
                return respond_json(&mut stream, 400, &error_body("malformed JSON"), None);
            };
            let mut merged = current;
            merge(&mut merged, &patch);
            shared.overlay.lock().expect("overlay lock").insert(path, merged);
            respond(&mut stream, 204, "application/json", b"", None)
        }
        "POST" if path.contains("/Actions/") => respond(&mut stream, 204, "application/json", b"", None),
        _ => respond_json(&mut stream, 405, &error_body("method not allowed"), None),
    }
}

fn take_fault(shared: &Shared, method: &str, path: &str) -> Option<FaultKind> {
    let mut faults = shared.faults.lock().expect("faults lock");
    let fault = faults.iter_mut().find(|f| {
        f.method.as_deref().is_none_or(|m| m == method) && path.contains(&f.path_contains) && f.remaining != Some(0)
    })?;
    if let Some(n) = fault.remaining.as_mut() {
        *n -= 1;
    }
    Some(fault.kind.clone())
}

fn load(shared: &Shared, path: &str) -> Option<Value> {
    if let Some(v) = shared.overlay.lock().expect("overlay lock").get(path) {
        return Some(v.clone());
    }
    let root = shared.options.root.as_ref()?;
    let file = root.join(path.trim_start_matches('/')).join("index.json");
    let text = std::fs::read_to_string(file).ok()?;
    serde_json::from_str(&text).ok()
}

fn etag(v: &Value) -> String {
    let digest = Sha256::digest(v.to_string().as_bytes());
    format!("\"{}\"", &hex::encode(digest)[..16])
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn error_body(message: &str) -> Value {
    json!({"error": {"code": "Base.1.0.GeneralError", "message": message,
        "@Message.ExtendedInfo": [{"MessageId": "Base.1.0.GeneralError", "Message": message}]}})
}

fn respond_json(stream: &mut Box<dyn Stream>, status: u16, body: &Value, etag: Option<&str>) {
    respond(stream, status, "application/json", body.to_string().as_bytes(), etag)
}

fn respond(stream: &mut Box<dyn Stream>, status: u16, content_type: &str, body: &[u8], etag: Option<&str>) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        401 => "Unauthorized",
        404 => "Not Found",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(tag) = etag {
        head.push_str(&format!("ETag: {tag}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}
