//! The SSH backend of `NodeTransport` (libssh2 through `ssh2`): host keys checked against the
//! manifest's known_hosts file, key or agent authentication, connect and command time limits.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use ssh2::{CheckResult, KnownHostFileKind, Session};

use super::fingerprint::sha256_base64;
use super::transport::{
    shell_quote, Answer, Answerer, CommandOutput, Connector, NodeTransport, RemoteExit, TransportError,
};
use crate::rack::{Credentials, RackNode};

/// Extra time given to the remote `timeout` to kill a hung command before
/// this side gives up on the connection.
const REMOTE_KILL_GRACE: Duration = Duration::from_secs(5);

/// Opens authenticated SSH sessions to a rack's nodes.
#[derive(Debug, Clone)]
pub struct SshConnector {
    pub credentials: Credentials,
    pub connect_timeout: Duration,
}

/// An authenticated SSH session to one node.
pub struct SshTransport {
    node: String,
    session: Session,
    fd: RawFd,
}

/// A session after the key exchange, before authentication; what `trust` needs.
pub(crate) struct Handshaken {
    pub session: Session,
    pub fd: RawFd,
}

impl Handshaken {
    /// The host key the node presented, with its SHA-256 fingerprint in
    /// OpenSSH's form (`SHA256:base64`), to compare with `ssh-keygen -lf`.
    pub fn host_key(&self) -> Option<(Vec<u8>, ssh2::HostKeyType, String)> {
        let (key, kind) = self.session.host_key()?;
        let fingerprint = format!("SHA256:{}", sha256_base64(key));
        Some((key.to_vec(), kind, fingerprint))
    }
}

/// The name OpenSSH gives a host in known_hosts: `host`, or `[host]:port`
/// when the port is not 22.
pub(crate) fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// Checks `key` against the known_hosts entries OpenSSH would use for `address:port`: those
/// named `address` for port 22, `[address]:port` for any other. (libssh2's own port check also
/// accepts a plain `address` entry for another port, which OpenSSH never does.)
pub(crate) fn check_known_host(kh: &ssh2::KnownHosts, address: &str, port: u16, key: &[u8]) -> CheckResult {
    kh.check(&known_hosts_name(address, port), key)
}

impl SshConnector {
    /// TCP connect and SSH key exchange, within the connect timeout.
    pub(crate) fn handshake(&self, node: &RackNode) -> Result<Handshaken, TransportError> {
        let address = format!("{}:{}", node.address, node.ssh_port);
        let addrs: Vec<SocketAddr> = (node.address.as_str(), node.ssh_port)
            .to_socket_addrs()
            .map_err(|source| TransportError::Resolve { node: node.name.clone(), address: address.clone(), source })?
            .collect();
        let mut last = std::io::Error::new(ErrorKind::NotFound, "the name resolved to no address");
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, self.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp =
            tcp.ok_or(TransportError::Connect { node: node.name.clone(), address: address.clone(), source: last })?;
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let handshake_err =
            |source| TransportError::Handshake { node: node.name.clone(), address: address.clone(), source };
        let mut session = Session::new().map_err(handshake_err)?;
        session.set_tcp_stream(tcp);
        session.set_timeout(millis(self.connect_timeout));
        session.handshake().map_err(|source| match io_kind(&source) {
            ErrorKind::TimedOut => TransportError::Timeout {
                node: node.name.clone(),
                what: "ssh handshake".into(),
                after: self.connect_timeout,
            },
            _ => handshake_err(source),
        })?;
        Ok(Handshaken { session, fd })
    }

    /// Connects, checks the host key against known_hosts, authenticates.
    pub fn open(&self, node: &RackNode) -> Result<SshTransport, TransportError> {
        let hs = self.handshake(node)?;
        check_host_key(&hs, node, &self.credentials.known_hosts)?;
        let user = &self.credentials.ssh_user;
        let (method, result) = match &self.credentials.ssh_key {
            Some(key) => (format!("key {}", key.display()), hs.session.userauth_pubkey_file(user, None, key, None)),
            None => ("ssh-agent".to_string(), hs.session.userauth_agent(user)),
        };
        result.map_err(|source| TransportError::Auth {
            node: node.name.clone(),
            user: user.clone(),
            method,
            source,
        })?;
        Ok(SshTransport { node: node.name.clone(), session: hs.session, fd: hs.fd })
    }
}

impl Connector for SshConnector {
    fn connect(&self, node: &RackNode) -> Result<Box<dyn NodeTransport>, TransportError> {
        Ok(Box::new(self.open(node)?))
    }
}

/// Refuses a node whose key is not in known_hosts (first contact goes
/// through `kiln rack trust`) or differs from the recorded one.
fn check_host_key(hs: &Handshaken, node: &RackNode, known_hosts: &Path) -> Result<(), TransportError> {
    let unknown = || TransportError::HostKeyUnknown { node: node.name.clone(), known_hosts: known_hosts.to_path_buf() };
    let Some((key, _, fingerprint)) = hs.host_key() else {
        return Err(unknown());
    };
    if !known_hosts.exists() {
        return Err(unknown());
    }
    let kh_err =
        |source| TransportError::KnownHosts { node: node.name.clone(), known_hosts: known_hosts.to_path_buf(), source };
    let mut kh = hs.session.known_hosts().map_err(kh_err)?;
    kh.read_file(known_hosts, KnownHostFileKind::OpenSSH).map_err(kh_err)?;
    match check_known_host(&kh, &node.address, node.ssh_port, &key) {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound => Err(unknown()),
        CheckResult::Mismatch => {
            tracing::error!(node = %node.name, %fingerprint, "host key changed; refusing to connect");
            Err(TransportError::HostKeyChanged {
                node: node.name.clone(),
                fingerprint,
                known_hosts: known_hosts.to_path_buf(),
            })
        }
        CheckResult::Failure => Err(unknown()),
    }
}

impl SshTransport {
    /// Waits until the socket can make progress, at most `limit`.
    fn wait_socket(&self, limit: Duration) {
        let dirs = self.session.block_directions();
        let mut events = libc::POLLIN;
        if matches!(dirs, ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both) {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd { fd: self.fd, events, revents: 0 };
        let ms = limit.as_millis().min(100) as libc::c_int;
        // SAFETY: one valid pollfd for the socket the session owns; the result
        // only shortens the wait, so an error from poll needs no handling.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }

    /// Runs `argv` on a channel of its own; with `answer`, writes its reply
    /// to the command's stdin once it gives one (see `run_answering`).
    fn exec(
        &mut self,
        argv: &[String],
        timeout: Duration,
        mut answer: Option<&mut Answerer<'_>>,
    ) -> Result<CommandOutput, TransportError> {
        // The remote `timeout` kills a hung command on the node itself:
        // closing the channel alone would leave it running there.
        let secs = timeout.as_secs().max(1);
        let mut command = format!("timeout -k {} {secs}", REMOTE_KILL_GRACE.as_secs());
        for arg in argv {
            command.push(' ');
            command.push_str(&shell_quote(arg));
        }
        let what = argv.first().map(|p| format!("`{p}`")).unwrap_or_default();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs) + REMOTE_KILL_GRACE * 2;
        let timed_out =
            || TransportError::Timeout { node: self.node.clone(), what: format!("command {what}"), after: timeout };

        self.session.set_blocking(true);
        self.session.set_timeout(millis(deadline.saturating_duration_since(Instant::now())));
        let channel_err =
            |source| TransportError::Channel { node: self.node.clone(), what: format!("command {what}"), source };
        let mut channel = self.session.channel_session().map_err(channel_err)?;
        channel.exec(&command).map_err(channel_err)?;

        self.session.set_blocking(false);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut progressed = false;
            for stream_id in [0, 1] {
                loop {
                    let r = if stream_id == 0 { channel.read(&mut buf) } else { channel.stderr().read(&mut buf) };
                    match r {
                        Ok(0) => break,
                        Ok(n) => {
                            progressed = true;
                            if stream_id == 0 { &mut stdout } else { &mut stderr }.extend_from_slice(&buf[..n]);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            self.session.set_blocking(true);
                            return Err(self.disconnected(&format!("command {what}"), e));
                        }
                    }
                }
            }
            if let Some(a) = answer.as_mut() {
                if progressed {
                    if let Some(reply) = a(&stderr) {
                        answer = None;
                        self.session.set_blocking(true);
                        // A command that ends before reading all of it
                        // leaves a write error; what it printed says why.
                        if let Err(e) = write_answer(&mut channel, &reply) {
                            tracing::debug!(node = %self.node, error = %e, "the command stopped reading its input");
                        }
                        self.session.set_blocking(false);
                        continue;
                    }
                }
            }
            if channel.eof() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                self.session.set_blocking(true);
                return Err(timed_out());
            }
            if !progressed {
                self.wait_socket(deadline - now);
            }
        }

        // The exit status arrives after end-of-output; only a channel that
        // closed cleanly has one (libssh2 reports 0 when none came).
        self.session.set_blocking(true);
        self.session.set_timeout(millis(REMOTE_KILL_GRACE));
        channel.wait_close().map_err(|e| self.disconnected(&format!("command {what} (no exit status)"), e))?;
        let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
        let exit = match signal {
            Some(sig) => RemoteExit::Signal(sig),
            None => RemoteExit::Code(channel.exit_status().map_err(|e| self.disconnected("exit status", e))?),
        };
        // 124 is `timeout`'s code for a command it killed; 137 when it had to
        // use SIGKILL after the grace period.
        if matches!(exit, RemoteExit::Code(124) | RemoteExit::Code(137)) && started.elapsed() >= timeout {
            return Err(timed_out());
        }
        Ok(CommandOutput { stdout, stderr, exit })
    }

    fn disconnected(&self, what: &str, e: impl std::fmt::Display) -> TransportError {
        TransportError::Disconnected { node: self.node.clone(), what: what.to_string(), detail: e.to_string() }
    }
}

impl NodeTransport for SshTransport {
    fn node(&self) -> &str {
        &self.node
    }

    fn exec(
        &mut self,
        argv: &[String],
        timeout: Duration,
        answer: Option<&mut Answerer<'_>>,
    ) -> Result<CommandOutput, TransportError> {
        SshTransport::exec(self, argv, timeout, answer)
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

fn io_kind(e: &ssh2::Error) -> ErrorKind {
    std::io::Error::from(ssh2::Error::from_errno(e.code())).kind()
}

/// Writes `reply` to the channel's stdin and closes it.
fn write_answer(channel: &mut ssh2::Channel, reply: &Answer) -> std::io::Result<()> {
    channel.write_all(&reply.header)?;
    if let Some(body) = &reply.body {
        let mut file = std::fs::File::open(body)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            channel.write_all(&buf[..n])?;
        }
    }
    channel.flush()?;
    channel.send_eof().map_err(std::io::Error::from)
}
