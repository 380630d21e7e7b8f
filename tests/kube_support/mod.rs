//! A small fake of the Kubernetes API server's Node endpoints, over real HTTPS, for hand-off tests.
//!
//! No API server can be installed on the test machines (Debian ships only an
//! old kubectl and etcd), so this plays the server's part for the requests
//! kiln makes, with the server's rules: bearer-token auth (401), 404 as a
//! Status object for an unknown node, PATCH only as
//! `application/merge-patch+json` (415 otherwise), RFC 7386 merge semantics,
//! `metadata.resourceVersion` checked on PATCH (409 when stale) and bumped
//! on every change. Every request is recorded for the test to check.

#[path = "../http_support/mod.rs"]
mod http;
use http::{read_request, Accepting};

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub body: String,
    pub status: u16,
}

struct Shared {
    token: String,
    nodes: Mutex<BTreeMap<String, Value>>,
    seen: Mutex<Vec<Seen>>,
    /// Bump a node's resourceVersion between kiln's GET and PATCH this many times.
    race: Mutex<BTreeMap<String, usize>>,
}

pub struct FakeKube {
    pub addr: SocketAddr,
    pub ca_pem: String,
    shared: Arc<Shared>,
    _server: Accepting,
}

/// A Node object as a kubelet registers it.
pub fn node_object(name: &str) -> Value {
    json!({
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "resourceVersion": "100", "labels": {"kubernetes.io/hostname": name}, "annotations": {}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

impl FakeKube {
    pub fn start(token: &str, nodes: Vec<Value>) -> FakeKube {
        let (ca_pem, cert, key) = pki();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let config = Arc::new(config);
        let map =
            nodes.into_iter().map(|n| (n["metadata"]["name"].as_str().expect("node name").to_string(), n)).collect();
        let shared = Arc::new(Shared {
            token: token.to_string(),
            nodes: Mutex::new(map),
            seen: Mutex::new(Vec::new()),
            race: Mutex::new(BTreeMap::new()),
        });
        let s = shared.clone();
        let server = Accepting::start(move |tcp| serve(&s, config.clone(), tcp));
        FakeKube { addr: server.addr, ca_pem, shared, _server: server }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn node(&self, name: &str) -> Value {
        self.shared.nodes.lock().expect("lock")[name].clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.seen.lock().expect("lock").clear();
    }

    /// Someone else changes `node` right after each of kiln's next `times` GETs.
    pub fn race(&self, node: &str, times: usize) {
        self.shared.race.lock().expect("lock").insert(node.to_string(), times);
    }
}

/// A CA and a server certificate for 127.0.0.1 it signed.
fn pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "kubernetes test CA");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf params");
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "kube-apiserver");
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    (ca_cert.pem(), cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})
}

fn serve(shared: &Shared, config: Arc<rustls::ServerConfig>, tcp: TcpStream) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let Some((method, path, headers, body)) = read_request(&mut stream) else { return };
    let (status, reply) = answer(shared, &method, &path, &headers, &body);
    shared.seen.lock().expect("lock").push(Seen {
        method,
        path,
        content_type: headers.get("content-type").cloned(),
        authorization: headers.get("authorization").cloned(),
        body,
        status,
    });
    let text = reply.to_string();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

fn answer(shared: &Shared, method: &str, path: &str, headers: &BTreeMap<String, String>, body: &str) -> (u16, Value) {
    if headers.get("authorization") != Some(&format!("Bearer {}", shared.token)) {
        return (401, status_object(401, "Unauthorized", "Unauthorized"));
    }
    let Some(name) = path.strip_prefix("/api/v1/nodes/") else {
        return (404, status_object(404, "NotFound", "the server could not find the requested resource"));
    };
    let mut nodes = shared.nodes.lock().expect("lock");
    let Some(node) = nodes.get_mut(name) else {
        return (404, status_object(404, "NotFound", &format!("nodes \"{name}\" not found")));
    };
    let bump = |node: &mut Value| {
        let rv: u64 = node["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
        node["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
    };
    match method {
        "GET" => {
            let reply = node.clone();
            let mut race = shared.race.lock().expect("lock");
            if let Some(n) = race.get_mut(name).filter(|n| **n > 0) {
                *n -= 1;
                node["metadata"]["labels"]["someone.else/touched"] = json!("yes");
                bump(node);
            }
            (200, reply)
        }
        "PATCH" => {
            if headers.get("content-type").map(String::as_str) != Some("application/merge-patch+json") {
                return (415, status_object(415, "UnsupportedMediaType", "unsupported patch type"));
            }
            let Ok(patch) = serde_json::from_str::<Value>(body) else {
                return (400, status_object(400, "BadRequest", "malformed patch"));
            };
            if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
                if Some(rv) != node["metadata"]["resourceVersion"].as_str() {
                    return (409, status_object(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again"));
                }
            }
            let mut patch = patch;
            if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            merge_patch(node, &patch);
            bump(node);
            (200, node.clone())
        }
        _ => (405, status_object(405, "MethodNotAllowed", "method not allowed")),
    }
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}
