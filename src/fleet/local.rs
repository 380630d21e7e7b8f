//! The local backend of `NodeTransport`: runs the node command on this machine, for a rack of one
//! (a bench node, a CI runner) and for testing the fan-out without SSH.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::transport::{upload_tmp_name, CommandOutput, Connector, NodeTransport, RemoteExit, TransportError};
use crate::rack::RackNode;

/// Opens a [`LocalTransport`] for any node, whatever its address.
#[derive(Debug, Clone, Default)]
pub struct LocalConnector;

impl Connector for LocalConnector {
    fn connect(&self, node: &RackNode) -> Result<Box<dyn NodeTransport>, TransportError> {
        Ok(Box::new(LocalTransport { node: node.name.clone() }))
    }
}

/// Runs commands as child processes of this one.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    node: String,
}

impl LocalTransport {
    pub fn new(node: impl Into<String>) -> Self {
        LocalTransport { node: node.into() }
    }
}

impl NodeTransport for LocalTransport {
    fn node(&self) -> &str {
        &self.node
    }

    fn run(&mut self, argv: &[String], timeout: Duration) -> Result<CommandOutput, TransportError> {
        let program = argv.first().cloned().unwrap_or_default();
        let spawn_err = |source| TransportError::Spawn { node: self.node.clone(), program: program.clone(), source };
        let mut child = Command::new(&program)
            .args(&argv[1.min(argv.len())..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        // Both pipes are drained on their own threads so that a chatty stderr
        // cannot fill its pipe and stall the child.
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut v);
            }
            v
        });
        let err_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut v);
            }
            v
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait().map_err(spawn_err)? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TransportError::Timeout {
                        node: self.node.clone(),
                        what: format!("command `{program}`"),
                        after: timeout,
                    });
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let stdout = out_thread.join().unwrap_or_default();
        let stderr = err_thread.join().unwrap_or_default();
        let exit = match status.code() {
            Some(code) => RemoteExit::Code(code),
            None => {
                use std::os::unix::process::ExitStatusExt;
                RemoteExit::Signal(status.signal().map(signal_name).unwrap_or_else(|| "unknown".into()))
            }
        };
        Ok(CommandOutput { stdout, stderr, exit })
    }

    fn upload(&mut self, local: &Path, remote: &str, mode: u32, _timeout: Duration) -> Result<(), TransportError> {
        use std::os::unix::fs::PermissionsExt;
        let upload_err = |source| TransportError::Upload {
            node: self.node.clone(),
            local: local.display().to_string(),
            remote: remote.to_string(),
            source,
        };
        let target = Path::new(remote);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(upload_err)?;
        }
        let tmp = upload_tmp_name(remote);
        std::fs::copy(local, &tmp).map_err(upload_err)?;
        let result = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .and_then(|_| std::fs::rename(&tmp, target));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(upload_err(e));
        }
        Ok(())
    }
}

/// The name SSH would report for a signal (`KILL`, without `SIG`).
fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "HUP".into(),
        libc::SIGINT => "INT".into(),
        libc::SIGKILL => "KILL".into(),
        libc::SIGSEGV => "SEGV".into(),
        libc::SIGTERM => "TERM".into(),
        libc::SIGABRT => "ABRT".into(),
        libc::SIGPIPE => "PIPE".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runs_a_command_and_reports_its_exit() {
        let mut t = LocalTransport::new("here");
        let out = t.run(&argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]), Duration::from_secs(5)).expect("run");
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr_tail().as_deref(), Some("err"));
        assert_eq!(out.exit, RemoteExit::Code(3));
    }

    #[test]
    fn kills_a_command_past_its_timeout() {
        let mut t = LocalTransport::new("here");
        let started = Instant::now();
        let err = t.run(&argv(&["sleep", "30"]), Duration::from_millis(300)).expect_err("must time out");
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn reports_a_signal() {
        let mut t = LocalTransport::new("here");
        let out = t.run(&argv(&["sh", "-c", "kill -KILL $$"]), Duration::from_secs(5)).expect("run");
        assert_eq!(out.exit, RemoteExit::Signal("KILL".into()));
    }

    #[test]
    fn upload_replaces_whole_and_checksums() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello").expect("write");
        let dst = dir.path().join("bin/kiln");
        let dst = dst.to_str().expect("utf8");
        let mut t = LocalTransport::new("here");
        assert_eq!(t.sha256(dst, Duration::from_secs(5)).expect("sha"), None);
        t.upload(&src, dst, 0o755, Duration::from_secs(5)).expect("upload");
        // sha256("hello")
        assert_eq!(
            t.sha256(dst, Duration::from_secs(5)).expect("sha").as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dst).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
