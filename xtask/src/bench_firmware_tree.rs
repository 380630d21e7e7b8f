//! The recorded GH200 BMC tree (`tests/fixtures/redfish/gh200`, 19 firmware inventory members)
//! served over plain HTTP on several ports, for the firmware benchmark: the lab's emulated BMCs
//! have no firmware inventory and no session service, so DMTF's `rf_firmware_inventory.py`
//! cannot complete there; here both tools read a real NVIDIA BMC's inventory.
//!
//! GETs are answered from `<tree>/<path>/index.json`; a POST to
//! `/redfish/v1/SessionService/Sessions` makes a session (201, `X-Auth-Token`, `Location`) as
//! bmcweb does, and a DELETE of it ends it (204). Credentials are not checked. Each connection
//! is served on a thread of its own, keep-alive as the clients ask.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// One server; it runs until the process ends (the benchmark is short-lived).
pub struct TreeServer {
    pub addr: SocketAddr,
}

/// Every `index.json` under `tree`, keyed by its Redfish path.
fn load(tree: &Path) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    fn walk(dir: &Path, base: &Path, out: &mut HashMap<String, Vec<u8>>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, base, out)?;
            } else if path.file_name().is_some_and(|n| n == "index.json") {
                let rel = path.parent().and_then(|p| p.strip_prefix(base).ok()).context("tree path")?;
                let key = format!("/{}", rel.to_string_lossy());
                out.insert(key, std::fs::read(&path).with_context(|| format!("read {}", path.display()))?);
            }
        }
        Ok(())
    }
    let mut out = HashMap::new();
    walk(tree, tree, &mut out)?;
    Ok(out)
}

impl TreeServer {
    pub fn start(tree: &Path) -> anyhow::Result<TreeServer> {
        let files = Arc::new(load(tree)?);
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let files = files.clone();
                std::thread::spawn(move || serve(stream, &files));
            }
        });
        Ok(TreeServer { addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>) {
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return };
        let (method, target) = (method.to_string(), target.to_string());
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = target.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
        let path = if path.is_empty() { "/".to_string() } else { path };
        let (status, extra, payload): (&str, String, Vec<u8>) = match (method.as_str(), path.as_str()) {
            ("GET", p) => match files.get(p) {
                Some(bytes) => ("200 OK", String::new(), bytes.clone()),
                None => ("404 Not Found", String::new(), b"{}".to_vec()),
            },
            ("POST", "/redfish/v1/SessionService/Sessions") => (
                "201 Created",
                "X-Auth-Token: bench-token\r\nLocation: /redfish/v1/SessionService/Sessions/1\r\n".into(),
                br#"{"@odata.id": "/redfish/v1/SessionService/Sessions/1", "Id": "1"}"#.to_vec(),
            ),
            ("DELETE", _) => ("204 No Content", String::new(), Vec::new()),
            _ => ("405 Method Not Allowed", String::new(), b"{}".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}{}\r\n",
            payload.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if out.write_all(head.as_bytes()).and_then(|()| out.write_all(&payload)).and_then(|()| out.flush()).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}
