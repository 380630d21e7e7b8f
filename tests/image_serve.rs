//! The boot-artifact server under slow and hostile clients, over real sockets.
//!
//! Trickling clients are dropped at the header deadline, one address cannot take every slot,
//! a client that stops reading a download is dropped while a slow but steady one is not.
//! Hostile clients connect from 127.0.0.2, well-behaved ones from 127.0.0.1: two addresses of
//! the loopback network, as two hosts on a boot network would be.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::image::serve::{Limits, Routes, Server};

/// A TCP connection to `to` from `from` (port chosen by the kernel).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let SocketAddr::V4(to) = to else { panic!("IPv4 server") };
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor created here and handed to
    // TcpStream, which then owns it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let local = sockaddr(SocketAddrV4::new(from, 0));
        assert_eq!(libc::bind(fd, &local as *const _ as *const libc::sockaddr, len), 0, "bind {from}");
        let remote = sockaddr(to);
        let rc = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect {to}: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const HOSTILE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A GET from `from`: the status line and the body, read whole.
fn get(from: Ipv4Addr, addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read");
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").map_or(all.len(), |i| i + 4);
    let status = String::from_utf8_lossy(&all[..split]).lines().next().unwrap_or("").to_string();
    (status, all[split.min(all.len())..].to_vec())
}

/// Starts a client that sends a request one byte every `every`, forever.
fn trickler(addr: SocketAddr, every: Duration) -> (std::thread::JoinHandle<(Duration, String)>, TcpStream) {
    let s = connect_from(HOSTILE, addr);
    let mut writer = s.try_clone().expect("clone");
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let request = b"GET /files/boot.ipxe HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut i = 0;
        loop {
            let byte = request.get(i).copied().unwrap_or(b'a');
            if writer.write_all(&[byte]).is_err() {
                break;
            }
            i += 1;
            // Whatever the server said before closing, if anything.
            let mut peek = [0u8; 64];
            writer.set_read_timeout(Some(every)).expect("timeout");
            match writer.read(&mut peek) {
                Ok(0) => break,
                Ok(n) => return (started.elapsed(), String::from_utf8_lossy(&peek[..n]).into_owned()),
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        (started.elapsed(), String::new())
    });
    (handle, s)
}

fn files(dir: &Path) -> Routes {
    std::fs::write(dir.join("boot.ipxe"), "#!ipxe\nchain /files/kernel\n").expect("write");
    Routes { mounts: vec![("/files/".into(), dir.to_path_buf())], post: None }
}

fn short_limits() -> Limits {
    Limits {
        max_connections: 64,
        per_client: 4,
        header_deadline: Duration::from_secs(1),
        body_deadline: Duration::from_secs(1),
        response_window: Duration::from_secs(1),
        min_bytes_per_window: 1 << 20,
    }
}

#[test]
fn a_trickling_client_is_dropped_at_the_header_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_limits(files(dir.path()), "127.0.0.1:0".parse().expect("addr"), short_limits())
        .expect("start");
    let (t, _s) = trickler(server.addr(), Duration::from_millis(50));
    let (after, said) = t.join().expect("trickler");
    assert!(said.starts_with("HTTP/1.1 408 Request Timeout"), "{said:?}");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "dropped after {after:?}");
}

#[test]
fn tricklers_from_one_address_cannot_starve_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = Limits { header_deadline: Duration::from_secs(30), ..short_limits() };
    let server =
        Server::start_with_limits(files(dir.path()), "127.0.0.1:0".parse().expect("addr"), limits).expect("start");
    let addr = server.addr();
    // Far more than the server's slots, all from one address.
    let held: Vec<_> = (0..80).map(|_| trickler(addr, Duration::from_millis(200))).collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, body) = get(GOOD, addr, "/files/boot.ipxe");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, b"#!ipxe\nchain /files/kernel\n");
    assert!(started.elapsed() < Duration::from_secs(2), "served promptly: {:?}", started.elapsed());
    // The address's extra connections were told to come back, at once.
    let (extra, said) = {
        let mut s = connect_from(HOSTILE, addr);
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(b"GET /files/boot.ipxe HTTP/1.1\r\n\r\n").expect("send");
        let mut text = String::new();
        let _ = BufReader::new(s).read_line(&mut text);
        (started.elapsed(), text)
    };
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");
    assert!(extra < Duration::from_secs(5));
    drop(held);
}

#[test]
fn a_client_that_stops_reading_a_download_is_dropped_and_a_slow_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("disk.raw"), &image).expect("write");
    let server = Server::start_with_limits(files(dir.path()), "127.0.0.1:0".parse().expect("addr"), short_limits())
        .expect("start");
    let addr = server.addr();

    // Asks for the image and reads nothing: the server's writes fill the
    // socket buffers and stop; within the window it gives up.
    let mut stalled = connect_from(HOSTILE, addr);
    stalled.write_all(b"GET /files/disk.raw HTTP/1.1\r\n\r\n").expect("send");
    std::thread::sleep(Duration::from_secs(4));
    stalled.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match stalled.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < image.len(), "the stalled client got {got} of {} bytes: it was dropped", image.len());

    // Reads about 4 MiB per second, four times the minimum, pausing between reads.
    let mut slow = connect_from(GOOD, addr);
    slow.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    slow.write_all(b"GET /files/disk.raw HTTP/1.1\r\n\r\n").expect("send");
    let mut all = Vec::new();
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        let n = slow.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        all.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(62 * n as u64 / (256 << 10) as u64));
    }
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    assert!(all.starts_with(b"HTTP/1.1 200 OK"));
    assert!(all[split..] == image[..], "the slow client got the whole image intact");
}

#[test]
fn a_post_body_that_trickles_is_dropped_at_the_body_deadline() {
    struct Echo;
    impl kiln::image::serve::PostRoutes for Echo {
        fn post(&self, p: &kiln::image::serve::Posted<'_>) -> kiln::image::serve::Reply {
            kiln::image::serve::Reply::json(200, format!("{{\"len\":{}}}", p.body.len()))
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = Routes { post: Some(std::sync::Arc::new(Echo)), ..files(dir.path()) };
    let server =
        Server::start_with_limits(routes, "127.0.0.1:0".parse().expect("addr"), short_limits()).expect("start");
    let mut s = connect_from(HOSTILE, server.addr());
    s.write_all(b"POST /agent/hello HTTP/1.1\r\nContent-Length: 1000\r\n\r\n").expect("headers");
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let started = Instant::now();
    let mut answer = String::new();
    while started.elapsed() < Duration::from_secs(10) {
        let _ = s.write_all(b"x");
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "{after:?}");
}

/// `kiln image serve` with its default limits: more tricklers from one host
/// than the server has slots, and a node on another address still boots.
#[test]
fn kiln_image_serve_keeps_serving_while_one_host_trickles() {
    let dir = tempfile::tempdir().expect("tempdir");
    files(dir.path());
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["image", "serve", dir.path().to_str().expect("utf-8"), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kiln image serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
    let addr: SocketAddr = first.trim().rsplit("http://").next().expect("address").parse().expect("parse address");
    let held: Vec<_> = (0..80).map(|_| trickler(addr, Duration::from_millis(500))).collect();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (status, body) = get(GOOD, addr, "/boot.ipxe");
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, b"#!ipxe\nchain /files/kernel\n");
    assert!(took < Duration::from_secs(2), "served promptly: {took:?}");
}
