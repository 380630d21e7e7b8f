//! Rack findings gate the lifecycle: a GB200 NVL72 rack of 18 trays built by the fixture builder,
//! validated end to end with the real kiln binary on this machine (the local transport, one
//! fixture tree per tray), recorded in an inventory on disk. A tray a failing rack finding names
//! is `failed` with the rack check as its reason in the same transaction as the rack run, hand-off
//! keeps it out, and a rerun after the repair brings it back through the normal path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln::fleet::{run_rack_step, FanoutOptions, LocalConnector, Plan, RackOutcome, RackStep, RemoteBinary, Step};
use kiln::handoff::{decide, Health};
use kiln::hw::fixture::{gb200_tray, FixtureTree, Gb200Tray};
use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;
use kiln::rack::RackNode;

/// Tray `i`'s tree as the builder makes it, with `edit` applied, written under `dir/tray-NN`.
fn write_tray(dir: &Path, i: u32, edit: impl FnOnce(&mut FixtureTree)) -> PathBuf {
    let mut tree = gb200_tray(&Gb200Tray::in_rack(i));
    edit(&mut tree);
    let root = dir.join(format!("tray-{i:02}"));
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("remove the old tree");
    }
    tree.write(&root).expect("write the tray tree");
    root
}

/// The manifest's nodes: `tray-NN` at tray NN, its root the tree at `roots[NN - 1]`.
fn nodes(roots: &[PathBuf]) -> Vec<RackNode> {
    roots
        .iter()
        .enumerate()
        .map(|(i, root)| {
            let mut n = RackNode::new(&format!("tray-{:02}", i + 1), "127.0.0.1");
            n.tray = Some(i as u32 + 1);
            n.kiln_root = Some(root.to_str().expect("utf-8 path").to_string());
            n
        })
        .collect()
}

fn validate(dir: &Path, inv: &mut Inventory, nodes: &[RackNode], force: bool) -> RackOutcome {
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let remote = dir.join("node-bin/kiln");
    let opts = FanoutOptions {
        parallel: 8,
        command_timeout: Duration::from_secs(60),
        binary: RemoteBinary::new(Some(&kiln), remote.to_str().expect("utf-8 path")).expect("binary"),
    };
    let refs: Vec<&RackNode> = nodes.iter().collect();
    let plan = Plan {
        step: Step::Validate,
        command: vec!["sh".into(), "-c".into(), "exec {kiln} validate --json --with-node --root {root}".into()],
        push: true,
    };
    let specs = kiln::checks::spec_load::load_builtin().expect("built-in specs");
    let step = RackStep {
        rack: "nvl72-a",
        rack_platform: Some("gb200-nvl72-tray"),
        specs: &specs,
        nodes: &refs,
        plan: &plan,
        opts: &opts,
        force,
        whole_rack: true,
    };
    run_rack_step(&step, &LocalConnector, Some(inv), &|_, _| {}).expect("inventory readable")
}

fn state(inv: &Inventory, node: &str) -> LifecycleState {
    inv.state(node).expect("state")
}

fn other_domain(tree: &mut FixtureTree) {
    for i in 0..4 {
        if let Some(f) = tree.gpu_mut(i).and_then(|g| g.fabric.as_mut()) {
            f.cluster_uuid = "0badc0de-0000-4000-8000-000000000001".into();
        }
    }
}

#[test]
fn rack_findings_fail_the_trays_they_name_and_a_rerun_after_repair_brings_them_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut roots: Vec<PathBuf> = (1..=18).map(|i| write_tray(dir.path(), i, |_| {})).collect();
    // Tray 3 registered in another NVLink domain: every node check passes on it alone.
    roots[2] = write_tray(dir.path(), 3, other_domain);
    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("inventory");
    let rack = nodes(&roots);
    let first = validate(dir.path(), &mut inv, &rack, false);
    assert_eq!(first.nodes.iter().filter(|n| n.verdict.as_deref() == Some("pass")).count(), 18);
    let failed = state(&inv, "tray-03");
    assert_eq!(failed.name(), "failed", "{failed}");
    assert!(failed.reason().is_some_and(|r| r.starts_with("rack validate failed: rack.fabric.cluster")), "{failed}");
    for healthy in ["tray-01", "tray-02", "tray-04", "tray-18"] {
        assert_eq!(state(&inv, healthy), LifecycleState::Validated, "{healthy}");
    }
    // The state and the rack run are one transaction: the event names the rack run.
    let history = inv.history("tray-03").expect("history");
    let last = history.last().expect("an event");
    assert_eq!(last.cause, format!("rack validate run {} failed", first.rack_run_id.expect("recorded")));
    // The outcome the user reads says the same as the inventory.
    let recorded = first.nodes.iter().find(|n| n.node == "tray-03").and_then(|n| n.recorded.as_ref());
    assert_eq!(recorded.and_then(|r| r.state.as_deref()), Some("failed"));
    // Hand-off keeps it out, naming the rack check.
    let d = decide(&inv, "tray-03").expect("decide");
    assert!(matches!(&d.health, Health::Fail { .. }), "{d:?}");
    assert!(d.health.reason().is_some_and(|r| r.contains("rack.fabric.cluster")), "{d:?}");

    // Repair: the tray rejoins the rack's domain. The rerun validates it again (a failed node is
    // never skipped) and, the rack passing, it stays validated.
    roots[2] = write_tray(dir.path(), 3, |_| {});
    let second = validate(dir.path(), &mut inv, &nodes(&roots), false);
    assert!(
        second.rack_findings.iter().all(|f| f.outcome != kiln::checks::Outcome::Fail),
        "{:#?}",
        second.rack_findings
    );
    assert_eq!(state(&inv, "tray-03"), LifecycleState::Validated);

    // The manifest's trays 5 and 6 answer from each other's position (swapped cables): both fail.
    // They passed before, so only --force looks at them again.
    roots.swap(4, 5);
    validate(dir.path(), &mut inv, &nodes(&roots), true);
    for swapped in ["tray-05", "tray-06"] {
        let s = state(&inv, swapped);
        assert_eq!(s.reason(), Some("rack validate failed: rack.placement.tray"), "{swapped}: {s}");
    }
    assert_eq!(state(&inv, "tray-04"), LifecycleState::Validated);
    roots.swap(4, 5);

    // A rack of 17: the finding names no tray, so every tray of the domain is held.
    roots.truncate(17);
    let short = validate(dir.path(), &mut inv, &nodes(&roots), false);
    assert!(short.rack_findings.iter().any(|f| f.check == "rack.domain.trays" && f.component.kind == "rack"));
    for i in 1..=17 {
        let s = state(&inv, &format!("tray-{i:02}"));
        assert_eq!(s.reason(), Some("rack validate failed: rack.domain.trays"), "tray {i}: {s}");
    }
}
