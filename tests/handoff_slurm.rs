//! `kiln rack handoff --to slurm` and `kiln healthcheck --drain` against a real slurmctld with one
//! slurmd per lab node (network namespaces). Needs root, the lab and Debian's slurm-wlm and munge;
//! otherwise prints SKIPPED (and fails under KILN_REQUIRE_PEERS=1).

mod fixture_support;
mod slurm_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiln::checks::Verdict;
use kiln::cli::{DbArgs, SourceArgs, ValidateArgs};
use kiln::handoff::{Resumed, Scontrol, SlurmControl};
use kiln::inventory::{Inventory, RunRecord};
use kiln::lifecycle::{LifecycleState, RunKind};
use serde_json::Value;
use slurm_support::{SlurmCluster, SlurmNodeSpec};
use xtask::lab::{self, LabConfig};

fn skip_reason() -> Option<String> {
    if !lab::is_root() {
        return Some("not root: the lab and slurmd need network namespaces".into());
    }
    if let Some(p) = slurm_support::missing_program() {
        return Some(format!("{p} missing (apt-get install slurm-wlm munge)"));
    }
    None
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Inspect `fixture` as node `name`, judge it against hgx-b200 as `kiln
/// validate` does, and record the run; a passing node then gets a passing
/// burn-in run. (`kiln burnin` is not in this branch: its run is recorded
/// with no findings, which is what moves a node to burned_in.)
fn record_node(inv: &mut Inventory, name: &str, fixture: &Path) -> Verdict {
    let (tree, gpus) = kiln::hw::open(Some(fixture)).expect("open the fixture");
    let mut node = kiln::hw::inspect(tree.as_ref(), gpus.as_ref());
    node.hostname = name.to_string();
    let args = ValidateArgs {
        source: SourceArgs { root: None },
        db: DbArgs { db: None },
        platform: Some("hgx-b200".into()),
        spec: None,
        checks_dir: None,
        json: true,
        node: None,
        with_node: false,
        bom: None,
    };
    let report = kiln::cmd::validate::judge(&node, &args).expect("judge");
    // The node is the manifest's place: every lab node runs the same fixture tree, so they are
    // one machine by DMI and only their places tell them apart.
    let run = RunRecord {
        name: Some(name),
        platform: Some("hgx-b200"),
        rack: Some("lab"),
        findings: &report.findings,
        verdict: Some(report.verdict),
        exit_code: kiln::cmd::validate::exit_code(report.verdict),
        ..RunRecord::new(RunKind::Validate, &node, "test")
    };
    inv.record_run(&run).expect("record validate");
    if report.verdict == Verdict::Pass {
        let burn = RunRecord {
            name: Some(name),
            verdict: Some(Verdict::Pass),
            rack: Some("lab"),
            ..RunRecord::new(RunKind::Burnin, &node, "test")
        };
        inv.record_run(&burn).expect("record burn-in");
    }
    report.verdict
}

fn kiln(cluster: &SlurmCluster, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cluster.configure(&mut cmd);
    let out = cmd.args(args).output().expect("run kiln");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn handoff(cluster: &SlurmCluster, manifest: &Path, db: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["rack", "handoff", "--to", "slurm", "--json", "--rack"];
    let m = manifest.to_string_lossy().into_owned();
    let d = db.to_string_lossy().into_owned();
    args.push(&m);
    args.extend(["--db", &d]);
    args.extend(extra);
    let (code, out, err) = kiln(cluster, &args);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("handoff JSON: {e}: {out}\n{err}"));
    (code, json)
}

fn node_out<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["nodes"].as_array().and_then(|a| a.iter().find(|n| n["node"] == name)).expect("node in outcome")
}

#[test]
fn handoff_and_healthcheck_against_slurmctld() {
    if let Some(why) = skip_reason() {
        if std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
            panic!("KILN_REQUIRE_PEERS=1 but {why}");
        }
        println!("SKIPPED: {why}");
        return;
    }
    let started = Instant::now();
    let mut cfg = LabConfig::standard(&repo(), 4);
    cfg.dir = repo().join("target/lab-handoff");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kh".into();
    cfg.subnet = 3;
    cfg.bmc = false;
    cfg.bmc_port_base = 8400;
    // Four machines of their own (`NAME@N`: their own serials), as a rack's serial checks expect.
    cfg.fixtures = ["hgx-b200@1", "hgx-b200@2", "hgx-b200-gpu-x8@3", "hgx-b200@4"]
        .iter()
        .map(|name| fixture_support::written(&cfg.dir, name))
        .collect();
    let _teardown = lab::Teardown(cfg.dir.clone());
    let lab = lab::up(&cfg).expect("lab up");
    let specs = SlurmNodeSpec::of_lab(&lab.state);
    let cluster = SlurmCluster::start(&cfg.dir.join("slurm"), "khctl", &cfg.host_address(), 16917, &specs);
    eprintln!("lab and slurm up in {:.1} s", started.elapsed().as_secs_f64());

    // The inventory: node01, node02 and node04 passed validate and burn-in; node03 (a GPU at x8) failed.
    let db = cfg.dir.join("kiln.db");
    let _ = std::fs::remove_file(&db);
    let mut inv = Inventory::open(&db).expect("open inventory");
    for n in &lab.state.nodes {
        let verdict = record_node(&mut inv, &n.name, &fixture_support::written(&cfg.dir, &n.fixture));
        assert_eq!(verdict == Verdict::Pass, n.name != "node03", "{} ({})", n.name, n.fixture);
    }
    drop(inv);

    // Before hand-off: kiln drained node01 on an earlier run; a person drained node04.
    assert!(cluster
        .scontrol(&["update", "NodeName=node01", "State=DRAIN", "Reason=kiln: earlier (run 0)"])
        .status
        .success());
    assert!(cluster.scontrol(&["update", "NodeName=node04", "State=DRAIN", "Reason=maintenance"]).status.success());
    let manifest = lab.manifest().to_path_buf();

    dry_run_changes_nothing(&cluster, &manifest, &db);
    an_all_or_nothing_domain_is_held_whole_unless_partial(&cluster, &manifest, &db, &cfg.dir);
    handoff_resumes_drains_and_leaves_a_human_drain(&cluster, &manifest, &db);
    second_run_changes_nothing(&cluster, &manifest, &db);
    healthcheck_drains_its_own_node(&cluster, &lab, &manifest, &db);

    drop(cluster);
    drop(_teardown);
    eprintln!("slurm hand-off test took {:.1} s", started.elapsed().as_secs_f64());
}

fn states(cluster: &SlurmCluster) -> Vec<(String, String)> {
    ["node01", "node02", "node03", "node04"].iter().map(|n| cluster.state(n)).collect()
}

fn events(db: &Path, node: &str) -> Vec<kiln::inventory::LifecycleEvent> {
    Inventory::open_existing(db).expect("open").history(node).expect("history")
}

fn dry_run_changes_nothing(cluster: &SlurmCluster, manifest: &Path, db: &Path) {
    let before = states(cluster);
    let history: Vec<usize> = ["node01", "node03"].iter().map(|n| events(db, n).len()).collect();
    let (code, out) = handoff(cluster, manifest, db, &["--dry-run"]);
    assert_eq!(code, 1, "node03 fails and node04 is left alone: {out:#}");
    assert_eq!(out["dry_run"], true);
    assert_eq!(node_out(&out, "node01")["actions"][0]["result"], "would_do", "{out:#}");
    assert_eq!(node_out(&out, "node03")["actions"][0]["result"], "would_do");
    assert_eq!(node_out(&out, "node04")["actions"][0]["result"], "refused");
    assert_eq!(states(cluster), before, "a dry run changes nothing in Slurm");
    let after: Vec<usize> = ["node01", "node03"].iter().map(|n| events(db, n).len()).collect();
    assert_eq!(history, after, "a dry run records nothing");
}

/// The four nodes as one all-or-nothing NVLink domain (`--checks-dir` with the hgx-b200 spec plus an
/// `[nvlink_domain]` of 4 trays that says `all_or_nothing`): node03 failing holds the healthy nodes
/// too, naming node03; `--partial` hands off the healthy ones alone. Dry runs, so that the rest of
/// the test sees the cluster as it was.
fn an_all_or_nothing_domain_is_held_whole_unless_partial(
    cluster: &SlurmCluster,
    manifest: &Path,
    db: &Path,
    dir: &Path,
) {
    let checks = dir.join("domain-checks");
    std::fs::create_dir_all(checks.join("platforms")).expect("mkdir");
    let spec = std::fs::read_to_string(repo().join("checks/platforms/hgx-b200.toml")).expect("hgx-b200 spec");
    let spec = format!("{spec}\n[nvlink_domain]\ngpus = 32\ntrays = 4\nall_or_nothing = true\n");
    std::fs::write(checks.join("platforms/hgx-b200.toml"), spec).expect("write the spec");
    let checks = checks.to_string_lossy().into_owned();
    let before = states(cluster);

    let (code, out) = handoff(cluster, manifest, db, &["--dry-run", "--checks-dir", &checks]);
    assert_eq!(code, 1, "{out:#}");
    let domain = &out["domains"][0];
    assert_eq!(domain["nodes"].as_array().map(Vec::len), Some(4), "{out:#}");
    assert_eq!(domain["broken"][0]["node"], "node03", "{out:#}");
    assert!(domain["broken"][0]["reason"].as_str().is_some_and(|r| r.contains("pcie.width")), "{out:#}");
    for healthy in ["node01", "node02"] {
        let n = node_out(&out, healthy);
        assert_eq!(n["health"], "hold", "{healthy}: {n:#}");
        assert!(n["reason"].as_str().is_some_and(|r| r.contains("NVLink domain") && r.contains("node03")), "{n:#}");
        assert!(n["actions"][0]["what"].as_str().is_some_and(|w| w.contains("DRAIN")), "{n:#}");
    }

    let (_, out) = handoff(cluster, manifest, db, &["--dry-run", "--partial", "--checks-dir", &checks]);
    assert_eq!(out["domains"][0]["partial"], true);
    assert_eq!(node_out(&out, "node01")["health"], "pass", "{out:#}");
    assert!(node_out(&out, "node01")["actions"][0]["what"].as_str().is_some_and(|w| w.contains("RESUME")));
    assert_eq!(node_out(&out, "node03")["health"], "fail");
    assert_eq!(states(cluster), before, "dry runs change nothing in Slurm");
}

fn handoff_resumes_drains_and_leaves_a_human_drain(cluster: &SlurmCluster, manifest: &Path, db: &Path) {
    let (code, out) = handoff(cluster, manifest, db, &[]);
    assert_eq!(code, 1, "{out:#}");
    // node01 was drained by kiln: resumed. node02 was idle: already in service.
    assert_eq!(cluster.settle("node01", "idle", 15), "idle");
    assert_eq!(node_out(&out, "node01")["actions"][0]["result"], "done");
    assert_eq!(cluster.state("node02").0, "idle");
    assert_eq!(node_out(&out, "node02")["actions"][0]["result"], "already_done");
    // node03 failed validate: drained with a kiln reason naming the check.
    let (state, reason) = cluster.state("node03");
    assert_eq!(state, "drained");
    assert!(reason.starts_with("kiln: ") && reason.contains("pcie.width") && reason.contains("(run "), "{reason}");
    // node04, drained by a person, stays drained with their reason, and the outcome says so.
    assert_eq!(cluster.state("node04"), ("drained".to_string(), "maintenance".to_string()));
    let n4 = node_out(&out, "node04");
    assert_eq!(n4["disposition"], "left_alone");
    assert!(
        n4["actions"][0]["why"].as_str().is_some_and(|w| w.contains("drained by someone else (maintenance)")),
        "{n4:#}"
    );

    // The inventory: handed off, quarantined, and a note for the refusal.
    let inv = Inventory::open_existing(db).expect("open");
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::HandedOff);
    assert_eq!(inv.state("node02").expect("state"), LifecycleState::HandedOff);
    assert!(
        matches!(inv.state("node03").expect("state"), LifecycleState::Quarantined { reason } if reason.contains("pcie.width"))
    );
    assert_eq!(inv.state("node04").expect("state"), LifecycleState::Ready, "signed off, not handed off");
    let h1 = inv.history("node01").expect("history");
    let tail: Vec<&str> = h1.iter().rev().take(2).map(|e| e.to.name()).collect();
    assert_eq!(tail, vec!["handed_off", "ready"], "{h1:#?}");
    assert!(h1.last().is_some_and(|e| e.cause.contains("State=RESUME: done") && e.actor == "kiln rack handoff"));
    let h4 = inv.history("node04").expect("history");
    assert!(h4.last().is_some_and(|e| e.cause.contains("drained by someone else")), "{h4:#?}");
}

fn second_run_changes_nothing(cluster: &SlurmCluster, manifest: &Path, db: &Path) {
    cluster.settle("node01", "idle", 15);
    let before = states(cluster);
    let (code, out) = handoff(cluster, manifest, db, &[]);
    assert_eq!(code, 1);
    assert_eq!(states(cluster), before);
    for n in ["node01", "node02", "node03"] {
        let result = &node_out(&out, n)["actions"][0]["result"];
        assert_eq!(result, "already_done", "{n}: {out:#}");
    }
    let inv = Inventory::open_existing(db).expect("open");
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::HandedOff);
    // Slurm itself refuses RESUME of an idle node (exit 1); the backend reads that as done.
    let mut scontrol = Command::new("scontrol");
    cluster.configure(&mut scontrol);
    let refused = scontrol.args(["update", "NodeName=node02", "State=RESUME"]).output().expect("scontrol");
    assert_eq!(refused.status.code(), Some(1), "slurm refuses to resume an idle node");
    let wrapper = std::env::temp_dir().join(format!("kiln-scontrol-{}", std::process::id()));
    std::fs::write(&wrapper, format!("#!/bin/sh\nSLURM_CONF='{}' exec scontrol \"$@\"\n", cluster.conf.display()))
        .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let backend = Scontrol::new(&wrapper);
    assert_eq!(backend.resume("node02").expect("resume"), Resumed::AlreadyUp);
    assert!(matches!(backend.show_node("node99"), Err(kiln::handoff::SlurmError::UnknownNode { .. })));
    assert!(matches!(backend.drain("node99", "kiln: x"), Err(kiln::handoff::SlurmError::UnknownNode { .. })));
    let _ = std::fs::remove_file(&wrapper);
    // The refusal is recorded again, as a note: the node stays ready.
    let h4 = inv.history("node04").expect("history");
    let last = h4.last().expect("events");
    assert!(last.cause.contains("drained by someone else") && last.from == Some(LifecycleState::Ready), "{last:#?}");
    assert_eq!(last.to, LifecycleState::Ready);
}

/// `kiln healthcheck --drain` run in node02's namespace under its hostname,
/// as slurmd's HealthCheckProgram would: a failing tree drains node02 with
/// a kiln reason; a passing one drains nothing; the next hand-off resumes
/// node02 because the inventory says it passed and the reason is kiln's.
fn healthcheck_drains_its_own_node(cluster: &SlurmCluster, lab: &xtask::lab::Lab, manifest: &Path, db: &Path) {
    let netns = &lab.state.node("node02").expect("node02").netns;
    let run_on_node02 = |fixture: &str| -> (i32, String, f64) {
        let mut cmd = Command::new("nsenter");
        cluster.configure(&mut cmd);
        let root = fixture_support::written(&lab.state.dir, fixture);
        cmd.arg(format!("--net=/run/netns/{netns}"))
            .args(["unshare", "--uts", "sh", "-c", "hostname node02 && exec \"$@\"", "sh"])
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .args(["healthcheck", "--drain", "--platform", "hgx-b200", "--root"])
            .arg(&root);
        let t = Instant::now();
        let out = cmd.output().expect("run healthcheck");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text, t.elapsed().as_secs_f64())
    };
    let (code, text, secs) = run_on_node02("hgx-b200");
    assert_eq!(code, 0, "{text}");
    assert_eq!(cluster.state("node02").0, "idle", "a passing healthcheck drains nothing");
    eprintln!("healthcheck (pass) took {secs:.2} s");
    let (code, text, secs) = run_on_node02("hgx-b200-nvlink-down");
    assert_eq!(code, 1, "{text}");
    eprintln!("healthcheck (fail, with drain) took {secs:.2} s");
    assert!(secs < 30.0, "healthcheck must stay well under Slurm's 60 s: {secs}");
    let (state, reason) = cluster.state("node02");
    assert_eq!(state, "drained", "{text}");
    assert!(reason.starts_with("kiln: healthcheck: ") && reason.contains("nvlink"), "{reason}");
    // A second failing healthcheck keeps the reason and does not fail.
    let (code, _, _) = run_on_node02("hgx-b200-nvlink-down");
    assert_eq!(code, 1);
    assert_eq!(cluster.state("node02").1, reason);

    let (_, out) = handoff(cluster, manifest, db, &["--nodes", "node02"]);
    assert_eq!(node_out(&out, "node02")["actions"][0]["result"], "done", "{out:#}");
    assert_eq!(cluster.settle("node02", "idle", 15), "idle");
}
