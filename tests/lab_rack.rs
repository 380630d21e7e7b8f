//! `kiln rack` and `kiln bmc` against the lab's real peers: sshd in network namespaces, sushy-tools
//! BMCs, results recorded in the inventory. Needs root and `ip`; otherwise prints SKIPPED (a
//! failure with KILN_REQUIRE_PEERS=1). One test, scenarios in order, one lab.

mod bmc_support;
mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bmc_support::server::RecordedServer;
use kiln::checks::Outcome;
use kiln::fleet::{
    run_rack_step, run_step, FailureKind, FanoutOptions, NodeStatus, Plan, RackStep, RemoteBinary, SshConnector, Step,
};
use kiln::inventory::Inventory;
use kiln::lifecycle::{LifecycleState, RunKind};
use kiln::rack::RackManifest;
use serde_json::Value;
use xtask::lab::{self, Lab, LabConfig};

/// The lab's nodes: two healthy, one with a GPU trained at x8, one with an NVLink down.
const FIXTURES: [&str; 4] = ["hgx-b200", "hgx-b200", "hgx-b200-gpu-x8", "hgx-b200-nvlink-down"];

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

/// The lab test's inventory, beside its manifest.
fn db_of(manifest: &Path) -> PathBuf {
    manifest.parent().expect("manifest dir").join("kiln.db")
}

fn inventory(manifest: &Path) -> Inventory {
    Inventory::open_existing(db_of(manifest)).expect("the lab's inventory exists")
}

/// Runs `kiln rack <step> --json`, recording into the lab's inventory, and
/// returns (exit code, outcome JSON).
fn kiln_rack(step: &str, manifest: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", step, "--json", "--connect-timeout", "2", "--timeout", "60", "--rack"])
        .arg(manifest)
        .arg("--db")
        .arg(db_of(manifest))
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

#[test]
fn rack_against_the_lab() {
    if let Some(why) = skip_reason() {
        return bmc_support::skip(&why);
    }
    let started = Instant::now();
    let mut cfg = LabConfig::standard(&repo(), FIXTURES.len());
    cfg.dir = repo().join("target/lab-test");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kt".into();
    cfg.subnet = 1;
    cfg.bmc_port_base = 8200;
    // node01 is the healthy tree itself; the others are machines of their own (their own
    // serials), as the rack's serial checks expect of a real rack.
    cfg.fixtures = FIXTURES
        .iter()
        .enumerate()
        .map(|(i, name)| match i {
            0 => fixture_support::written(&cfg.dir, name),
            _ => fixture_support::written(&cfg.dir, &format!("{name}@{}", i + 1)),
        })
        .collect();
    let _teardown = lab::Teardown(cfg.dir.clone());
    let _ = std::fs::remove_file(cfg.dir.join("kiln.db"));
    let mut lab = lab::up(&cfg).expect("lab up");
    let manifest = lab.manifest().to_path_buf();
    let _ = std::fs::remove_file(db_of(&manifest));

    // Every node answers on SSH and its BMC answers.
    let health = lab::status(&cfg.dir).expect("lab status");
    assert!(health.iter().all(|h| h.sshd && h.bmc == Some(true)), "{health:?}");

    first_run_pushes_kiln_and_runs_on_each_node(&manifest);
    full_validate_is_recorded(&manifest);
    rerun_skips_passed_nodes_unless_forced(&manifest);
    first_contact_goes_through_trust(&manifest);
    changed_host_key_is_refused(&mut lab, &manifest);
    sshd_killed_mid_run_fails_only_that_node(&mut lab, &manifest);
    unplugged_node_is_unreachable_and_failed(&lab, &manifest);
    bmc_through_the_manifest(&manifest);
    bmc_answering_500_is_retried_then_reported(&manifest);
    bringup_runs_the_pipeline(&manifest);
    a_mixed_rack_gets_each_node_its_binary_from_dist(&mut lab, &manifest);
    assert_eq!(inventory(&manifest).integrity_check().expect("integrity"), ["ok"]);

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
/// command really ran on its node; after an `inspect` the binary is current
/// and each node is recorded as inspected.
fn first_run_pushes_kiln_and_runs_on_each_node(manifest: &Path) {
    let (code, before) = kiln_rack("status", manifest, &[]);
    assert_eq!(code, 0, "{before:#}");
    for n in before["nodes"].as_array().expect("nodes") {
        assert_eq!(n["report"]["hostname"], n["node"], "{n:#}");
    }
    let (code, first) = kiln_rack("inspect", manifest, &[]);
    assert_eq!(code, 0, "{first:#}");
    for n in first["nodes"].as_array().expect("nodes") {
        assert_eq!(n["binary"], "pushed", "{n:#}");
        assert!(n["remote_exit"].is_i64(), "the node command ran to its end: {n:#}");
        assert_eq!(n["recorded"]["state"], "inspected", "{n:#}");
    }
    let (_, after) = kiln_rack("status", manifest, &[]);
    for n in after["nodes"].as_array().expect("nodes") {
        assert_eq!(n["binary"], "current", "{n:#}");
    }
    let inv = inventory(manifest);
    for name in ["node01", "node02", "node03", "node04"] {
        let row = inv.node(name).expect("query").expect("recorded");
        assert_eq!((row.state, row.rack.as_deref()), (LifecycleState::Inspected, Some("kt-lab")));
        let run = inv.latest_run(row.id).expect("query").expect("inspect run");
        assert_eq!((run.kind.as_str(), run.actor.as_str()), ("inspect", "kiln rack inspect"));
        assert_eq!(inv.run_node(run.id).expect("node json").gpus.gpus().len(), 8);
    }
}

/// The failing check ids of a node's newest validate run.
fn failed_checks(inv: &Inventory, name: &str) -> Vec<String> {
    let id = inv.node(name).expect("query").expect("node").id;
    let run = inv.latest_run_of_kind(id, RunKind::Validate).expect("query").expect("validate run");
    let mut checks: Vec<String> = inv
        .run_findings(run.id)
        .expect("findings")
        .into_iter()
        .filter(|f| f.outcome == Outcome::Fail)
        .map(|f| f.check)
        .collect();
    checks.dedup();
    checks
}

/// A full `kiln rack validate`: healthy nodes pass and are validated; the
/// faulty ones fail for their reason and are failed with it; all of it, and
/// the rack run with its checks, in the inventory.
fn full_validate_is_recorded(manifest: &Path) {
    let (code, out) = kiln_rack("validate", manifest, &[]);
    assert_eq!(code, kiln::exit::CHECK_FAILED, "{out:#}");
    for (name, status) in [("node01", "pass"), ("node02", "pass"), ("node03", "fail"), ("node04", "fail")] {
        assert_eq!(status_of(&out, name), status, "{:#}", node(&out, name));
    }
    assert!(node(&out, "node03")["reason"].as_str().unwrap_or_default().starts_with("pcie.width"), "{out:#}");
    assert!(node(&out, "node04")["reason"].as_str().unwrap_or_default().starts_with("nvlink.active"), "{out:#}");

    let inv = inventory(manifest);
    assert_eq!(failed_checks(&inv, "node01"), Vec::<String>::new());
    assert_eq!(failed_checks(&inv, "node03"), ["pcie.width"]);
    assert_eq!(failed_checks(&inv, "node04"), ["nvlink.active"]);
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
    assert_eq!(inv.state("node02").expect("state"), LifecycleState::Validated);
    let failed = |name: &str| match inv.state(name).expect("state") {
        LifecycleState::Failed { reason } => reason,
        other => panic!("{name} is {other}, expected failed"),
    };
    assert_eq!(failed("node03"), "validate failed: pcie.width");
    assert_eq!(failed("node04"), "validate failed: nvlink.active");

    let runs = inv.rack_runs("kt-lab").expect("rack runs");
    assert_eq!(runs[0].kind, "validate");
    assert_eq!(Some(runs[0].id.0), out["rack_run_id"].as_i64());
    assert_eq!(runs[0].node_status.get("node03").map(String::as_str), Some("fail"));
    let checks = inv.rack_run_findings(runs[0].id).expect("rack findings");
    assert!(!checks.is_empty() && checks.len() == out["rack_findings"].as_array().expect("findings").len());
    assert!(checks.iter().any(|f| f.check == "rack.count.gpu" && f.outcome == Outcome::Pass), "{checks:#?}");
}

/// A rerun skips the validated nodes (saying when they passed) and runs the
/// failed ones again; `--force` runs every node.
fn rerun_skips_passed_nodes_unless_forced(manifest: &Path) {
    let (code, out) = kiln_rack("validate", manifest, &[]);
    assert_eq!(code, kiln::exit::CHECK_FAILED);
    for name in ["node01", "node02"] {
        let n = node(&out, name);
        assert_eq!(n["status"], "skipped", "{n:#}");
        let why = n["reason"].as_str().unwrap_or_default();
        assert!(why.starts_with("already passed at 20") && why.ends_with("; --force to rerun"), "{why}");
        assert!(n.get("remote_exit").is_none(), "nothing ran on {name}");
    }
    assert_eq!(status_of(&out, "node03"), "fail");
    // The table says the same to a person.
    let table = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "validate", "--connect-timeout", "2", "--nodes", "node01", "--rack"])
        .arg(manifest)
        .arg("--db")
        .arg(db_of(manifest))
        .output()
        .expect("run kiln rack");
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), Some(0), "a node skipped as passed counts as passed: {text}");
    assert!(text.contains("skipped") && text.contains("--force to rerun"), "{text}");

    let (_, forced) = kiln_rack("validate", manifest, &["--force"]);
    assert_eq!(status_of(&forced, "node01"), "pass", "{forced:#}");
    assert_eq!(status_of(&forced, "node02"), "pass");
    let inv = inventory(manifest);
    let id = inv.node("node01").expect("query").expect("node").id;
    let validates = inv.runs(id).expect("runs").iter().filter(|r| r.kind == "validate").count();
    assert_eq!(validates, 2, "the first run and the forced one; the skips recorded no run");
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

fn fanout_options() -> FanoutOptions {
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    FanoutOptions {
        parallel: 4,
        command_timeout: Duration::from_secs(60),
        binary: RemoteBinary::new(Some(&kiln), kiln::fleet::DEFAULT_REMOTE_PATH).expect("binary"),
    }
}

/// A recorded, forced validate (the library path `kiln rack` takes, real
/// SSH) whose node command waits 3 s first; node02's sshd is killed while it
/// waits. node02 fails with the connection lost and is recorded as failed
/// with that reason; the other nodes run to their end and are recorded.
fn sshd_killed_mid_run_fails_only_that_node(lab: &mut Lab, manifest: &Path) {
    let m = RackManifest::load(manifest).expect("manifest");
    let nodes: Vec<_> = m.nodes.iter().collect();
    let opts = fanout_options();
    let plan = Plan {
        step: Step::Validate,
        command: vec![
            "sh".into(),
            "-c".into(),
            "sleep 3; exec {kiln} validate --json --with-node --root {root}".into(),
        ],
        push: true,
    };
    let connector = SshConnector { credentials: m.credentials.clone(), connect_timeout: Duration::from_secs(2) };
    let specs = kiln::checks::spec_load::load_builtin().expect("built-in specs");
    let step = RackStep {
        rack: &m.rack.id,
        rack_platform: m.rack.platform.as_deref(),
        specs: &specs,
        nodes: &nodes,
        plan: &plan,
        opts: &opts,
        force: true,
        whole_rack: false,
    };
    let mut inv = inventory(manifest);
    let outcome = std::thread::scope(|s| {
        let run = s.spawn(|| run_rack_step(&step, &connector, Some(&mut inv), &|_, _| {}));
        // Kill once the node command is really running on node02.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lab.node_processes("node02").expect("processes").iter().any(|(_, c)| c.starts_with("sleep 3")) {
            assert!(Instant::now() < deadline, "node02 never started its command");
            std::thread::sleep(Duration::from_millis(20));
        }
        lab.kill_sshd("node02").expect("kill sshd");
        run.join().expect("fan-out thread").expect("inventory readable")
    });
    let by = |name: &str| outcome.nodes.iter().find(|o| o.node == name).expect("outcome");
    let n2 = by("node02");
    assert_eq!(n2.status, NodeStatus::PeerError, "{n2:#?}");
    assert_eq!(n2.failure, Some(FailureKind::Disconnected), "{n2:#?}");
    assert!(n2.reason.as_deref().unwrap_or_default().contains("connection lost"), "{n2:#?}");
    assert_eq!(n2.recorded.as_ref().and_then(|r| r.state.as_deref()), Some("failed"));
    assert_eq!(by("node01").status, NodeStatus::Pass);
    for other in ["node01", "node03", "node04"] {
        let o = by(other);
        assert!(o.remote_exit.is_some(), "{other} ran to its end: {o:#?}");
        assert!(o.recorded.as_ref().is_some_and(|r| r.run_id.is_some()), "{other} recorded: {o:#?}");
    }
    assert_eq!(outcome.exit_code, kiln::exit::CHECK_FAILED);

    match inv.state("node02").expect("state") {
        LifecycleState::Failed { reason } => {
            assert!(reason.starts_with("validate could not run (disconnected): node02: connection lost"), "{reason}")
        }
        other => panic!("node02 is {other}"),
    }
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
    let last = inv.history("node02").expect("history").pop().expect("an event");
    assert_eq!((last.from, last.actor.as_str()), (Some(LifecycleState::Validated), "kiln rack validate"));
    drop(inv);
    lab.restart_sshd("node02").expect("restart");

    // The fan-out alone (no inventory) sees the same when it runs inspect.
    let plan = Plan {
        step: Step::Inspect,
        command: vec!["sh".into(), "-c".into(), "sleep 3; exec {kiln} inspect --json --root {root}".into()],
        push: true,
    };
    let outcomes = std::thread::scope(|s| {
        let run = s.spawn(|| run_step(&nodes, &plan, &opts, &connector, None, &|_, _| {}));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lab.node_processes("node03").expect("processes").iter().any(|(_, c)| c.starts_with("sleep 3")) {
            assert!(Instant::now() < deadline, "node03 never started its command");
            std::thread::sleep(Duration::from_millis(20));
        }
        lab.kill_sshd("node03").expect("kill sshd");
        run.join().expect("fan-out thread")
    });
    let n3 = outcomes.iter().find(|o| o.node == "node03").expect("node03");
    assert_eq!(n3.failure, Some(FailureKind::Disconnected), "{n3:#?}");
    assert!(outcomes.iter().filter(|o| o.node != "node03").all(|o| o.status == NodeStatus::Pass), "{outcomes:#?}");
    lab.restart_sshd("node03").expect("restart");
}

/// A node whose cable is pulled times out on connect and is marked
/// unreachable; the rest pass and the rack exits PEER. A validate of it
/// records the node as failed with that reason.
fn unplugged_node_is_unreachable_and_failed(lab: &Lab, manifest: &Path) {
    lab.set_link("node04", false).expect("unplug");
    let t = Instant::now();
    let (code, out) = kiln_rack("status", manifest, &[]);
    let (vcode, validate) = kiln_rack("validate", manifest, &["--nodes", "node04"]);
    lab.set_link("node04", true).expect("plug");
    assert_eq!(code, kiln::exit::PEER, "{out:#}");
    let n4 = node(&out, "node04");
    assert_eq!(n4["status"], "peer_error");
    assert!(matches!(n4["failure"].as_str(), Some("unreachable") | Some("timeout")), "{n4:#}");
    for other in ["node01", "node02", "node03"] {
        assert_eq!(status_of(&out, other), "pass", "{out:#}");
    }
    assert!(t.elapsed() < Duration::from_secs(20), "bounded by the connect timeout");
    assert_eq!(vcode, kiln::exit::PEER, "{validate:#}");
    let reason = inventory(manifest).state("node04").expect("state").reason().unwrap_or_default().to_string();
    assert!(reason.starts_with("validate could not run (unreachable)") || reason.contains("(timeout)"), "{reason}");
}

fn kiln_bmc(args: &[&str], manifest: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("bmc")
        .args(args)
        .arg("--rack")
        .arg(manifest)
        .arg("--db")
        .arg(db_of(manifest))
        .env_remove("KILN_LOG")
        .output()
        .expect("run kiln bmc")
}

/// `kiln bmc` reaches a node's sushy BMC through the lab manifest (TLS
/// against the lab's CA, the password from its file); a change is logged.
fn bmc_through_the_manifest(manifest: &Path) {
    let out = kiln_bmc(&["power", "status", "--node", "node01", "--json"], manifest);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((v["node"].as_str(), v["power"].as_str()), (Some("node01"), Some("on")), "{v:#}");
    let out = kiln_bmc(&["boot", "pxe", "--node", "node01"], manifest);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let history = inventory(manifest).history("node01").expect("history");
    let notes: Vec<&str> = history.iter().filter(|e| e.actor == "kiln bmc").map(|e| e.cause.as_str()).collect();
    assert_eq!(notes.len(), 2, "{history:#?}");
    assert!(notes[0].starts_with("bmc boot.pxe requested (https://10.77.1.1:"), "{notes:?}");
    assert!(notes[1].starts_with("bmc boot.pxe done (https://10.77.1.1:"), "{notes:?}");
    assert_eq!(history.last().map(|e| &e.to), Some(&LifecycleState::Validated), "a BMC action moves no state");
}

/// node02's BMC is pointed at a server that answers 500: kiln retries, then
/// reports the failure naming the BMC; a BMC that recovers within the
/// retries answers.
fn bmc_answering_500_is_retried_then_reported(manifest: &Path) {
    let server = RecordedServer::recorded("gh200", None);
    let text = std::fs::read_to_string(manifest).expect("read manifest");
    let mut out = String::new();
    let mut in_node02 = false;
    for line in text.lines() {
        if line.starts_with("name = ") {
            in_node02 = line == "name = \"node02\"";
        }
        if in_node02 && line.starts_with("bmc = ") {
            out.push_str(&format!("bmc = \"{}\"\n", server.url()));
        } else if !(in_node02 && line.starts_with("bmc_system = ")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let faulty = manifest.parent().expect("dir").join("faulty-bmc.toml");
    std::fs::write(&faulty, out).expect("write manifest");

    server.fail(None, "/redfish/v1/Systems", 500, "internal error in the BMC", None);
    let out = kiln_bmc(&["power", "status", "--node", "node02"], &faulty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::PEER), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "bmc {} (node02): GET /redfish/v1/Systems answered 500 after 4 tries: internal error in the BMC",
            server.url()
        )),
        "{stderr}"
    );
    assert_eq!(server.count("GET", "/redfish/v1/Systems"), 4, "tried four times");

    let recovering = RecordedServer::recorded("gh200", None);
    recovering.fail(None, "/redfish/v1/Systems", 500, "busy", Some(2));
    std::fs::write(&faulty, std::fs::read_to_string(&faulty).expect("read").replace(&server.url(), &recovering.url()))
        .expect("write manifest");
    let out = kiln_bmc(&["power", "status", "--node", "node02"], &faulty);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(recovering.count("GET", "/redfish/v1/Systems"), 3, "two 500s, then the answer");
}

/// `cargo xtask bringup --rack`'s pipeline with this kiln: validate (the
/// validated nodes skipped, the rest run), burn-in on the nodes that passed,
/// and the table; not every node passed. The lab's nodes have no GPU driver,
/// so burn-in runs only its host stress and says it was incomplete (exit 7),
/// or, when the machine is too loaded for stress-ng's memory stressor to
/// finish an operation, that it could not check (exit 3): recorded either
/// way, and no node becomes burned_in.
fn bringup_runs_the_pipeline(manifest: &Path) {
    let b = xtask::bringup_rack::RackBringup {
        kiln: PathBuf::from(env!("CARGO_BIN_EXE_kiln")),
        rack: manifest.to_path_buf(),
        db: db_of(manifest),
        parallel: 4,
        burnin_duration: "5s".into(),
        rack_args: vec!["--connect-timeout".into(), "2".into()],
    };
    let outcome = xtask::bringup_rack::run(&b).expect("bringup runs");
    let table = outcome.table();
    assert_eq!(outcome.validate_exit, kiln::exit::CHECK_FAILED, "{table}");
    assert_ne!(outcome.exit_code, 0, "two nodes fail validate: {table}");
    assert_eq!(outcome.nodes["node01"].validate, "skipped", "{table}");
    assert_eq!(outcome.nodes["node02"].validate, "pass", "failed by the sshd kill, so it ran again: {table}");
    assert_eq!(outcome.nodes["node03"].validate, "fail", "{table}");
    assert!(outcome.nodes["node03"].state.starts_with("failed (validate failed: pcie.width"), "{table}");
    let burnin_exit = outcome.burnin_exit.expect("burn-in ran");
    assert!(matches!(burnin_exit, kiln::exit::SKIPPED | kiln::exit::CHECK_ERROR), "{table}");
    for name in ["node01", "node02"] {
        assert!(matches!(outcome.nodes[name].burnin.as_str(), "skipped" | "error"), "{table}");
        assert_eq!(outcome.nodes[name].state, "validated", "an incomplete burn-in moves nothing: {table}");
    }
    assert_eq!(outcome.nodes["node03"].burnin, "-", "burn-in only on nodes that passed: {table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    let inv = inventory(manifest);
    let id = inv.node("node01").expect("query").expect("node").id;
    let run = inv.latest_run_of_kind(id, RunKind::Burnin).expect("query").expect("burn-in recorded");
    assert!(matches!(run.exit_code, kiln::exit::SKIPPED | kiln::exit::CHECK_ERROR), "{run:?}");
    assert_eq!(run.actor, "kiln rack burnin");
    assert!(inv.latest_run_of_kind(inv.node("node03").unwrap().unwrap().id, RunKind::Burnin).unwrap().is_none());
}

/// `kiln rack --dist DIR` over a rack whose node04 reports another
/// architecture (its sshd runs under `setarch i686`, so `uname -m` there says
/// i686) and a directory holding only this machine's binary, packed by
/// `xtask::dist` as `cargo xtask dist` packs it: the other nodes get the
/// packed copy, unpacked and verified on the node, and run; node04 fails
/// naming its architecture, is sent nothing, and the rest go on.
fn a_mixed_rack_gets_each_node_its_binary_from_dist(lab: &mut Lab, manifest: &Path) {
    let dir = manifest.parent().expect("manifest dir").join("dist");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A stripped copy of the test's kiln: a binary other than the one the
    // nodes have, so every node needs a push.
    let stripped = dir.join("kiln-stripped");
    let st = Command::new("strip").arg("-o").arg(&stripped).arg(env!("CARGO_BIN_EXE_kiln")).status().expect("strip");
    assert!(st.success(), "strip (binutils)");
    let target = xtask::dist::host_target().expect("host target");
    let out = dir.join("out");
    xtask::dist::package(&stripped, &target, &out).expect("package");
    let m = xtask::dist::index(&out, xtask::dist::PackLevels::FAST).expect("index");
    let want = m.targets[0].binary.sha256.clone();
    lab.set_node_arch("node04", Some("i686")).expect("node04 as i686");
    let dist = out.to_str().expect("utf-8").to_string();
    let (code, run) = kiln_rack("inspect", manifest, &["--force", "--dist", &dist]);
    let (scode, status) = kiln_rack("status", manifest, &["--dist", &dist]);
    lab.set_node_arch("node04", None).expect("node04 as itself");
    assert_eq!(code, kiln::exit::PEER, "node04 could not be given a binary: {run:#}");
    for name in ["node01", "node02", "node03"] {
        let n = node(&run, name);
        assert_eq!(n["binary"], "pushed", "{n:#}");
        assert_eq!(n["status"], "pass", "{n:#}");
        assert_eq!(node(&status, name)["binary"], "current", "{status:#}");
    }
    let n4 = node(&run, "node04");
    assert_eq!((n4["status"].as_str(), n4["failure"].as_str()), (Some("peer_error"), Some("transfer")), "{n4:#}");
    let reason = n4["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("the node is i686") && reason.contains("no kiln for i686 (it has x86_64)"), "{reason}");
    assert_eq!(scode, kiln::exit::PEER, "{status:#}");
    // What runs on the nodes is the binary, byte for byte, and the stamp
    // beside it holds the checksum the node computed before putting it there.
    let var_lib = lab.state.node("node01").expect("node01").sshd.var_lib.clone();
    let on_node = kiln::fleet::local_sha256(&var_lib.join("bin/kiln")).expect("node01's kiln");
    assert_eq!(on_node, want);
    let stamp = std::fs::read_to_string(var_lib.join("bin/kiln.sha256")).expect("stamp");
    assert_eq!(stamp.lines().next(), Some(want.as_str()));
    let inv = inventory(manifest);
    let n1 = inv.node("node01").expect("query").expect("node");
    let last = inv.latest_run(n1.id).expect("query").expect("run");
    assert_eq!((last.kind.as_str(), last.actor.as_str()), ("inspect", "kiln rack inspect"), "recorded as any inspect");
}
