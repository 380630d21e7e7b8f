//! The IMEX service of a node: `nvidia-imex-ctl -N -j` (live: the command run with a deadline;
//! a snapshot: the recorded output `kiln/imex-ctl.json`, or `kiln/imex-ctl.err` for a command
//! that failed), `/etc/nvidia-imex/nodes_config.cfg` and the channel device, both read through
//! the node's root.
//!
//! The command can meet: no `nvidia-imex-ctl` (IMEX not installed), a daemon that is not running
//! or whose command service is off (a non-zero exit with a message), a daemon that does not
//! answer (killed at the deadline), and output that is not the documented JSON.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::root::SysTree;
use crate::model::{Imex, ImexDaemon, ImexPeer};

/// The program, found on PATH or in the directories NVIDIA's packages install it to.
pub const CTL: &str = "nvidia-imex-ctl";
/// A snapshot's recorded `nvidia-imex-ctl -N -j` output.
pub const RECORDED: &str = "kiln/imex-ctl.json";
/// A snapshot's recorded failure of the command: its message.
pub const RECORDED_ERROR: &str = "kiln/imex-ctl.err";
pub const CONFIG_DIR: &str = "etc/nvidia-imex";
pub const NODES_CONFIG: &str = "etc/nvidia-imex/nodes_config.cfg";
pub const CHANNEL0: &str = "dev/nvidia-caps-imex-channels/channel0";

/// How long the daemon may take to answer.
const DEADLINE: Duration = Duration::from_secs(10);
/// The most output kiln reads from the command (72 peers with 72 connections each is ~0.4 MB).
const MAX_OUTPUT: u64 = 8 << 20;

/// Reads the node's IMEX service. Never fails: what could not be read is in the result.
pub fn read_imex(tree: &dyn SysTree) -> Imex {
    let live = tree.root() == Path::new("/");
    let daemon = if live { live_daemon() } else { recorded_daemon(tree) };
    let has_config_dir = tree.exists(Path::new(CONFIG_DIR));
    let daemon = match (daemon, has_config_dir) {
        (Some(d), _) => d,
        (None, false) => {
            // The same words live and replayed: a capture replays as the node it was taken from.
            return Imex::NotInstalled { reason: format!("IMEX is not installed: no {CTL} and no /{CONFIG_DIR}") };
        }
        (None, true) if live => {
            ImexDaemon::NotAnswering { reason: format!("/{CONFIG_DIR} is there but {CTL} is not on PATH") }
        }
        // A capture holds the files but not the daemon's answer: that is not the daemon's fault.
        (None, true) => ImexDaemon::Unreadable {
            reason: format!("/{CONFIG_DIR} is in the tree but no {CTL} output is recorded ({RECORDED})"),
        },
    };
    let config = tree.read(Path::new(NODES_CONFIG)).ok().map(|text| peers(&text));
    let channel0 = tree.exists(Path::new(CHANNEL0));
    Imex::Inspected { daemon, config, channel0 }
}

/// The peers of a nodes_config.cfg: every line that is not blank or a `#` comment, trimmed.
pub fn peers(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

fn find_ctl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].into_iter().map(PathBuf::from))
        .map(|d| d.join(CTL))
        .find(|p| p.is_file())
}

/// Runs `nvidia-imex-ctl -N -j` with a deadline; `None` when the program is not there.
fn live_daemon() -> Option<ImexDaemon> {
    let program = find_ctl()?;
    let child = Command::new(&program)
        .args(["-N", "-j"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Some(ImexDaemon::NotAnswering { reason: format!("run {}: {e}", program.display()) }),
    };
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.take(MAX_OUTPUT).read_to_end(&mut v);
        }
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.take(64 << 10).read_to_end(&mut v);
        }
        v
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < DEADLINE => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Some(ImexDaemon::NotAnswering {
            reason: format!("{CTL} -N -j did not answer within {} s (killed)", DEADLINE.as_secs()),
        });
    };
    if !status.success() {
        let said = String::from_utf8_lossy(if stderr.is_empty() { &stdout } else { &stderr }).trim().to_string();
        let said: String = said.lines().last().unwrap_or("no message").chars().take(300).collect();
        return Some(ImexDaemon::NotAnswering { reason: format!("{CTL} -N -j exited {status}: {said}") });
    }
    Some(parse_domain(&String::from_utf8_lossy(&stdout)))
}

fn recorded_daemon(tree: &dyn SysTree) -> Option<ImexDaemon> {
    if let Ok(text) = tree.read(Path::new(RECORDED_ERROR)) {
        return Some(ImexDaemon::NotAnswering { reason: text.trim().to_string() });
    }
    match tree.read(Path::new(RECORDED)) {
        Ok(text) => Some(parse_domain(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(ImexDaemon::Unreadable { reason: format!("read {RECORDED}: {e}") }),
    }
}

/// `nvidia-imex-ctl -N -j`'s document: `{"status": "UP", "nodes": {"0": {"status", "host",
/// "version", ...}, ...}}`. Peers come in index order.
pub fn parse_domain(text: &str) -> ImexDaemon {
    let unreadable = |why: String| ImexDaemon::Unreadable { reason: why };
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return unreadable(format!("{CTL} -N -j printed no JSON document: {e}")),
    };
    let Some(domain) = doc.get("status").and_then(Value::as_str) else {
        return unreadable(format!("{CTL} -N -j: no domain \"status\""));
    };
    let Some(nodes) = doc.get("nodes").and_then(Value::as_object) else {
        return unreadable(format!("{CTL} -N -j: no \"nodes\" object"));
    };
    let mut peers = Vec::new();
    for (index, n) in nodes {
        let field = |k: &str| n.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(host), Some(status)) = (field("host"), field("status")) else {
            return unreadable(format!("{CTL} -N -j: node {index} has no \"host\" or \"status\""));
        };
        peers.push(ImexPeer { index: index.clone(), host, status, version: field("version") });
    }
    peers.sort_by_key(|p| (p.index.parse::<u64>().unwrap_or(u64::MAX), p.index.clone()));
    ImexDaemon::Answered { domain: domain.to_string(), peers }
}

/// What a capture records of the daemon so that its replay reads the same: the answer as
/// `kiln/imex-ctl.json` in the command's own format (domain status and each peer's host, status
/// and version), or the failure's message as `kiln/imex-ctl.err`. Nothing for an output that
/// could not be read, or without IMEX.
pub fn recording(imex: Option<&Imex>) -> Option<(&'static str, String)> {
    let Some(Imex::Inspected { daemon, .. }) = imex else { return None };
    match daemon {
        ImexDaemon::Answered { domain, peers } => {
            let nodes: serde_json::Map<String, Value> = peers
                .iter()
                .map(|p| {
                    let mut n = serde_json::json!({ "status": p.status, "host": p.host });
                    if let Some(v) = &p.version {
                        n["version"] = Value::String(v.clone());
                    }
                    (p.index.clone(), n)
                })
                .collect();
            let doc = serde_json::json!({ "nodes": nodes, "status": domain });
            let text = serde_json::to_string_pretty(&doc).ok()?;
            Some((RECORDED, format!("{text}\n")))
        }
        ImexDaemon::NotAnswering { reason } => Some((RECORDED_ERROR, format!("{reason}\n"))),
        ImexDaemon::Unreadable { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::root::FsTree;

    const UP: &str = include_str!("../../tests/fixtures/imex/domain-up.json");
    const DEGRADED: &str = include_str!("../../tests/fixtures/imex/domain-degraded.json");

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, FsTree) {
        let dir = tempfile::tempdir().expect("dir");
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let t = FsTree::at(dir.path());
        (dir, t)
    }

    #[test]
    fn the_documented_output_reads_as_every_peer_in_index_order() {
        let ImexDaemon::Answered { domain, peers } = parse_domain(DEGRADED) else { panic!("answered") };
        assert_eq!(domain, "DEGRADED");
        let seen: Vec<(&str, &str)> = peers.iter().map(|p| (p.host.as_str(), p.status.as_str())).collect();
        assert_eq!(
            seen,
            [("10.77.5.11", "READY"), ("10.77.5.12", "READY"), ("10.77.5.13", "UNAVAILABLE"), ("10.77.5.14", "READY")]
        );
        assert_eq!(peers[0].version.as_deref(), Some("580.95.05"));
        assert!(matches!(parse_domain("not json"), ImexDaemon::Unreadable { .. }));
        assert!(matches!(parse_domain("{\"nodes\": {}}"), ImexDaemon::Unreadable { .. }));
    }

    #[test]
    fn a_snapshot_reads_the_recorded_output_the_peer_list_and_the_channel() {
        let (_d, t) = tree(&[
            (RECORDED, UP),
            (NODES_CONFIG, "# peers\n10.77.5.11\n10.77.5.12\n\n10.77.5.13\n10.77.5.14\n"),
            (CHANNEL0, ""),
        ]);
        let Imex::Inspected { daemon: ImexDaemon::Answered { domain, peers }, config, channel0 } = read_imex(&t) else {
            panic!("inspected")
        };
        assert_eq!((domain.as_str(), peers.len(), channel0), ("UP", 4, true));
        assert_eq!(config.expect("config").len(), 4);
        let (_d, none) = tree(&[("proc/sys/kernel/hostname", "n1\n")]);
        assert!(matches!(read_imex(&none), Imex::NotInstalled { reason } if reason.contains("not installed")));
        let (_d, down) = tree(&[(RECORDED_ERROR, "connection refused\n"), (NODES_CONFIG, "10.0.0.1\n")]);
        let Imex::Inspected { daemon, channel0, .. } = read_imex(&down) else { panic!("inspected") };
        assert_eq!(daemon, ImexDaemon::NotAnswering { reason: "connection refused".into() });
        assert!(!channel0);
    }

    #[test]
    fn a_recording_replays_as_the_answer_it_records() {
        for (rel, text) in [(RECORDED, UP), (RECORDED_ERROR, "refused\n")] {
            let (_d, t) = tree(&[(rel, text), (NODES_CONFIG, "10.77.5.11\n")]);
            let read = read_imex(&t);
            let (path, recorded) = recording(Some(&read)).expect("recorded");
            let (_d2, again) = tree(&[(path, recorded.as_str()), (NODES_CONFIG, "10.77.5.11\n")]);
            assert_eq!(read_imex(&again), read);
        }
        assert!(recording(Some(&Imex::NotInstalled { reason: "none".into() })).is_none());
    }
}
