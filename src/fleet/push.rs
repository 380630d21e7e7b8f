//! Keeps the kiln binary on a node the same as this one: compare checksums, push when missing or different.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::outcome::BinaryState;
use super::transport::{shell_quote, CommandOutput, NodeTransport, RemoteExit, TransportError};

/// Where kiln lives on the nodes by default.
pub const DEFAULT_REMOTE_PATH: &str = "/var/lib/kiln/bin/kiln";

/// The binary to run on the nodes: a local file, its checksum, and its path on the node.
#[derive(Debug, Clone)]
pub struct RemoteBinary {
    pub local: PathBuf,
    pub remote_path: String,
    /// The CPU architecture `local` is built for (`x86_64`, `aarch64`).
    pub arch: String,
    hash: Arc<LocalHash>,
}

/// The local checksum, computed on a thread started by `RemoteBinary::new`
/// so that hashing a large binary overlaps the SSH connections.
#[derive(Debug)]
struct LocalHash {
    value: OnceLock<Result<String, String>>,
    job: Mutex<Option<JoinHandle<std::io::Result<String>>>>,
}

impl RemoteBinary {
    /// `local` (default: this running kiln) to be kept at `remote_path` on each node.
    pub fn new(local: Option<&Path>, remote_path: &str) -> std::io::Result<RemoteBinary> {
        let local = match local {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe()?,
        };
        // Fail now, not on every node, when the file cannot be read at all.
        std::fs::File::open(&local)?;
        let path = local.clone();
        let job = std::thread::spawn(move || local_sha256(&path));
        Ok(RemoteBinary {
            local,
            remote_path: remote_path.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            hash: Arc::new(LocalHash { value: OnceLock::new(), job: Mutex::new(Some(job)) }),
        })
    }

    /// Lowercase hex SHA-256 of `local`; waits for the hashing thread.
    pub fn sha256(&self) -> Result<&str, String> {
        let value = self.hash.value.get_or_init(|| {
            let job = self.hash.job.lock().ok().and_then(|mut j| j.take());
            match job.map(|j| j.join()) {
                Some(Ok(Ok(hex))) => Ok(hex),
                Some(Ok(Err(e))) => Err(format!("read {}: {e}", self.local.display())),
                Some(Err(_)) | None => Err(format!("hash {}: the hashing thread failed", self.local.display())),
            }
        });
        value.as_deref().map_err(Clone::clone)
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

/// The file beside the binary holding its checksum and the `stat` identity
/// (size, mtime, inode, ctime) it had when that checksum was taken.
fn stamp_path(remote: &str) -> String {
    format!("{remote}.sha256")
}

const STAT_FORMAT: &str = "%s %.9Y %i %.9Z";

/// Shell that sets `h` to the node binary's checksum (empty when the file
/// is missing): from the stamp when the binary's identity is unchanged since
/// it was hashed (any write or rename changes its ctime, which no one can set
/// back), else by `sha256sum`. Hashing a 50 MB binary on every node at every
/// run would cost more than the node command itself.
fn check_script(remote: &str) -> String {
    format!(
        "p={p}; s={s}; h=; i=; \
         if [ -e \"$p\" ]; then id=$(stat -c '{f}' -- \"$p\") || exit 1; \
         if [ -r \"$s\" ]; then {{ read -r h; read -r i; }} < \"$s\"; fi; \
         if [ -z \"$h\" ] || [ \"$i\" != \"$id\" ]; then h=$(sha256sum -- \"$p\" | cut -d' ' -f1); fi; fi",
        p = shell_quote(remote),
        s = shell_quote(&stamp_path(remote)),
        f = STAT_FORMAT,
    )
}

/// Exit code and stderr marker of a guarded command whose binary check failed.
const GUARD_EXIT: i32 = 97;
const GUARD_MARKER: &str = "kiln-binary-check:";

/// `argv` behind the binary check, as one remote command: it runs only when
/// the node's kiln is this one, else it exits with a marker. In the steady
/// state a node then costs one command, not two.
pub(crate) fn guarded(remote: &str, local_sha256: &str, argv: &[String]) -> Vec<String> {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let script = format!(
        "{check}; if [ \"$h\" = {local} ]; then exec {cmd}; fi; echo \"{GUARD_MARKER} ${{h:-missing}}\" >&2; exit {GUARD_EXIT}",
        check = check_script(remote),
        local = shell_quote(local_sha256),
        cmd = words.join(" "),
    );
    vec!["sh".into(), "-c".into(), script]
}

/// True when a guarded command stopped at the binary check.
pub(crate) fn stopped_by_guard(out: &CommandOutput) -> bool {
    out.exit == RemoteExit::Code(GUARD_EXIT) && out.stderr_tail().is_some_and(|l| l.starts_with(GUARD_MARKER))
}

fn remote_sha256(t: &mut dyn NodeTransport, remote: &str, timeout: Duration) -> Result<Option<String>, TransportError> {
    let script = format!("{}; echo \"sha256 $h\"", check_script(remote));
    let out = t.run(&["sh".into(), "-c".into(), script], timeout)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bad =
        |detail: String| TransportError::Checksum { node: t.node().to_string(), path: remote.to_string(), detail };
    if out.exit != RemoteExit::Code(0) {
        return Err(bad(out.stderr_tail().unwrap_or_else(|| format!("{:?}", out.exit))));
    }
    match text.strip_prefix("sha256").map(str::trim) {
        Some("") => Ok(None),
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(hex.to_ascii_lowercase()))
        }
        _ => Err(bad(format!("unexpected answer {text:?}"))),
    }
}

/// Records the verified checksum with the binary's current identity.
fn write_stamp(t: &mut dyn NodeTransport, remote: &str, sha256: &str, timeout: Duration) -> Result<(), TransportError> {
    let script = format!(
        "s={s}; printf '%s\\n%s\\n' {h} \"$(stat -c '{f}' -- {p})\" > \"$s.tmp.$$\" && mv -f \"$s.tmp.$$\" \"$s\"",
        s = shell_quote(&stamp_path(remote)),
        h = sha256,
        f = STAT_FORMAT,
        p = shell_quote(remote),
    );
    let out = t.run(&["sh".into(), "-c".into(), script], timeout)?;
    if out.exit != RemoteExit::Code(0) {
        return Err(TransportError::Checksum {
            node: t.node().to_string(),
            path: stamp_path(remote),
            detail: out.stderr_tail().unwrap_or_else(|| "could not write the checksum stamp".into()),
        });
    }
    Ok(())
}

/// Checks the node's copy; with `push`, replaces a missing or different one
/// and verifies the pushed copy's checksum. Without `push` only reports.
pub(crate) fn ensure(
    t: &mut dyn NodeTransport,
    bin: &RemoteBinary,
    push: bool,
    timeout: Duration,
) -> Result<BinaryState, TransportError> {
    let local = bin.sha256().map_err(|detail| TransportError::Checksum {
        node: t.node().to_string(),
        path: bin.local.display().to_string(),
        detail,
    })?;
    let before = remote_sha256(t, &bin.remote_path, timeout)?;
    match (&before, push) {
        (Some(h), _) if h == local => return Ok(BinaryState::Current),
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
    // The pushed copy is hashed in full, never taken from a stamp.
    let after = t.sha256(&bin.remote_path, timeout)?;
    if after.as_deref() != Some(local) {
        return Err(TransportError::Checksum {
            node: t.node().to_string(),
            path: bin.remote_path.clone(),
            detail: format!("pushed copy reads back as {after:?}, expected {local}"),
        });
    }
    write_stamp(t, &bin.remote_path, local, timeout)?;
    Ok(BinaryState::Pushed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::LocalTransport;

    #[test]
    fn a_stamp_is_trusted_only_while_the_binary_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, b"kiln v1").expect("write");
        let remote = dir.path().join("bin/kiln");
        let remote = remote.to_str().expect("utf8").to_string();
        let bin = RemoteBinary::new(Some(&src), &remote).expect("binary");
        let mut t = LocalTransport::new("here");
        let limit = Duration::from_secs(5);
        assert_eq!(ensure(&mut t, &bin, false, limit).expect("ensure"), BinaryState::Missing);
        assert_eq!(ensure(&mut t, &bin, true, limit).expect("ensure"), BinaryState::Pushed);
        assert_eq!(ensure(&mut t, &bin, true, limit).expect("ensure"), BinaryState::Current);
        // Changing the binary in place (same size) changes its ctime: the
        // stamp no longer applies and the full hash finds the difference.
        std::fs::write(&remote, b"kiln v2").expect("tamper");
        assert_eq!(ensure(&mut t, &bin, false, limit).expect("ensure"), BinaryState::Differs);
        assert_eq!(ensure(&mut t, &bin, true, limit).expect("ensure"), BinaryState::Pushed);
        assert_eq!(std::fs::read(&remote).expect("read"), b"kiln v1");
    }
}
