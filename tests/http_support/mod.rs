//! What the small HTTP peers the tests run (the recorded BMC server, the
//! Kubernetes API fake) share: the accept loop, and one request read whole.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// Method, target, headers (names in lower case) and body.
pub type Request = (String, String, BTreeMap<String, String>, String);

/// Method, target, headers (names in lower case) and the body's bytes.
pub type RawRequest = (String, String, BTreeMap<String, String>, Vec<u8>);

/// Read one request with its `Content-Length` body; `None` when the peer
/// closed early or sent something that is not HTTP.
pub fn read_request(stream: &mut dyn Read) -> Option<Request> {
    let (method, target, headers, body) = read_request_raw(stream)?;
    Some((method, target, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// `read_request` with the body as bytes (a firmware package is binary).
pub fn read_request_raw(stream: &mut dyn Read) -> Option<RawRequest> {
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
    Some((method, target, headers, body))
}

/// A listener on 127.0.0.1 that hands each connection to `serve` on a thread
/// of its own, until it is dropped.
pub struct Accepting {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Accepting {
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Accepting {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let st = stop.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(tcp) = conn {
                    let serve = serve.clone();
                    thread::spawn(move || serve(tcp));
                }
            }
        });
        Accepting { addr, stop, accept: Some(accept) }
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}
