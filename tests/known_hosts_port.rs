//! A node's SSH host key is trusted only by the known_hosts entry OpenSSH itself would use: a
//! plain `host` entry is for port 22; a node on another port needs a `[host]:port` entry.
//! Against a real sshd on a loopback port (no network namespace, so no lab lock).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::fleet::{SshConnector, TransportError};
use kiln::rack::{BmcTls, Credentials, RackNode};

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs")
        .success();
    assert!(ok, "ssh-keygen failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn start_sshd(dir: &Path, port: u16) -> Sshd {
    std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile none\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AuthorizedKeysFile {}\nStrictModes no\n",
            dir.join("host_key").display(),
            dir.join("authorized_keys").display()
        ),
    )
    .expect("write sshd_config");
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    let sshd = Sshd(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

#[test]
fn a_plain_host_entry_is_not_trusted_for_another_port() {
    if !Path::new(SSHD).exists() {
        println!("SKIPPED: no {SSHD} (cargo xtask test installs openssh-server)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    keygen(&dir.path().join("host_key"));
    keygen(&dir.path().join("client_key"));
    std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys")).expect("authorized_keys");
    let port = free_port();
    let _sshd = start_sshd(dir.path(), port);

    let host_key = std::fs::read_to_string(dir.path().join("host_key.pub")).expect("host key");
    let mut parts = host_key.split_whitespace();
    let (kind, key) = (parts.next().expect("kind"), parts.next().expect("key"));
    let known_hosts = dir.path().join("known_hosts");
    let connector = SshConnector {
        credentials: Credentials {
            ssh_user: "root".into(),
            ssh_key: Some(dir.path().join("client_key")),
            known_hosts: known_hosts.clone(),
            bmc_user: None,
            bmc_password: None,
            bmc_tls: BmcTls::System,
        },
        connect_timeout: Duration::from_secs(10),
    };
    let node = RackNode { ssh_port: port, ..RackNode::new("n1", "127.0.0.1") };

    // OpenSSH reads this entry only for port 22.
    std::fs::write(&known_hosts, format!("127.0.0.1 {kind} {key}\n")).expect("known_hosts");
    match connector.open(&node) {
        Err(TransportError::HostKeyUnknown { node, .. }) => assert_eq!(node, "n1"),
        Err(other) => panic!("expected an unknown host key, got {other}"),
        Ok(_) => panic!("a plain `127.0.0.1` entry was trusted for port {port}"),
    }

    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {key}\n")).expect("known_hosts");
    if let Err(e) = connector.open(&node) {
        panic!("the [127.0.0.1]:{port} entry should be trusted: {e}");
    }
}
