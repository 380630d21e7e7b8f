//! The local backend of `NodeTransport`: runs the node command on this machine, for a rack of one
//! (a bench node, a CI runner) and for testing the fan-out without SSH.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::transport::{Answer, Answerer, CommandOutput, Connector, NodeTransport, RemoteExit, TransportError};
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

    /// Runs `argv` as a child; with `answer`, its stdin is a pipe that gets
    /// the reply once `answer` gives one (see `run_answering`), else it is
    /// closed from the start.
    fn exec(
        &mut self,
        argv: &[String],
        timeout: Duration,
        mut answer: Option<&mut Answerer<'_>>,
    ) -> Result<CommandOutput, TransportError> {
        let program = argv.first().cloned().unwrap_or_default();
        let spawn_err = |source| TransportError::Spawn { node: self.node.clone(), program: program.clone(), source };
        let mut child = Command::new(&program)
            .args(&argv[1.min(argv.len())..])
            .stdin(if answer.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let mut stdin = child.stdin.take();
        // Both pipes are drained on their own threads so that a chatty stderr
        // cannot fill its pipe and stall the child; stderr comes back in
        // pieces, for `answer` to read as it arrives.
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut v);
            }
            v
        });
        let (err_tx, err_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let err_thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Some(p) = err_pipe.as_mut() {
                match p.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if err_tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut stderr = Vec::new();
        let deadline = Instant::now() + timeout;
        let status = loop {
            let mut more = false;
            while let Ok(piece) = err_rx.try_recv() {
                stderr.extend_from_slice(&piece);
                more = true;
            }
            if more {
                if let Some(a) = answer.as_mut() {
                    if let Some(reply) = a(&stderr) {
                        answer = None;
                        if let Some(mut pipe) = stdin.take() {
                            // A child that ends before reading all of it
                            // leaves a broken pipe; what it printed says why.
                            let _ = write_answer(&mut pipe, &reply);
                        }
                    }
                }
            }
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
        drop(stdin);
        let stdout = out_thread.join().unwrap_or_default();
        let _ = err_thread.join();
        while let Ok(piece) = err_rx.try_recv() {
            stderr.extend_from_slice(&piece);
        }
        let exit = match status.code() {
            Some(code) => RemoteExit::Code(code),
            None => {
                use std::os::unix::process::ExitStatusExt;
                RemoteExit::Signal(status.signal().map(signal_name).unwrap_or_else(|| "unknown".into()))
            }
        };
        Ok(CommandOutput { stdout, stderr, exit })
    }
}

/// Writes `reply` to a child's stdin; dropping the pipe closes it.
fn write_answer(pipe: &mut std::process::ChildStdin, reply: &Answer) -> std::io::Result<()> {
    use std::io::Write;
    pipe.write_all(&reply.header)?;
    if let Some(body) = &reply.body {
        std::io::copy(&mut std::fs::File::open(body)?, pipe)?;
    }
    pipe.flush()
}

impl NodeTransport for LocalTransport {
    fn node(&self) -> &str {
        &self.node
    }

    fn exec(
        &mut self,
        argv: &[String],
        timeout: Duration,
        answer: Option<&mut Answerer<'_>>,
    ) -> Result<CommandOutput, TransportError> {
        LocalTransport::exec(self, argv, timeout, answer)
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
    fn a_command_is_answered_once_when_it_asks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = dir.path().join("body");
        std::fs::write(&body, b"the body\n").expect("write");
        let mut t = LocalTransport::new("here");
        // Asks on stderr, reads a line and then the rest of its input.
        let script = "echo 'need it' >&2; read -r word; echo \"word=$word\"; cat";
        let mut seen = Vec::new();
        let out = t
            .run_answering(&argv(&["sh", "-c", script]), Duration::from_secs(5), &mut |stderr| {
                seen.push(String::from_utf8_lossy(stderr).into_owned());
                stderr
                    .starts_with(b"need it\n")
                    .then(|| Answer { header: b"hello\n".to_vec(), body: Some(body.clone()) })
            })
            .expect("run");
        assert_eq!(out.stdout, b"word=hello\nthe body\n");
        assert_eq!(seen, ["need it\n"], "asked once");
        // A command that never asks runs as `run` would; its input ends when it does.
        let out = t
            .run_answering(&argv(&["sh", "-c", "echo quiet"]), Duration::from_secs(5), &mut |_| panic!("never asked"))
            .expect("run");
        assert_eq!(out.stdout, b"quiet\n");
    }
}
