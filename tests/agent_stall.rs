//! Fault injection for `kiln agent`: a peer that plays the controller (hello, block map, image)
//! sends the block map whole, then only part of the image body, and stops sending without
//! closing the connection. The agent under test is the real binary writing into a disk file; it
//! must give up within `--stall-timeout`, wipe the disk's partition-table regions, report the
//! stall, and exit 6. Every wait has a deadline.

#[path = "http_support/mod.rs"]
mod http_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln::deploy::auth::{AgentAuth, NodeKey};
use kiln::image::BlockMap;

const MIB: u64 = 1 << 20;
/// The image: 8 MiB, every byte data (no holes), so the writer needs the whole body.
const IMAGE_SIZE: u64 = 8 * MIB;
/// What the peer sends of the image before it stops.
const SENT: usize = 3 * MIB as usize;
/// How long the peer holds a stopped connection open at most (longer than the test's limit).
const HOLD: Duration = Duration::from_secs(90);
/// The agent must have exited by then.
const LIMIT: Duration = Duration::from_secs(60);

/// What the fake controller saw.
#[derive(Default)]
struct Seen {
    results: Vec<serde_json::Value>,
    image_gets: usize,
    /// For each POST: whether it carried n1's valid proof.
    signed: Vec<bool>,
}

struct Peer {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Releases the held connection and the accept loop.
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// What the node's boot path gave it: node n1, this deployment, its key.
fn n1() -> AgentAuth {
    AgentAuth { node: "n1".into(), deploy: "5a5a".into(), key: NodeKey::from_hex(&"5a".repeat(32)).expect("key") }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    respond_signed(stream, status, content_type, body, None);
}

/// Answer, signed as the controller's answer on `route` (agents act only on such answers).
fn respond_signed(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8], route: Option<&str>) {
    let auth = route
        .map(|r| {
            let code = status.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let a = n1();
            format!(
                "Kiln-Agent-Auth: node=n1 deploy={} mac={}\r\n",
                a.deploy,
                a.key.sign_reply(&a.deploy, "n1", r, code, body)
            )
        })
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Start the fake controller for node `n1`, writing `disk`.
/// `sign`: whether it signs its answers with n1's key (a rogue controller cannot).
fn start_peer(image: Vec<u8>, map_json: String, sha: String, disk: &Path, sign: bool) -> Peer {
    let bmap_sha = kiln::image::Digest::of(map_json.as_bytes()).to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let base = format!("http://127.0.0.1:{port}");
    let hello = serde_json::json!({
        "action": "write", "node": "n1", "image_url": format!("{base}/files/n1.raw"),
        "bmap_url": format!("{base}/files/n1.bmap.json"), "bmap_sha256": bmap_sha, "target": disk, "image_sha256": sha,
        "image_size": IMAGE_SIZE,
    })
    .to_string();
    let (image, seen2, stop2) = (Arc::new(image), seen.clone(), stop.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let (image, seen, stop, hello, map_json) =
                (image.clone(), seen2.clone(), stop2.clone(), hello.clone(), map_json.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Some((method, path, headers, body)) = http_support::read_request(&mut stream) else { return };
                if method == "POST" {
                    // The agent proves itself on every request, with the key its boot path gave it.
                    let proof = headers.get("kiln-agent-auth").and_then(|h| h.split("mac=").nth(1)).unwrap_or("");
                    let a = n1();
                    seen.lock().expect("seen").signed.push(a.key.verify_request(
                        &a.deploy,
                        "n1",
                        &path,
                        body.as_bytes(),
                        proof,
                    ));
                }
                match (method.as_str(), path.as_str()) {
                    ("POST", "/agent/hello") => respond_signed(
                        &mut stream,
                        "200 OK",
                        "application/json",
                        hello.as_bytes(),
                        sign.then_some("/agent/hello"),
                    ),
                    ("GET", "/files/n1.bmap.json") => {
                        respond(&mut stream, "200 OK", "application/json", map_json.as_bytes())
                    }
                    ("GET", "/files/n1.raw") => {
                        seen.lock().expect("seen").image_gets += 1;
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                            image.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(&image[..SENT]);
                        let _ = stream.flush();
                        // The fault: no more bytes, and the connection stays open.
                        let held = Instant::now();
                        while !stop.load(Ordering::Relaxed) && held.elapsed() < HOLD {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    ("POST", "/agent/result") => {
                        if let Ok(v) = serde_json::from_str(&body) {
                            seen.lock().expect("seen").results.push(v);
                        }
                        let stay = br#"{"action":"stay"}"#;
                        respond_signed(&mut stream, "200 OK", "application/json", stay, Some("/agent/result"));
                    }
                    _ => respond(&mut stream, "404 Not Found", "application/json", br#"{"error":"no such route"}"#),
                }
            });
        }
    });
    Peer { port, seen, stop }
}

/// A disk that held an older system: every byte 0xA5, an MBR signature.
fn old_disk(path: &Path, size: u64) {
    let mut bytes = vec![0xA5u8; size as usize];
    bytes[510] = 0x55;
    bytes[511] = 0xAA;
    std::fs::write(path, bytes).expect("old disk");
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).expect("open disk");
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).expect("read disk");
    buf
}

/// The kernel command line n1's boot path gave it.
fn words_file(dir: &Path) -> std::path::PathBuf {
    let a = n1();
    let words = dir.join("cmdline");
    std::fs::write(&words, format!("kiln.node=n1 kiln.deploy={} kiln.key={}\n", a.deploy, a.key.to_hex()))
        .expect("words");
    words
}

#[test]
fn an_answer_without_the_controllers_proof_is_not_acted_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = vec![1u8; IMAGE_SIZE as usize];
    let image_path = dir.path().join("n1.raw");
    std::fs::write(&image_path, &image).expect("write image");
    let map = BlockMap::create(&std::fs::File::open(&image_path).expect("open image"), &image_path).expect("bmap");
    let sha = map.image_sha256.expect("whole-image digest").to_string();
    let disk = dir.path().join("n1.disk");
    old_disk(&disk, 16 * MIB);
    let before = std::fs::read(&disk).expect("disk");
    // A host that answers as a controller would, but cannot sign: it does not hold n1's key.
    let peer = start_peer(image, serde_json::to_string(&map).expect("bmap json"), sha, &disk, false);
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["agent", "--controller", &format!("http://127.0.0.1:{}", peer.port), "--wait-for", "5s", "--cmdline"])
        .arg(words_file(dir.path()))
        .env_remove("KILN_LOG")
        .output()
        .expect("kiln agent runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("answered without this deployment's proof"), "{stderr}");
    let seen = peer.seen.lock().expect("seen");
    assert_eq!((seen.image_gets, seen.results.len()), (0, 0), "told nothing, it fetched and wrote nothing");
    assert_eq!(std::fs::read(&disk).expect("disk"), before, "the disk is untouched");
}

#[test]
fn a_transfer_that_stops_mid_body_makes_the_agent_wipe_report_and_exit_6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image: Vec<u8> = (0..IMAGE_SIZE).map(|i| (i % 251) as u8 | 1).collect();
    let image_path = dir.path().join("n1.raw");
    std::fs::write(&image_path, &image).expect("write image");
    let map = BlockMap::create(&std::fs::File::open(&image_path).expect("open image"), &image_path).expect("bmap");
    let sha = map.image_sha256.expect("whole-image digest").to_string();
    let disk = dir.path().join("n1.disk");
    let disk_size = 16 * MIB;
    old_disk(&disk, disk_size);
    let peer = start_peer(image, serde_json::to_string(&map).expect("bmap json"), sha, &disk, true);
    let words = words_file(dir.path());

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["agent", "--controller", &format!("http://127.0.0.1:{}", peer.port), "--node", "n1"])
        .args(["--wait-for", "20s", "--stall-timeout", "2s", "--cmdline"])
        .arg(&words)
        .env_remove("KILN_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln agent starts");
    // Drained on a thread so that a full pipe never blocks the agent.
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > LIMIT {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not exit within {LIMIT:?} of a stalled transfer");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    let stderr = reader.join().expect("stderr reader");

    assert_eq!(status.code(), Some(6), "agent: {stderr}");
    assert!(stderr.contains("stalled: no byte arrived for 2s"), "{stderr}");
    assert!(stderr.contains("the image transfer stalled; target wiped"), "{stderr}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    {
        let seen = peer.seen.lock().expect("seen");
        assert_eq!(seen.image_gets, 1, "one GET of the image");
        assert_eq!(seen.results.len(), 1, "one result reported: {:?}", seen.results);
        assert_eq!(seen.signed, [true, true], "hello and result, each with n1's proof");
        let result = &seen.results[0];
        assert_eq!(result["ok"], false, "{result}");
        assert_eq!(result["target_state"], "wiped", "{result}");
        let error = result["error"].as_str().unwrap_or_default();
        assert!(error.contains("/files/n1.raw stalled") && error.contains("--stall-timeout"), "{error}");
    }
    // The old system cannot boot, and no partition table of the new image was written.
    let head = read_at(&disk, 0, MIB as usize);
    let tail = read_at(&disk, disk_size - MIB, MIB as usize);
    assert!(head.iter().all(|&b| b == 0), "the first MiB is not zero");
    assert!(tail.iter().all(|&b| b == 0), "the last MiB is not zero");
}
