//! A rack step recorded in the inventory, end to end with the real kiln binary on this machine
//! (the local transport, fixture trees as the nodes): runs, lifecycle, skip and --force, rack runs.

mod fixture_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln::checks::Verdict;
use kiln::fleet::{
    run_rack_step, FanoutOptions, LocalConnector, NodeOutcome, NodeStatus, Plan, RackOutcome, RackStep, RemoteBinary,
    Step,
};
use kiln::hw::fixture::trees::Fault;
use kiln::hw::fixture::{hgx_b200, Unit};
use kiln::inventory::Inventory;
use kiln::lifecycle::{LifecycleState, RunKind};
use kiln::rack::RackNode;

fn fixture(name: &str) -> String {
    fixture_support::shared(name).display().to_string()
}

fn node(name: &str, root: &str) -> RackNode {
    RackNode { kiln_root: Some(root.to_string()), ..RackNode::new(name, "127.0.0.1") }
}

/// An HGX B200 of its own (its own serials, so the rack's serial check has nothing to say) with
/// `fault`, written under `dir/name`.
fn own_tree(dir: &Path, name: &str, number: u32, fault: Option<Fault>) -> String {
    let mut tree = hgx_b200(&Unit::new(name, number, format!("1654225{number:06}")));
    if let Some(f) = fault {
        f.apply(&mut tree);
    }
    let root = dir.join(name);
    tree.write(&root).expect("write the tree");
    root.display().to_string()
}

/// The rack: a healthy node, one GPU at x8, one with an NVLink down, and
/// one whose kiln is killed as it starts (its root names `die`).
fn rack(dir: &Path) -> Vec<RackNode> {
    vec![
        node("node01", &fixture("hgx-b200")),
        node("node02", &own_tree(dir, "node02", 12, Some(Fault::GpuX8))),
        node("node03", &own_tree(dir, "node03", 13, Some(Fault::NvlinkDown))),
        node("node04", "/nonexistent/die"),
    ]
}

/// `kiln validate --json --with-node --root R`, except on a node whose root
/// names `die`, where the command is killed before kiln runs.
fn plan() -> Plan {
    let script = "case {root} in *die*) kill -KILL $$;; esac; exec {kiln} validate --json --with-node --root {root}";
    Plan { step: Step::Validate, command: vec!["sh".into(), "-c".into(), script.into()], push: true }
}

fn run(dir: &Path, inv: &mut Inventory, nodes: &[RackNode], force: bool) -> RackOutcome {
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let remote = dir.join("node-bin/kiln");
    let opts = FanoutOptions {
        parallel: 4,
        command_timeout: Duration::from_secs(60),
        binary: RemoteBinary::new(Some(&kiln), remote.to_str().expect("utf-8 path")).expect("binary"),
    };
    let refs: Vec<&RackNode> = nodes.iter().collect();
    let plan = plan();
    let specs = kiln::checks::spec_load::load_builtin().expect("built-in specs");
    let step = RackStep {
        rack: "r-test",
        rack_platform: Some("hgx-b200"),
        specs: &specs,
        nodes: &refs,
        plan: &plan,
        opts: &opts,
        force,
        whole_rack: true,
    };
    run_rack_step(&step, &LocalConnector, Some(inv), &|_, _| {}).expect("inventory readable")
}

fn by<'a>(o: &'a RackOutcome, name: &str) -> &'a NodeOutcome {
    o.nodes.iter().find(|n| n.node == name).expect("node in outcome")
}

fn failed_checks(inv: &Inventory, name: &str) -> Vec<String> {
    let id = inv.node(name).expect("query").expect("node").id;
    let run = inv.latest_run_of_kind(id, RunKind::Validate).expect("query").expect("validate run");
    let mut checks: Vec<String> = inv
        .run_findings(run.id)
        .expect("findings")
        .into_iter()
        .filter(|f| f.outcome == kiln::checks::Outcome::Fail)
        .map(|f| f.check)
        .collect();
    checks.dedup();
    checks
}

#[test]
fn validate_is_recorded_and_a_rerun_skips_what_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open inventory");
    let nodes = rack(dir.path());

    let first = run(dir.path(), &mut inv, &nodes, false);
    let status: Vec<NodeStatus> = first.nodes.iter().map(|n| n.status).collect();
    assert_eq!(status, [NodeStatus::Pass, NodeStatus::Fail, NodeStatus::Fail, NodeStatus::Error], "{first:#?}");
    assert_eq!(first.exit_code, kiln::exit::CHECK_FAILED);

    // Each node that ran has its run, under its manifest name (the fixtures
    // all call themselves hgx-b200-01), with its findings.
    assert_eq!(failed_checks(&inv, "node01"), Vec::<String>::new());
    assert_eq!(failed_checks(&inv, "node02"), ["pcie.width"]);
    assert_eq!(failed_checks(&inv, "node03"), ["nvlink.active"]);
    assert!(inv.node("hgx-b200-01").expect("query").is_none(), "reported hostnames are not inventory keys");
    let n1 = by(&first, "node01").recorded.clone().expect("recorded");
    assert_eq!(n1.reported_hostname.as_deref(), Some("hgx-b200-01"));
    assert_eq!(n1.state.as_deref(), Some("validated"));

    // Lifecycle: the healthy node validated; the faulty ones failed with
    // their check; the killed one failed with what happened to it.
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
    let reason = |name: &str| inv.state(name).expect("state").reason().map(str::to_string).unwrap_or_default();
    assert_eq!(inv.state("node02").expect("state").name(), "failed");
    assert!(reason("node02").contains("pcie.width"), "{}", reason("node02"));
    assert!(reason("node03").contains("nvlink.active"), "{}", reason("node03"));
    assert!(reason("node04").starts_with("validate could not run (remote)"), "{}", reason("node04"));
    assert!(reason("node04").contains("signal KILL"), "{}", reason("node04"));
    let id4 = inv.node("node04").expect("query").expect("enrolled").id;
    assert!(inv.runs(id4).expect("runs").is_empty(), "a node that never answered has no run");
    let history = inv.history("node04").expect("history");
    assert_eq!(history.len(), 2, "enrolled, then failed: {history:#?}");
    assert_eq!(history[1].actor, "kiln rack validate");

    // The rack run, with its rack checks (the fixtures agree on firmware).
    let runs = inv.rack_runs("r-test").expect("rack runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(Some(runs[0].id.0), first.rack_run_id);
    assert_eq!(runs[0].exit_code, kiln::exit::CHECK_FAILED);
    assert_eq!(runs[0].node_status.get("node04").map(String::as_str), Some("error"));
    let rack_findings = inv.rack_run_findings(runs[0].id).expect("rack findings");
    assert_eq!(rack_findings.len(), first.rack_findings.len());
    assert!(rack_findings.iter().any(|f| f.check == "rack.firmware.vbios" && f.outcome == kiln::checks::Outcome::Pass));

    // A rerun skips the node that passed, naming when; the rest run again.
    let second = run(dir.path(), &mut inv, &nodes, false);
    let n1 = by(&second, "node01");
    assert_eq!(n1.status, NodeStatus::Skipped);
    let why = n1.reason.as_deref().unwrap_or_default();
    assert!(why.starts_with("already passed at 20") && why.ends_with("; --force to rerun"), "{why}");
    assert_eq!(by(&second, "node02").status, NodeStatus::Fail);
    // Rack checks still compare the skipped node, from its recorded model.
    assert_eq!(second.rack_findings.len(), first.rack_findings.len());
    let runs_of = |inv: &Inventory, name: &str| {
        let id = inv.node(name).expect("query").expect("node").id;
        inv.runs(id).expect("runs").len()
    };
    assert_eq!(runs_of(&inv, "node01"), 1);
    assert_eq!(runs_of(&inv, "node02"), 2);
    assert_eq!(second.exit_code, kiln::exit::CHECK_FAILED);

    // --force runs the passed node again; it stays validated.
    let third = run(dir.path(), &mut inv, &nodes, true);
    assert_eq!(by(&third, "node01").status, NodeStatus::Pass);
    assert_eq!(by(&third, "node01").verdict.as_deref(), Some("pass"));
    assert_eq!(runs_of(&inv, "node01"), 2);
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
    assert_eq!(inv.rack_runs("r-test").expect("rack runs").len(), 3);

    // Only the healthy node is the whole rack: the rerun skips it and passes.
    let only = run(dir.path(), &mut inv, &nodes[..1], false);
    assert_eq!((only.nodes[0].status, only.exit_code), (NodeStatus::Skipped, kiln::exit::OK));
    let latest = inv.latest_run_of_kind(inv.node("node01").unwrap().unwrap().id, RunKind::Validate).unwrap().unwrap();
    assert_eq!(latest.verdict, Some(Verdict::Pass));
    assert_eq!(inv.integrity_check().expect("integrity"), ["ok"]);
}

/// A node that failed and was repaired runs again even though an older
/// validate of it passed: its state is no longer at or after validated.
#[test]
fn a_failed_node_is_not_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open inventory");
    let nodes = vec![node("node01", &fixture("hgx-b200"))];
    assert_eq!(run(dir.path(), &mut inv, &nodes, false).nodes[0].status, NodeStatus::Pass);
    inv.transition("node01", &LifecycleState::Failed { reason: "PSU swapped".into() }, "tech-ana", "repair")
        .expect("fail it by hand");
    let again = run(dir.path(), &mut inv, &nodes, false);
    assert_eq!(again.nodes[0].status, NodeStatus::Pass, "{again:#?}");
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
}
