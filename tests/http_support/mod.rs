//! The request side of the small HTTP peers the tests run (the recorded BMC
//! server, the Kubernetes API fake): one request, read whole.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

/// Method, target, headers (names in lower case) and body.
pub type Request = (String, String, BTreeMap<String, String>, String);

/// Read one request with its `Content-Length` body; `None` when the peer
/// closed early or sent something that is not HTTP.
pub fn read_request(stream: &mut dyn Read) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, headers, String::from_utf8_lossy(&body).into_owned()))
}
