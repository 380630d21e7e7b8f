//! `kiln rack trust`: the one explicit first contact, recording each node's SSH host key in the
//! manifest's known_hosts file after showing its fingerprint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2::{CheckResult, KnownHostFileKind, Session};

use super::pool::map_bounded;
use super::ssh::{check_known_host, known_hosts_name, SshConnector};
use crate::rack::{Credentials, RackNode};

#[derive(Debug, Clone)]
pub struct TrustOptions {
    pub connect_timeout: Duration,
    /// Replace a recorded key that differs (a reinstalled node). Without it a
    /// changed key is reported and left as it was.
    pub replace: bool,
    pub parallel: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustResult {
    /// First contact: the key was recorded.
    Recorded {
        fingerprint: String,
    },
    AlreadyTrusted {
        fingerprint: String,
    },
    /// The node presents a key that differs from the recorded one; nothing changed.
    Changed {
        fingerprint: String,
    },
    /// The recorded key was replaced (`--replace`).
    Replaced {
        fingerprint: String,
    },
    /// The node could not be reached or its key not recorded.
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustOutcome {
    pub node: String,
    pub result: TrustResult,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("read known hosts {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: ssh2::Error,
    },
    #[error("write known hosts {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Contacts each node (key exchange only, no login), compares its host key
/// with the known_hosts file and records new ones (and, with `replace`,
/// changed ones). The file is rewritten once, atomically, at the end.
pub fn trust_nodes(
    credentials: &Credentials,
    nodes: &[&RackNode],
    opts: &TrustOptions,
) -> Result<Vec<TrustOutcome>, TrustError> {
    let path = credentials.known_hosts.clone();
    let connector = SshConnector { credentials: credentials.clone(), connect_timeout: opts.connect_timeout };
    let keys = map_bounded(nodes, opts.parallel, |node| {
        connector
            .handshake(node)
            .map_err(|e| e.to_string())
            .and_then(|hs| hs.host_key().ok_or_else(|| format!("{}: the node presented no host key", node.name)))
    });

    let read_err = |source| TrustError::Read { path: path.clone(), source };
    let session = Session::new().map_err(read_err)?;
    let mut kh = session.known_hosts().map_err(read_err)?;
    if path.exists() {
        kh.read_file(&path, KnownHostFileKind::OpenSSH).map_err(read_err)?;
    }
    let mut changed_file = false;
    let mut outcomes = Vec::with_capacity(nodes.len());
    for (node, key) in nodes.iter().zip(keys) {
        let result = match key {
            Err(reason) => TrustResult::Failed { reason },
            Ok((key, kind, fingerprint)) => {
                let name = known_hosts_name(&node.address, node.ssh_port);
                match check_known_host(&kh, &node.address, node.ssh_port, &key) {
                    CheckResult::Match => TrustResult::AlreadyTrusted { fingerprint },
                    CheckResult::Mismatch if !opts.replace => TrustResult::Changed { fingerprint },
                    found => {
                        let replacing = matches!(found, CheckResult::Mismatch);
                        if replacing {
                            for host in kh.hosts().unwrap_or_default() {
                                if host.name() == Some(name.as_str()) {
                                    let _ = kh.remove(&host);
                                }
                            }
                        }
                        match kh.add(&name, &key, &node.name, kind.into()) {
                            Err(e) => TrustResult::Failed { reason: format!("{}: record host key: {e}", node.name) },
                            Ok(())
                                if !matches!(
                                    check_known_host(&kh, &node.address, node.ssh_port, &key),
                                    CheckResult::Match
                                ) =>
                            {
                                TrustResult::Failed {
                                    reason: format!(
                                        "{}: another entry for {name} remains (hashed?); remove it with ssh-keygen -R",
                                        node.name
                                    ),
                                }
                            }
                            Ok(()) => {
                                changed_file = true;
                                tracing::info!(node = %node.name, %fingerprint, replaced = replacing, "host key recorded");
                                if replacing {
                                    TrustResult::Replaced { fingerprint }
                                } else {
                                    TrustResult::Recorded { fingerprint }
                                }
                            }
                        }
                    }
                }
            }
        };
        outcomes.push(TrustOutcome { node: node.name.clone(), result });
    }
    if changed_file {
        write_atomically(&kh, &path)?;
    }
    Ok(outcomes)
}

fn write_atomically(kh: &ssh2::KnownHosts, path: &Path) -> Result<(), TrustError> {
    let write_err = |source| TrustError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    kh.write_file(&tmp, KnownHostFileKind::OpenSSH).map_err(|e| write_err(e.into()))?;
    std::fs::rename(&tmp, path).map_err(write_err)
}
