//! `NodeTransport`: the narrow surface the fan-out needs from a node (run a command, answer one), and its errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::rack::RackNode;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExit {
    Code(i32),
    /// Killed by a signal (`KILL`, `SEGV`), as the peer reported it.
    Signal(String),
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: RemoteExit,
}

impl CommandOutput {
    /// The last non-empty line of stderr, for a one-line reason.
    pub fn stderr_tail(&self) -> Option<String> {
        String::from_utf8_lossy(&self.stderr)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(300).collect())
    }
}

/// One open connection to one node. A backend runs the command for real:
/// over SSH ([`crate::fleet::SshTransport`]) or on this machine
/// ([`crate::fleet::LocalTransport`]).
pub trait NodeTransport {
    /// Runs `argv` (the program and its arguments, no shell) and waits for it, at most
    /// `timeout`; a command still running then is killed. With `answer`, it is shown the
    /// command's stderr so far each time more arrives, and the first [`Answer`] it returns is
    /// written to the command's stdin, which is then closed; a command never answered gets its
    /// stdin closed only when it ends, so it must not wait on it unasked.
    fn exec(
        &mut self,
        argv: &[String],
        timeout: Duration,
        answer: Option<&mut Answerer<'_>>,
    ) -> Result<CommandOutput, TransportError>;

    /// The node's name, for error messages.
    fn node(&self) -> &str;

    /// Runs `argv` and waits for it, at most `timeout` (`exec` without an answer).
    fn run(&mut self, argv: &[String], timeout: Duration) -> Result<CommandOutput, TransportError> {
        self.exec(argv, timeout, None)
    }

    /// Runs `argv` like `run`, and answers it once (`exec` with `answer`).
    fn run_answering(
        &mut self,
        argv: &[String],
        timeout: Duration,
        answer: &mut Answerer<'_>,
    ) -> Result<CommandOutput, TransportError> {
        self.exec(argv, timeout, Some(answer))
    }
}

/// Shown a command's stderr so far; returns what to write to its stdin, once.
pub type Answerer<'a> = dyn FnMut(&[u8]) -> Option<Answer> + 'a;

/// What to write to a command's stdin: `header`, then the bytes of `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub header: Vec<u8>,
    pub body: Option<PathBuf>,
}

/// Opens transports to nodes; shared by the fan-out's worker threads.
pub trait Connector: Sync {
    fn connect(&self, node: &RackNode) -> Result<Box<dyn NodeTransport>, TransportError>;
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{node}: resolve address {address}")]
    Resolve {
        node: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{node}: connect to {address} (unreachable)")]
    Connect {
        node: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{node}: ssh handshake with {address}")]
    Handshake {
        node: String,
        address: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("{node}: host key not trusted; run `kiln rack trust` (known hosts: {})", known_hosts.display())]
    HostKeyUnknown { node: String, known_hosts: PathBuf },
    #[error(
        "{node}: HOST KEY CHANGED (now {fingerprint}); refusing to connect: this may be a man-in-the-middle, \
         or the node was reinstalled; check on its console, then `kiln rack trust --replace --node {node}` \
         (known hosts: {})",
        known_hosts.display()
    )]
    HostKeyChanged { node: String, fingerprint: String, known_hosts: PathBuf },
    #[error("{node}: read known hosts {}", known_hosts.display())]
    KnownHosts {
        node: String,
        known_hosts: PathBuf,
        #[source]
        source: ssh2::Error,
    },
    #[error("{node}: authenticate as {user} with {method}")]
    Auth {
        node: String,
        user: String,
        method: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("{node}: start {what}")]
    Channel {
        node: String,
        what: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("{node}: {what} timed out after {} s", after.as_secs())]
    Timeout { node: String, what: String, after: Duration },
    #[error("{node}: connection lost during {what}: {detail}")]
    Disconnected { node: String, what: String, detail: String },
    #[error("{node}: upload {local} to {remote}")]
    Upload {
        node: String,
        local: String,
        remote: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{node}: checksum {path}: {detail}")]
    Checksum { node: String, path: String, detail: String },
    #[error(
        "{node}: push kiln: the node is {node_arch} and {} is built for {binary_arch}; pass --dist DIR holding a \
         {node_arch} kiln (`cargo xtask dist --target {}`, or built on a {node_arch} node: docs/fleet.md) \
         or --node-binary FILE built for {node_arch}",
        binary.display(),
        super::elf::rust_target(node_arch)
    )]
    WrongArch { node: String, node_arch: String, binary: PathBuf, binary_arch: String },
    #[error(
        "{node}: push kiln: the node is {node_arch} and {} has no kiln for {node_arch} (it has {has}); \
         add one with `cargo xtask dist --target {} --out DIR`, or build it on a {node_arch} node (docs/fleet.md)",
        dir.display(),
        super::elf::rust_target(node_arch)
    )]
    NoBinaryForArch { node: String, node_arch: String, dir: PathBuf, has: String },
    #[error("{node}: install kiln at {path}: {detail}")]
    Install { node: String, path: String, detail: String },
    #[error("{node}: run {program} locally")]
    Spawn {
        node: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Quotes one argument for a POSIX shell (the remote side of SSH runs a
/// shell): plain words stay as they are, anything else is single-quoted.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("/var/lib/kiln/bin/kiln"), "/var/lib/kiln/bin/kiln");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
    }
}
