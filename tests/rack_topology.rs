//! `kiln rack topology` run for real on an inventory on disk: four GB200 trays of one rack
//! recorded as the rack gate leaves them (three passed, one failed) and a second rack's tray in
//! a domain of its own; every format printed, written with `--out` and as JSON, with the exit
//! codes a pipeline reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::checks::{Component, Finding, Outcome, Severity, Verdict};
use kiln::hw::fixture::{gb200_tray, Gb200Tray};
use kiln::inventory::{Inventory, RunRecord};
use kiln::lifecycle::RunKind;
use serde_json::Value;

const UUID: &str = "7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6";
const OTHER: &str = "0badc0de-0000-4000-8000-000000000001";

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env_remove("KILN_DB").output().expect("run kiln")
}

fn manifest(dir: &Path, id: &str, nodes: &[&str]) -> PathBuf {
    let mut text = format!("[rack]\nid = \"{id}\"\n\n[credentials]\nssh_user = \"root\"\n");
    for (i, n) in nodes.iter().enumerate() {
        text.push_str(&format!("\n[[nodes]]\nname = \"{n}\"\naddress = \"10.9.0.{}\"\n", i + 1));
    }
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Tray `i` (a machine of its own) validated in place `name` of rack `rack` with `verdict`, as
/// `kiln rack validate` records it, its GPUs registered in `uuid`'s domain.
fn record(inv: &mut Inventory, rack: &str, name: &str, i: u32, uuid: &str, pass: bool) {
    let mut tree = gb200_tray(&Gb200Tray::in_rack(i));
    for g in 0..4 {
        if let Some(f) = tree.gpu_mut(g).and_then(|g| g.fabric.as_mut()) {
            f.cluster_uuid = uuid.into();
        }
    }
    let mut node = tree.inspect();
    node.hostname = name.into();
    let findings = if pass {
        Vec::new()
    } else {
        vec![Finding::new(
            "fabric.health.degraded_bandwidth",
            Outcome::Fail,
            Severity::Critical,
            Component::node(),
            "GPU 1 reports degraded NVLink bandwidth",
        )
        .action("reseat the tray's NVLink cable cartridges")]
    };
    let run = RunRecord {
        verdict: Some(if pass { Verdict::Pass } else { Verdict::Fail }),
        findings: &findings,
        rack: Some(rack),
        name: Some(name),
        ..RunRecord::new(RunKind::Validate, &node, "test")
    };
    inv.record_run(&run).expect("record validate");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_verified_domains_print_in_every_form_and_left_out_trays_say_why() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("kiln.db");
    let mut inv = Inventory::open(&db).expect("open");
    for (i, name) in ["node01", "node02", "node03", "node10"].iter().enumerate() {
        record(&mut inv, "r07", name, i as u32 + 1, UUID, *name != "node03");
    }
    record(&mut inv, "r08", "b01", 11, OTHER, true);
    drop(inv);
    let r07 = manifest(dir.path(), "r07", &["node01", "node02", "node03", "node10"]);
    let r08 = manifest(dir.path(), "r08", &["b01", "b02"]);
    let d = s(&db);

    // The block form on stdout: one block per domain, the left-out trays as comments.
    let out = kiln(&["rack", "topology", "--rack", s(&r07), s(&r08), "--format", "slurm-block", "--db", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "BlockName=r07-7c1e2f3a-32766 Nodes=node[01-02,10]",
            "BlockName=r08-0badc0de-32766 Nodes=b01",
            "BlockSizes=1,2"
        ]
    );
    assert!(text.contains("# left out: node03 (r07): failed: "), "{text}");
    assert!(text.contains("# left out: b02 (r08): not in the inventory"), "{text}");

    // The tree form written with --out; the rack of one domain passes.
    let conf = dir.path().join("topology.conf");
    let out = kiln(&["rack", "topology", "--rack", s(&r08), "--format", "slurm-tree", "--out", s(&conf), "--db", d]);
    assert_eq!(out.status.code(), Some(1), "b02 is unknown");
    let written = std::fs::read_to_string(&conf).expect("written");
    assert!(written.lines().any(|l| l == "SwitchName=r08-0badc0de-32766 Nodes=b01"), "{written}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("left out b02 (r08)"));

    // JSON: typed, with the domains, the sizes, the left-out trays and the text.
    let out = kiln(&["rack", "topology", "--rack", s(&r07), "--format", "k8s-labels", "--json", "--db", d]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((doc["schema_version"].as_u64(), doc["kind"].as_str()), (Some(1), Some("kiln.rack-topology")));
    assert_eq!(doc["domains"][0]["clique"], format!("{UUID}.32766"));
    assert_eq!(doc["domains"][0]["nodes"], serde_json::json!(["node01", "node02", "node10"]));
    assert_eq!(doc["block_sizes"], serde_json::json!([3]));
    assert_eq!(doc["left_out"][0]["node"], "node03");
    assert!(doc["text"]
        .as_str()
        .expect("text")
        .contains(&format!("kubectl label node node10 --overwrite nvidia.com/gpu.clique={UUID}.32766")));
    assert_eq!(doc["exit_code"], 1);

    // Every tray placed: exit 0. The YAML form.
    // (rack r07's manifest listing only its passing trays: a rack's places are its own.)
    let ok_dir = dir.path().join("ok");
    std::fs::create_dir_all(&ok_dir).expect("mkdir");
    let ok = manifest(&ok_dir, "r07", &["node01", "node02"]);
    let out = kiln(&["rack", "topology", "--rack", s(&ok), "--format", "slurm-yaml", "--db", d]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("      - block: r07-7c1e2f3a-32766\n        nodes: \"node[01-02]\""));

    // No verified domain: nothing written, exit 1.
    let none = manifest(dir.path(), "none", &["node03"]);
    let empty = dir.path().join("empty.conf");
    let out = kiln(&["rack", "topology", "--rack", s(&none), "--format", "slurm-block", "--out", s(&empty), "--db", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!empty.exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no verified NVLink domain"));
}

#[test]
fn a_missing_inventory_or_a_bad_manifest_is_refused_with_its_exit_code() {
    let dir = tempfile::tempdir().expect("dir");
    let r = manifest(dir.path(), "r1", &["n1"]);
    let missing = dir.path().join("nope.db");
    let out = kiln(&["rack", "topology", "--rack", s(&r), "--format", "slurm-block", "--db", s(&missing)]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!missing.exists(), "a reader never creates the inventory");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rack]\nid = 3\n").expect("write");
    let out = kiln(&["rack", "topology", "--rack", s(&bad), "--format", "slurm-block", "--db", s(&missing)]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[test]
fn topology_and_imex_flags_that_do_not_fit_are_refused_before_anything_is_done() {
    let dir = tempfile::tempdir().expect("dir");
    let r = manifest(dir.path(), "r1", &["n1", "n2"]);
    let db = dir.path().join("kiln.db");
    Inventory::open(&db).expect("create the inventory");
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").expect("token");
    let topo = dir.path().join("topology.conf");
    let (r, d, t, p) = (s(&r), s(&db), s(&token), s(&topo));
    // A Slurm topology file for a Kubernetes hand-off: a usage error, nothing written.
    let out = kiln(&[
        "rack",
        "handoff",
        "--to",
        "kubernetes",
        "--kube-api",
        "https://127.0.0.1:1",
        "--kube-token-file",
        t,
        "--rack",
        r,
        "--db",
        d,
        "--topology",
        p,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to slurm"));
    // The file replaces the whole rack's topology: not with --nodes.
    let out = kiln(&["rack", "handoff", "--to", "slurm", "--rack", r, "--db", d, "--topology", p, "--nodes", "n1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!topo.exists());
    // rack imex without an inventory: exit 5, and nothing is created.
    let missing = dir.path().join("none.db");
    let out = kiln(&["rack", "imex", "--rack", r, "--db", s(&missing)]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!missing.exists());
    // No tray passed the gate: nothing to write, exit 1, no node contacted (their addresses are
    // not reachable from here).
    let out = kiln(&["rack", "imex", "--rack", r, "--db", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("left out n1 (r1): not in the inventory"));
}
