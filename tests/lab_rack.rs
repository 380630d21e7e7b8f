//! `kiln rack` against the lab's real peers: sshd in network namespaces, sushy-tools BMCs.
//! Needs root and `ip`; otherwise prints SKIPPED. One test, scenarios in order, one lab.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln::fleet::{run_step, FailureKind, FanoutOptions, NodeStatus, Plan, RemoteBinary, SshConnector, Step};
use kiln::rack::RackManifest;
use serde_json::Value;
use xtask::lab::{self, Lab, LabConfig};

fn skip_reason() -> Option<String> {
    if !lab::is_root() {
        return Some("not root: the lab needs network namespaces".into());
    }
    if !Path::new("/usr/sbin/ip").exists() && !Path::new("/sbin/ip").exists() && !Path::new("/usr/bin/ip").exists() {
        return Some("no `ip` (iproute2)".into());
    }
    None
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `kiln rack <step> --json` and returns (exit code, outcome JSON).
fn kiln_rack(step: &str, manifest: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", step, "--json", "--connect-timeout", "2", "--timeout", "60", "--rack"])
        .arg(manifest)
        .args(extra)
        .output()
        .expect("run kiln rack");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kiln rack {step}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

fn node<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["nodes"].as_array().and_then(|a| a.iter().find(|n| n["node"] == name)).expect("node in outcome")
}

fn status_of(outcome: &Value, name: &str) -> String {
    node(outcome, name)["status"].as_str().unwrap_or_default().to_string()
}

/// Takes the lab down even when an assertion fails halfway.
struct Teardown(PathBuf);

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Err(e) = lab::down(&self.0) {
            eprintln!("lab down failed: {e:#}");
        }
    }
}

#[test]
fn rack_against_the_lab() {
    if let Some(why) = skip_reason() {
        println!("SKIPPED: {why}");
        return;
    }
    let started = Instant::now();
    let mut cfg = LabConfig::standard(&repo(), 4);
    cfg.dir = repo().join("target/lab-test");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kt".into();
    cfg.subnet = 1;
    cfg.bmc_port_base = 8200;
    let _teardown = Teardown(cfg.dir.clone());
    let mut lab = lab::up(&cfg).expect("lab up");
    let manifest = lab.manifest().to_path_buf();

    // Every node answers on SSH and its BMC answers.
    let health = lab::status(&cfg.dir).expect("lab status");
    assert!(health.iter().all(|h| h.sshd && h.bmc == Some(true)), "{health:?}");

    first_run_pushes_kiln_and_runs_on_each_node(&manifest);
    full_validate(&lab, &manifest);
    first_contact_goes_through_trust(&manifest);
    changed_host_key_is_refused(&mut lab, &manifest);
    sshd_killed_mid_run_fails_only_that_node(&mut lab, &manifest);
    unplugged_node_is_unreachable(&lab, &manifest);

    drop(_teardown);
    assert!(lab::status(&cfg.dir).is_err(), "state file gone after down");
    let left = Command::new("ip").args(["netns", "list"]).output().expect("ip netns");
    assert!(!String::from_utf8_lossy(&left.stdout).contains("kt-node"), "namespaces left behind");
    assert!(!Path::new("/sys/class/net/ktbr0").exists(), "bridge left behind");
    for n in &lab.state.nodes {
        assert!(!Path::new(&format!("/proc/{}", n.sshd_pid)).exists() || is_zombie(n.sshd_pid), "{} sshd left", n.name);
        if let Some(pid) = n.bmc_pid {
            assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid), "{} BMC left", n.name);
        }
    }
    eprintln!("lab test took {:.1} s", started.elapsed().as_secs_f64());
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// `status` reports each node's own hostname (its UTS namespace), so each
/// command really ran on its node; after a `validate` the binary is current.
fn first_run_pushes_kiln_and_runs_on_each_node(manifest: &Path) {
    let (code, before) = kiln_rack("status", manifest, &[]);
    assert_eq!(code, 0, "{before:#}");
    for n in before["nodes"].as_array().expect("nodes") {
        assert_eq!(n["report"]["hostname"], n["node"], "{n:#}");
    }
    let (_, first) = kiln_rack("inspect", manifest, &[]);
    for n in first["nodes"].as_array().expect("nodes") {
        assert_eq!(n["binary"], "pushed", "{n:#}");
        assert!(n["remote_exit"].is_i64(), "the node command ran to its end: {n:#}");
    }
    let (_, after) = kiln_rack("status", manifest, &[]);
    for n in after["nodes"].as_array().expect("nodes") {
        assert_eq!(n["binary"], "current", "{n:#}");
    }
}

/// A full `kiln rack validate`. With the repository's fixtures, healthy
/// nodes pass and the faulty ones fail for their reason; with the lab's
/// generated trees (no fixtures yet) every node reports the same status.
fn full_validate(lab: &Lab, manifest: &Path) {
    let (code, out) = kiln_rack("validate", manifest, &[]);
    let statuses: Vec<String> = lab.state.nodes.iter().map(|n| status_of(&out, &n.name)).collect();
    assert!(statuses.iter().all(|s| s != "peer_error"), "{out:#}");
    let all_generated = lab.state.nodes.iter().all(|n| n.fixture == "generated");
    if all_generated {
        assert!(statuses.windows(2).all(|w| w[0] == w[1]), "identical trees, identical outcomes: {out:#}");
        assert_eq!(code, out["exit_code"].as_i64().expect("exit_code") as i32);
        return;
    }
    for n in &lab.state.nodes {
        let s = status_of(&out, &n.name);
        if n.fixture == "hgx-b200" {
            assert_eq!(s, "pass", "{}: {:#}", n.name, node(&out, &n.name));
        } else {
            assert_eq!(s, "fail", "{} ({}) must fail: {:#}", n.name, n.fixture, node(&out, &n.name));
            assert!(node(&out, &n.name)["reason"].as_str().is_some_and(|r| !r.is_empty()));
        }
    }
    assert_eq!(code, kiln::exit::CHECK_FAILED);
}

/// With an empty known_hosts every node is refused as untrusted; `kiln rack
/// trust` records the keys and the nodes are then accepted.
fn first_contact_goes_through_trust(manifest: &Path) {
    let dir = manifest.parent().expect("dir");
    let fresh = dir.join("fresh.toml");
    let text = std::fs::read_to_string(manifest).expect("read manifest");
    std::fs::write(&fresh, text.replace("known_hosts = \"known_hosts\"", "known_hosts = \"fresh_known_hosts\""))
        .expect("write manifest");
    let _ = std::fs::remove_file(dir.join("fresh_known_hosts"));

    let (code, out) = kiln_rack("status", &fresh, &[]);
    assert_eq!(code, kiln::exit::PEER);
    for n in out["nodes"].as_array().expect("nodes") {
        assert_eq!(n["failure"], "host_key_unknown", "{n:#}");
        assert!(n["reason"].as_str().unwrap_or_default().contains("run `kiln rack trust`"));
    }
    let trust =
        Command::new(env!("CARGO_BIN_EXE_kiln")).args(["rack", "trust", "--rack"]).arg(&fresh).output().expect("trust");
    let text = String::from_utf8_lossy(&trust.stdout);
    assert_eq!(trust.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("recorded").count(), 4, "{text}");
    assert!(text.contains("SHA256:"), "fingerprints shown: {text}");
    let (code, out) = kiln_rack("status", &fresh, &[]);
    assert_eq!(code, 0, "{out:#}");
}

/// A node whose host key changed is refused loudly; the others go on;
/// `trust` will not overwrite the key without --replace.
fn changed_host_key_is_refused(lab: &mut Lab, manifest: &Path) {
    lab.change_host_key("node02").expect("change key");
    let (code, out) = kiln_rack("status", manifest, &[]);
    assert_eq!(code, kiln::exit::PEER, "{out:#}");
    let n2 = node(&out, "node02");
    assert_eq!(n2["failure"], "host_key_changed", "{n2:#}");
    assert!(n2["reason"].as_str().unwrap_or_default().contains("HOST KEY CHANGED"));
    for other in ["node01", "node03", "node04"] {
        assert_eq!(status_of(&out, other), "pass");
    }
    let trust = |replace: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.args(["rack", "trust", "--node", "node02", "--rack"]).arg(manifest);
        if replace {
            c.arg("--replace");
        }
        c.output().expect("trust")
    };
    let refused = trust(false);
    assert_eq!(refused.status.code(), Some(kiln::exit::CHECK_FAILED));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("KEY CHANGED"));
    assert_eq!(status_of(&kiln_rack("status", manifest, &[]).1, "node02"), "peer_error");
    let replaced = trust(true);
    assert_eq!(replaced.status.code(), Some(0), "{}", String::from_utf8_lossy(&replaced.stdout));
    assert_eq!(status_of(&kiln_rack("status", manifest, &[]).1, "node02"), "pass");
}

/// The fan-out (library API, real SSH) runs a slow node command; node03's
/// sshd is killed while it runs. node03 fails with the connection lost, the
/// others finish.
fn sshd_killed_mid_run_fails_only_that_node(lab: &mut Lab, manifest: &Path) {
    let m = RackManifest::load(manifest).expect("manifest");
    let nodes: Vec<_> = m.nodes.iter().collect();
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let opts = FanoutOptions {
        parallel: 4,
        command_timeout: Duration::from_secs(60),
        binary: RemoteBinary::new(Some(&kiln), kiln::fleet::DEFAULT_REMOTE_PATH).expect("binary"),
    };
    let plan = Plan {
        step: Step::Inspect,
        command: vec!["sh".into(), "-c".into(), "sleep 3; exec {kiln} inspect --json --root {root}".into()],
        push: true,
    };
    let connector = SshConnector { credentials: m.credentials.clone(), connect_timeout: Duration::from_secs(2) };
    let outcomes = std::thread::scope(|s| {
        let run = s.spawn(|| run_step(&nodes, &plan, &opts, &connector, None, &|_, _| {}));
        // Kill once the node command is really running on node03.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lab.node_processes("node03").expect("processes").iter().any(|(_, c)| c.starts_with("sleep 3")) {
            assert!(Instant::now() < deadline, "node03 never started its command");
            std::thread::sleep(Duration::from_millis(20));
        }
        lab.kill_sshd("node03").expect("kill sshd");
        run.join().expect("fan-out thread")
    });
    let by = |name: &str| outcomes.iter().find(|o| o.node == name).expect("outcome");
    let n3 = by("node03");
    assert_eq!(n3.status, NodeStatus::PeerError, "{n3:#?}");
    assert_eq!(n3.failure, Some(FailureKind::Disconnected), "{n3:#?}");
    assert!(n3.reason.as_deref().unwrap_or_default().contains("connection lost"), "{n3:#?}");
    for other in ["node01", "node02", "node04"] {
        let o = by(other);
        assert_ne!(o.status, NodeStatus::PeerError, "{o:#?}");
        assert!(o.remote_exit.is_some(), "{other} ran to its end: {o:#?}");
    }
    lab.restart_sshd("node03").expect("restart");
}

/// A node whose cable is pulled times out on connect and is marked
/// unreachable; the rest pass and the rack exits PEER.
fn unplugged_node_is_unreachable(lab: &Lab, manifest: &Path) {
    lab.set_link("node04", false).expect("unplug");
    let t = Instant::now();
    let (code, out) = kiln_rack("status", manifest, &[]);
    lab.set_link("node04", true).expect("plug");
    assert_eq!(code, kiln::exit::PEER, "{out:#}");
    let n4 = node(&out, "node04");
    assert_eq!(n4["status"], "peer_error");
    assert!(matches!(n4["failure"].as_str(), Some("unreachable") | Some("timeout")), "{n4:#}");
    for other in ["node01", "node02", "node03"] {
        assert_eq!(status_of(&out, other), "pass", "{out:#}");
    }
    assert!(t.elapsed() < Duration::from_secs(20), "bounded by the connect timeout");
}
