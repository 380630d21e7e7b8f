//! A small real HTTP(S) server that serves a recorded Redfish tree by path and injects faults.
//!
//! It speaks plain HTTP/1.1 over std `TcpListener` (one thread per
//! connection, `Connection: close`), optionally inside a rustls server
//! session. GETs are answered from `<root>/<path>/index.json`; PATCHes are
//! merged into an in-memory copy (with ETag and If-Match like bmcweb);
//! POSTs to `/Actions/` paths are accepted and recorded. Firmware updates (a
//! multipart push to the tree's `MultipartHttpPushUri`, or its `SimpleUpdate`
//! action) start a Task that runs as the test scripts it, the way NVIDIA's
//! bmcweb-based BMCs run theirs (see README.md beside this file). Every
//! request is logged so a test can see what kiln actually sent.

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

use super::http::{read_request_raw, Accepting};

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

/// How the Tasks of firmware updates run.
#[derive(Debug, Clone)]
pub enum TaskScript {
    /// Running for `polls - 1` reads of the Task (percent rising), then Completed.
    Completes { polls: usize },
    /// Running for `polls - 1` reads, then Exception with this message.
    Fails { polls: usize, message: String },
    /// Running forever.
    Never,
}

/// What the server does with an update: how its Task runs, and which inventory members get
/// which `Version` once it completes.
#[derive(Debug, Clone)]
pub struct UpdateBehaviour {
    pub script: TaskScript,
    pub sets: Vec<(String, String)>,
}

impl Default for UpdateBehaviour {
    fn default() -> Self {
        UpdateBehaviour { script: TaskScript::Completes { polls: 3 }, sets: Vec::new() }
    }
}

/// One multipart push as the server received it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub content_type: String,
    pub content_length: Option<String>,
    pub chunked: bool,
    /// The `UpdateParameters` part.
    pub parameters: Value,
    pub file_name: String,
    /// The `UpdateFile` part.
    pub file: Vec<u8>,
}

struct Task {
    id: usize,
    script: TaskScript,
    sets: Vec<(String, String)>,
    target_uri: String,
    polls: usize,
}

#[derive(Default)]
struct Updates {
    behaviour: UpdateBehaviour,
    uploads: Vec<Upload>,
    simple: Vec<Value>,
    tasks: Vec<Task>,
}

struct Shared {
    options: Options,
    updates: Mutex<Updates>,
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
            updates: Mutex::new(Updates::default()),
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

    /// How the Tasks of later updates run, and what they change.
    pub fn on_update(&self, behaviour: UpdateBehaviour) {
        self.shared.updates.lock().expect("updates lock").behaviour = behaviour;
    }

    /// Every multipart push received.
    pub fn uploads(&self) -> Vec<Upload> {
        self.shared.updates.lock().expect("updates lock").uploads.clone()
    }

    /// The bodies of every SimpleUpdate received.
    pub fn simple_updates(&self) -> Vec<Value> {
        self.shared.updates.lock().expect("updates lock").simple.clone()
    }

    /// How often each Task was read, by Task id.
    pub fn task_polls(&self) -> Vec<usize> {
        self.shared.updates.lock().expect("updates lock").tasks.iter().map(|t| t.polls).collect()
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

    /// Replace a resource (a variant of the recorded tree built at test time).
    pub fn set(&self, path: &str, value: Value) {
        self.shared.overlay.lock().expect("overlay lock").insert(path.to_string(), value);
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
    let Some((method, target, headers, raw)) = read_request_raw(&mut stream) else {
        return;
    };
    let body = String::from_utf8_lossy(&raw).into_owned();
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
    if let Some((status, reply, location)) = update_route(shared, &method, &path, &headers, &raw) {
        return respond_full(&mut stream, status, &reply, location.as_deref());
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

/// The firmware update routes: a push to the tree's `MultipartHttpPushUri`, its `SimpleUpdate`
/// action, and the Tasks (and task monitors) they start. `None`: not an update request.
fn update_route(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &std::collections::BTreeMap<String, String>,
    raw: &[u8],
) -> Option<(u16, Value, Option<String>)> {
    let service = load(shared, "/redfish/v1/UpdateService");
    let push_uri = service.as_ref().and_then(|s| s["MultipartHttpPushUri"].as_str().map(str::to_string));
    let simple_uri = service.as_ref().and_then(|s| {
        s.pointer("/Actions/#UpdateService.SimpleUpdate/target").and_then(Value::as_str).map(str::to_string)
    });
    if method == "POST" && push_uri.as_deref() == Some(path) {
        let content_type = headers.get("content-type").cloned().unwrap_or_default();
        let Some(upload) = parse_multipart(&content_type, raw, headers) else {
            return Some((
                400,
                error_body("the body is not multipart/form-data with UpdateParameters and UpdateFile"),
                None,
            ));
        };
        let mut updates = shared.updates.lock().expect("updates lock");
        updates.uploads.push(upload);
        return Some(start_task(&mut updates, path));
    }
    if method == "POST" && simple_uri.as_deref() == Some(path) {
        let Ok(body) = serde_json::from_slice::<Value>(raw) else {
            return Some((400, error_body("malformed JSON"), None));
        };
        if body["ImageURI"].as_str().is_none() {
            return Some((400, error_body("ImageURI is required"), None));
        }
        let mut updates = shared.updates.lock().expect("updates lock");
        updates.simple.push(body);
        return Some(start_task(&mut updates, path));
    }
    let rest = path.strip_prefix("/redfish/v1/TaskService/Tasks/")?;
    if method != "GET" {
        return None;
    }
    let (id, monitor) = match rest.strip_suffix("/Monitor") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let id: usize = id.parse().ok()?;
    let mut updates = shared.updates.lock().expect("updates lock");
    let task = updates.tasks.iter_mut().find(|t| t.id == id)?;
    task.polls += 1;
    let (state, percent, message) = match &task.script {
        TaskScript::Completes { polls } if task.polls >= *polls => ("Completed", 100, None),
        TaskScript::Fails { polls, message } if task.polls >= *polls => {
            ("Exception", 100 * (polls - 1) / polls, Some(message.clone()))
        }
        TaskScript::Completes { polls } | TaskScript::Fails { polls, .. } => {
            ("Running", 100 * task.polls / polls, None)
        }
        TaskScript::Never => ("Running", 10, None),
    };
    let completed_now = state == "Completed" && !task.sets.is_empty();
    let sets = if completed_now { std::mem::take(&mut task.sets) } else { Vec::new() };
    let body = task_body(task.id, &task.target_uri, state, percent, message.as_deref());
    drop(updates);
    for (member, version) in sets {
        if let Some(mut v) = load(shared, &member) {
            v["Version"] = json!(version);
            shared.overlay.lock().expect("overlay lock").insert(member, v);
        }
    }
    if monitor {
        // bmcweb's task monitor: 202 with the Task while it runs, the Task itself once done.
        let status = if state == "Running" { 202 } else { 200 };
        return Some((status, body, None));
    }
    Some((200, body, None))
}

fn start_task(updates: &mut Updates, target_uri: &str) -> (u16, Value, Option<String>) {
    let id = updates.tasks.len();
    let b = updates.behaviour.clone();
    updates.tasks.push(Task { id, script: b.script, sets: b.sets, target_uri: target_uri.to_string(), polls: 0 });
    let monitor = format!("/redfish/v1/TaskService/Tasks/{id}/Monitor");
    (202, task_body(id, target_uri, "Running", 0, None), Some(monitor))
}

/// A Task as bmcweb writes one (TaskEvent registry messages, `Payload` naming the request).
fn task_body(id: usize, target_uri: &str, state: &str, percent: usize, failure: Option<&str>) -> Value {
    let mut messages = vec![json!({"MessageId": "TaskEvent.1.0.TaskStarted",
        "Message": format!("The task with Id '{id}' has started."), "Severity": "OK"})];
    match (state, failure) {
        ("Completed", _) => messages.push(json!({"MessageId": "TaskEvent.1.0.TaskCompletedOK",
            "Message": format!("The task with Id '{id}' has Completed."), "Severity": "OK"})),
        (_, Some(why)) => messages.push(json!({"MessageId": "TaskEvent.1.0.TaskAborted",
            "Message": format!("The task with Id '{id}' has been aborted: {why}"), "Severity": "Critical"})),
        _ => {}
    }
    json!({
        "@odata.id": format!("/redfish/v1/TaskService/Tasks/{id}"),
        "@odata.type": "#Task.v1_4_3.Task",
        "Id": id.to_string(),
        "Name": "Task",
        "TaskMonitor": format!("/redfish/v1/TaskService/Tasks/{id}/Monitor"),
        "TaskState": state,
        "TaskStatus": if failure.is_some() && state == "Exception" { "Critical" } else { "OK" },
        "PercentComplete": percent,
        "Messages": messages,
        "Payload": {"HttpOperation": "POST", "TargetUri": target_uri, "HttpHeaders": [], "JsonBody": "null"},
    })
}

/// The two parts of a Redfish multipart push, or `None` when the body is not one.
fn parse_multipart(
    content_type: &str,
    raw: &[u8],
    headers: &std::collections::BTreeMap<String, String>,
) -> Option<Upload> {
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = raw.strip_prefix(&delimiter[..])?;
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, &[b"\r\n".as_slice(), &delimiter].concat())?;
        parts.push(&rest[..end]);
        rest = &rest[end + 2 + delimiter.len()..];
    }
    let mut parameters = None;
    let mut file = None;
    for part in parts {
        let split = find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let content = &part[split + 4..];
        if head.contains("name=\"UpdateParameters\"") {
            parameters = serde_json::from_slice::<Value>(content).ok();
        } else if head.contains("name=\"UpdateFile\"") {
            let name = head.split("filename=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
            file = Some((name, content.to_vec()));
        }
    }
    let (file_name, file) = file?;
    Some(Upload {
        content_type: content_type.to_string(),
        content_length: headers.get("content-length").cloned(),
        chunked: headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")),
        parameters: parameters?,
        file_name,
        file,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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

fn respond_full(stream: &mut Box<dyn Stream>, status: u16, body: &Value, location: Option<&str>) {
    let bytes = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        if status == 202 { "Accepted" } else { "Status" },
        bytes.len()
    );
    if let Some(l) = location {
        head.push_str(&format!("Location: {l}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(bytes.as_bytes());
    let _ = stream.flush();
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
