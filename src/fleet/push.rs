//! Keeps the kiln binary on a node the same as this one: compare checksums, push when missing or different.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::outcome::BinaryState;
use super::transport::{NodeTransport, RemoteExit, TransportError};

/// Where kiln lives on the nodes by default.
pub const DEFAULT_REMOTE_PATH: &str = "/var/lib/kiln/bin/kiln";

/// The binary to run on the nodes: a local file, its checksum, and its path on the node.
#[derive(Debug, Clone)]
pub struct RemoteBinary {
    pub local: PathBuf,
    /// Lowercase hex SHA-256 of `local`.
    pub local_sha256: String,
    pub remote_path: String,
    /// The CPU architecture `local` is built for (`x86_64`, `aarch64`).
    pub arch: String,
}

impl RemoteBinary {
    /// `local` (default: this running kiln) to be kept at `remote_path` on each node.
    pub fn new(local: Option<&Path>, remote_path: &str) -> std::io::Result<RemoteBinary> {
        let local = match local {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe()?,
        };
        let local_sha256 = local_sha256(&local)?;
        Ok(RemoteBinary {
            local,
            local_sha256,
            remote_path: remote_path.to_string(),
            arch: std::env::consts::ARCH.to_string(),
        })
    }
}

/// SHA-256 of a local file, lowercase hex.
pub fn local_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks the node's copy; with `push`, replaces a missing or different one
/// and verifies the pushed copy's checksum. Without `push` only reports.
pub(crate) fn ensure(
    t: &mut dyn NodeTransport,
    bin: &RemoteBinary,
    push: bool,
    timeout: Duration,
) -> Result<BinaryState, TransportError> {
    let before = t.sha256(&bin.remote_path, timeout)?;
    match (&before, push) {
        (Some(h), _) if *h == bin.local_sha256 => return Ok(BinaryState::Current),
        (None, false) => return Ok(BinaryState::Missing),
        (Some(_), false) => return Ok(BinaryState::Differs),
        _ => {}
    }
    // A binary for the wrong architecture would only fail on the node with
    // "exec format error"; say so before sending it.
    let out = t.run(&["uname".into(), "-m".into()], timeout)?;
    let remote_arch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.exit == RemoteExit::Code(0) && !remote_arch.is_empty() && remote_arch != bin.arch {
        return Err(TransportError::WrongArch {
            node: t.node().to_string(),
            remote_arch,
            local_arch: bin.arch.clone(),
        });
    }
    tracing::info!(node = t.node(), path = %bin.remote_path, "pushing kiln");
    t.upload(&bin.local, &bin.remote_path, 0o755, timeout)?;
    let after = t.sha256(&bin.remote_path, timeout)?;
    if after.as_deref() != Some(bin.local_sha256.as_str()) {
        return Err(TransportError::Checksum {
            node: t.node().to_string(),
            path: bin.remote_path.clone(),
            detail: format!("pushed copy reads back as {after:?}, expected {}", bin.local_sha256),
        });
    }
    Ok(BinaryState::Pushed)
}
