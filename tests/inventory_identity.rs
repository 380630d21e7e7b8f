//! A node is the machine, not its hostname: machines recorded by the real binary into one
//! database on disk, and rack places whose machines were swapped, recorded as a rack step.

mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kiln::checks::Outcome;
use kiln::fleet::{run_rack_step, FanoutOptions, LocalConnector, Plan, RackOutcome, RackStep, RemoteBinary, Step};
use kiln::inventory::Inventory;
use kiln::rack::RackNode;

fn fixture(name: &str) -> PathBuf {
    fixture_support::shared(name)
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env_remove("KILN_DB").output().expect("run kiln")
}

/// `kiln inspect --json` of a fixture tree, as a file whose hostname is `hostname`.
fn node_file(dir: &Path, tree: &str, hostname: &str) -> PathBuf {
    let root = fixture(tree);
    let out = kiln(&["inspect", "--json", "--root", root.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut node: serde_json::Value = serde_json::from_slice(&out.stdout).expect("node JSON");
    node["hostname"] = hostname.into();
    let path = dir.join(format!("{tree}.json"));
    std::fs::write(&path, serde_json::to_vec(&node).expect("encode")).expect("write");
    path
}

fn validate_into(db: &Path, node: &Path) {
    let out = kiln(&["validate", "--node", node.to_str().expect("utf-8"), "--db", db.to_str().expect("utf-8")]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "validate --db: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn two_machines_with_the_same_hostname_recorded_by_the_binary_stay_two_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let b200 = node_file(dir.path(), "hgx-b200", "localhost");
    let h100 = node_file(dir.path(), "h100-sxm", "localhost");
    validate_into(&db, &b200);
    validate_into(&db, &h100);
    validate_into(&db, &b200);

    let out = kiln(&["report", "--db", db.to_str().expect("utf-8"), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let nodes = report["nodes"].as_array().expect("nodes");
    let mut seen: Vec<(&str, &str)> = nodes
        .iter()
        .map(|n| (n["hostname"].as_str().unwrap_or_default(), n["serial"].as_str().unwrap_or_default()))
        .collect();
    seen.sort();
    assert_eq!(seen, [("localhost", "1654223000456"), ("localhost", "1654225000123")], "two machines, two nodes");
    for n in nodes {
        // Neither machine's parts are "swapped" parts of the other.
        let changes = n["changes"]["changes"].as_array().map_or(0, Vec::len);
        assert_eq!(changes, 0, "{}", serde_json::to_string_pretty(&n["changes"]).unwrap_or_default());
    }

    // The hostname names two nodes: asking by it says so and lists them; a serial names one.
    let out = kiln(&["report", "--db", db.to_str().expect("utf-8"), "--node", "localhost"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE), "{stderr}");
    assert!(
        stderr.contains("2 nodes answer to that name")
            && stderr.contains("serial 1654225000123")
            && stderr.contains("serial 1654223000456"),
        "{stderr}"
    );
    let out = kiln(&["report", "--db", db.to_str().expect("utf-8"), "--node", "1654223000456"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("H100"), "the H100 machine's report: {text}");
    assert!(!text.contains("B200"), "and nothing of the B200: {text}");
}

#[test]
fn a_tree_without_a_hostname_is_recorded_by_its_serial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let nameless = node_file(dir.path(), "hgx-b200", "");
    validate_into(&db, &nameless);
    let out = kiln(&["report", "--db", db.to_str().expect("utf-8"), "--node", "1654225000123", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(report["nodes"][0]["hostname"], "serial 1654225000123");
}

fn rack_step(dir: &Path, inv: &mut Inventory, places: &[(&str, &str)]) -> RackOutcome {
    rack_step_in(dir, inv, "r7", places)
}

fn rack_step_in(dir: &Path, inv: &mut Inventory, rack: &str, places: &[(&str, &str)]) -> RackOutcome {
    let nodes: Vec<RackNode> = places
        .iter()
        .map(|(name, tree)| RackNode {
            kiln_root: Some(fixture(tree).display().to_string()),
            ..RackNode::new(name, "127.0.0.1")
        })
        .collect();
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let remote = dir.join("node-bin/kiln");
    let opts = FanoutOptions {
        parallel: 2,
        command_timeout: Duration::from_secs(60),
        binary: RemoteBinary::new(Some(&kiln), remote.to_str().expect("utf-8 path")).expect("binary"),
    };
    let script = "exec {kiln} validate --json --with-node --root {root}";
    let plan = Plan { step: Step::Validate, command: vec!["sh".into(), "-c".into(), script.into()], push: true };
    let specs = kiln::checks::spec_load::load_builtin().expect("built-in specs");
    let refs: Vec<&RackNode> = nodes.iter().collect();
    let step = RackStep {
        rack,
        rack_platform: None,
        specs: &specs,
        nodes: &refs,
        plan: &plan,
        opts: &opts,
        force: true,
        whole_rack: true,
    };
    run_rack_step(&step, &LocalConnector, Some(inv), &|_, _| {}).expect("inventory readable")
}

#[test]
fn machines_swapped_between_rack_places_are_reported_as_moved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open");
    let first = rack_step(dir.path(), &mut inv, &[("tray03", "hgx-b200"), ("tray07", "h100-sxm")]);
    let machine_findings = |o: &RackOutcome| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = o
            .rack_findings
            .iter()
            .filter(|f| f.check == "inventory.machine")
            .map(|f| (f.component.name.clone().unwrap_or_default(), f.message.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(machine_findings(&first), Vec::<(String, String)>::new(), "the first machines seen are no finding");

    let swapped = rack_step(dir.path(), &mut inv, &[("tray03", "h100-sxm"), ("tray07", "hgx-b200")]);
    let found = machine_findings(&swapped);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].0, "tray03");
    assert_eq!(
        found[0].1,
        "tray03 in rack r7 now holds machine serial 1654223000456, was serial 1654225000123; \
         it was in tray07 in rack r7 before"
    );
    assert_eq!(found[1].0, "tray07");
    assert_eq!(
        found[1].1,
        "tray07 in rack r7 now holds machine serial 1654225000123, was serial 1654223000456; \
         it was in tray03 in rack r7 before"
    );
    assert!(swapped
        .rack_findings
        .iter()
        .filter(|f| f.check == "inventory.machine")
        .all(|f| f.outcome == Outcome::Fail));
    assert_eq!(swapped.exit_code, kiln::exit::CHECK_FAILED, "a swap is a finding a pipeline sees");

    // The places stay the keys: each keeps its runs, and its history says which machine was there.
    let tray03 = inv.node("tray03").expect("query").expect("tray03");
    assert_eq!(tray03.serial.as_deref(), Some("1654223000456"));
    assert_eq!(inv.runs(tray03.id).expect("runs").len(), 2);
    let history = inv.machine_events(tray03.id).expect("history");
    let kinds: Vec<(Option<&str>, &str)> =
        history.iter().map(|e| (e.previous.as_deref(), e.machine.as_str())).collect();
    assert_eq!(kinds.len(), 2, "{history:#?}");
    assert_eq!(kinds[0].0, None);
    assert_eq!(kinds[1].0, Some(kinds[0].1), "the second machine replaced the first");
    assert_eq!(history[1].other_node.as_deref(), Some("tray07"));
    assert_eq!(inv.nodes().expect("nodes").len(), 2, "no node was made of a machine");
    // The place's history says it too, in the binary's words.
    let db = dir.path().join("kiln.db");
    let out = kiln(&["node", "history", "r7/tray03", "--json", "--db", db.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    let messages: Vec<&str> = doc["machine_events"]
        .as_array()
        .expect("machine events")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(messages.len(), 2, "{doc:#}");
    assert_eq!(messages[1], found[0].1);
    let text = kiln(&["node", "history", "r7/tray03", "--db", db.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("machines in this place:") && text.contains(found[0].1.as_str()), "{text}");

    // Nothing changed since: a third run finds nothing to report.
    let again = rack_step(dir.path(), &mut inv, &[("tray03", "h100-sxm"), ("tray07", "hgx-b200")]);
    assert_eq!(machine_findings(&again), Vec::<(String, String)>::new());
}

#[test]
fn the_same_manifest_name_in_two_racks_is_two_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open");
    rack_step_in(dir.path(), &mut inv, "r7", &[("tray03", "hgx-b200")]);
    let other = rack_step_in(dir.path(), &mut inv, "r8", &[("tray03", "h100-sxm")]);
    assert!(other.rack_findings.iter().all(|f| f.check != "inventory.machine"), "no machine changed place");
    let r7 = inv.node("r7/tray03").expect("query").expect("r7's tray03");
    let r8 = inv.node("r8/tray03").expect("query").expect("r8's tray03");
    assert_ne!(r7.id, r8.id);
    assert_eq!((r7.serial.as_deref(), r8.serial.as_deref()), (Some("1654225000123"), Some("1654223000456")));
    let err = inv.node("tray03").expect_err("two racks have a tray03");
    assert!(err.to_string().contains("name one by its serial, or as RACK/NAME"), "{err}");
}
