//! A rack's bill of materials: the BOM file a manifest points to (`[rack] bom`) and the
//! manifest's own `[nodes.bom]` entries, judged in `kiln rack validate` with the real kiln binary
//! on this machine (the local transport, fixture trees as the nodes); a BOM that names a node the
//! manifest lacks, or a bad entry in the manifest, is bad input naming file, line and field.

mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kiln::checks::{Outcome, Verdict};
use kiln::fleet::{
    run_rack_step, FanoutOptions, LocalConnector, NodeStatus, Plan, RackOutcome, RackStep, RemoteBinary, Step,
};
use kiln::hw::fixture::{hgx_b200, Unit};
use kiln::inventory::Inventory;
use kiln::lifecycle::RunKind;
use kiln::rack::{ManifestError, RackManifest, RackNode};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// An HGX B200 of its own (serials from `number`), as inspected by the real binary, and its tree
/// written under `dir/name` with `change` applied first.
fn tray(
    dir: &Path,
    name: &str,
    number: u32,
    change: impl FnOnce(&mut kiln::hw::fixture::FixtureTree),
) -> (PathBuf, Value) {
    let mut tree = hgx_b200(&Unit::new(name, number, format!("1654225{number:06}")));
    let healthy = dir.join(format!("{name}-as-built"));
    tree.write(&healthy).expect("write the tree");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["inspect", "--json", "--root", s(&healthy)])
        .output()
        .expect("run kiln inspect");
    let node: Value = serde_json::from_slice(&out.stdout).expect("node JSON");
    change(&mut tree);
    let root = dir.join(name);
    tree.write(&root).expect("write the tree");
    (root, node)
}

/// The asset record's rows of `node` as inspected when built: every GPU by NVML index, every
/// DIMM by slot, as `RACK/NAME` rows of a site-wide CSV.
fn rows(place: &str, node: &Value) -> String {
    let mut text = String::new();
    for g in node["gpus"]["gpus"].as_array().expect("gpus") {
        text.push_str(&format!("A-{place},{place},gpu,gpu{},{}\n", g["index"], g["serial"].as_str().expect("serial")));
    }
    for d in node["memory"]["dimms"].as_array().expect("dimms") {
        let (slot, serial) = (d["locator"].as_str().expect("slot"), d["serial"].as_str().expect("serial"));
        text.push_str(&format!("A-{place},{place},dimm,{slot},{serial}\n"));
    }
    text
}

fn plan() -> Plan {
    let script = "exec {kiln} validate --json --with-node --root {root}";
    Plan { step: Step::Validate, command: vec!["sh".into(), "-c".into(), script.into()], push: true }
}

fn run(dir: &Path, inv: &mut Inventory, manifest: &RackManifest) -> RackOutcome {
    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let remote = dir.join("node-bin/kiln");
    let opts = FanoutOptions {
        parallel: 2,
        command_timeout: Duration::from_secs(60),
        binary: RemoteBinary::new(Some(&kiln), s(&remote)).expect("binary"),
    };
    let refs: Vec<&RackNode> = manifest.nodes.iter().collect();
    let plan = plan();
    let specs = kiln::checks::spec_load::load_builtin().expect("built-in specs");
    let step = RackStep {
        rack: &manifest.rack.id,
        rack_platform: manifest.rack.platform.as_deref(),
        specs: &specs,
        nodes: &refs,
        plan: &plan,
        opts: &opts,
        force: true,
        whole_rack: true,
    };
    run_rack_step(&step, &LocalConnector, Some(inv), &|_, _| {}).expect("inventory readable")
}

/// The failed and errored `bom.*` findings of a node's validate JSON: (check, place).
fn bom_failures(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["outcome"] != "pass" && f["check"].as_str().is_some_and(|c| c.starts_with("bom.")))
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().into(),
                f["component"]["label"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

#[test]
fn the_racks_bom_fails_exactly_the_wrong_gpu_and_the_missing_dimm_with_their_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root1, built1) = tray(dir.path(), "tray01", 41, |_| {});
    // tray02's DIMM in CPU0_DIMM_B1 (the third SMBIOS memory device) is gone.
    let (root2, built2) = tray(dir.path(), "tray02", 42, |t| {
        t.remove("sys/firmware/dmi/entries/17-2");
    });
    // The site's asset record: tray02 as built, but GPU 2 listed with another serial; a tray of
    // another rack, which this rack leaves alone.
    let wrong = "1650000000999";
    let real = built2["gpus"]["gpus"][2]["serial"].as_str().expect("serial").to_string();
    let site = format!(
        "asset_tag,node,kind,place,serial\n{}A-9,r-other/tray09,gpu,gpu0,1650000000001\n",
        rows("r-bom/tray02", &built2).replace(&real, wrong)
    );
    std::fs::write(dir.path().join("site-bom.csv"), site).expect("write the BOM");
    // tray01's entry is the manifest's own: its system serial, and counts for every tray.
    let manifest = format!(
        r#"[rack]
id = "r-bom"
platform = "hgx-b200"
bom = "site-bom.csv"

[[nodes]]
name = "tray01"
address = "127.0.0.1"
kiln_root = "{}"

[nodes.bom]
system_serial = "{}"
gpu_count = 8
dimm_count = 32

[[nodes]]
name = "tray02"
address = "127.0.0.1"
kiln_root = "{}"
"#,
        s(&root1),
        built1["dmi"]["product_serial"].as_str().expect("serial"),
        s(&root2)
    );
    let path = dir.path().join("r-bom.toml");
    std::fs::write(&path, manifest).expect("write the manifest");
    let manifest = RackManifest::load(&path).expect("manifest and BOM load");
    let bom = manifest.nodes[0].bom.as_deref().expect("the rack has a BOM");
    assert_eq!(bom.node.len(), 2, "tray02 from the file, tray01 from the manifest; r-other's tray left out");

    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open inventory");
    let outcome = run(dir.path(), &mut inv, &manifest);
    let status: Vec<(&str, NodeStatus)> = outcome.nodes.iter().map(|n| (n.node.as_str(), n.status)).collect();
    assert_eq!(status, [("tray01", NodeStatus::Pass), ("tray02", NodeStatus::Fail)], "{outcome:#?}");
    assert_eq!(outcome.exit_code, kiln::exit::CHECK_FAILED);

    let one = &outcome.nodes[0];
    let passed = one.report.as_ref().expect("report")["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"].as_str().is_some_and(|c| c.starts_with("bom.")) && f["outcome"] == "pass")
        .count();
    assert_eq!(passed, 3, "tray01's system serial, GPU and DIMM counts judged and passed");

    let two = &outcome.nodes[1];
    assert_eq!(
        bom_failures(two.report.as_ref().expect("report")),
        [
            ("bom.serial".to_string(), "gpu2 slot 3 0000:52:00.0".to_string()),
            ("bom.missing".to_string(), "dimm slot CPU0_DIMM_B1".to_string())
        ]
    );
    assert_eq!(two.remote_exit, Some(0), "the node's own kiln passed its spec; the BOM failed it");
    assert!(
        two.reason.as_deref().is_some_and(|r| r.starts_with("bom.serial gpu2") && r.contains("(+1 more)")),
        "{two:#?}"
    );

    // Recorded as judged: the run's verdict, exit code and findings, and the node failed.
    let id = inv.node("r-bom/tray02").expect("query").expect("node").id;
    let run = inv.latest_run_of_kind(id, RunKind::Validate).expect("query").expect("validate run");
    assert_eq!((run.verdict, run.exit_code), (Some(Verdict::Fail), kiln::exit::CHECK_FAILED));
    let mut failed: Vec<String> = inv
        .run_findings(run.id)
        .expect("findings")
        .into_iter()
        .filter(|f| f.outcome == Outcome::Fail)
        .map(|f| f.check)
        .collect();
    failed.sort();
    assert_eq!(failed, ["bom.missing", "bom.serial"]);
    assert_eq!(inv.state("r-bom/tray02").expect("state").name(), "failed");
    assert_eq!(inv.state("r-bom/tray01").expect("state").name(), "validated");
}

const RACK: &str = "[rack]\nid = \"r1\"\nbom = \"bom.csv\"\n\n[[nodes]]\nname = \"tray01\"\naddress = \"10.0.0.1\"\n";

fn manifest_in(dir: &Path, text: &str, bom: Option<&str>) -> PathBuf {
    if let Some(b) = bom {
        std::fs::write(dir.join("bom.csv"), b).expect("write");
    }
    let path = dir.join("r1.toml");
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn a_bom_naming_a_node_the_manifest_lacks_is_bad_input_at_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "node,kind,place,serial\ntray01,gpu,gpu0,S1\nr1/tray07,gpu,gpu0,S2\nr2/tray07,gpu,gpu0,S3\n";
    let path = manifest_in(dir.path(), RACK, Some(csv));
    let err = RackManifest::load(&path).expect_err("tray07 is not in r1");
    let text = err.to_string();
    assert!(text.contains("bom.csv:3:1: field `node`: node \"r1/tray07\" is not in rack r1's manifest"), "{text}");
    assert!(!text.contains("r2/tray07"), "another rack's node is that rack's business: {text}");

    // The CLI refuses it before any node is touched: bad input, file, line and field.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "validate", "--rack", s(&path), "--db", s(&dir.path().join("kiln.db"))])
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{stderr}");
    assert!(stderr.contains("bom.csv:3:1: field `node`"), "{stderr}");

    // The same in TOML names the entry's field.
    let toml = "[[node]]\nname = \"tray01\"\n\n[[node]]\nname = \"tray08\"\n";
    std::fs::write(dir.path().join("bom.toml"), toml).expect("write");
    let path = manifest_in(dir.path(), &RACK.replace("bom.csv", "bom.toml"), None);
    let text = RackManifest::load(&path).expect_err("tray08 is not in r1").to_string();
    assert!(text.contains("bom.toml:5:8: field `node[1].name`: node \"tray08\""), "{text}");
}

#[test]
fn the_manifests_own_entries_are_checked_at_their_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = "\n[nodes.bom]\ngpu_count = 4\nparts = [\n  { kind = \"gpu\", place = \"gpu0\", serial = \"S1\" },\n  { kind = \"fan\", place = \"1\", serial = \"S2\" },\n]\n";
    let own = RACK.replace("bom = \"bom.csv\"\n", "");
    let path = manifest_in(dir.path(), &format!("{own}{entry}"), None);
    match RackManifest::load(&path) {
        Err(ManifestError::Invalid { line, field, message, .. }) => {
            assert_eq!((line, field.as_str()), (12, "nodes[0].bom.parts[1].kind"), "{message}");
            assert!(message.contains("unknown kind \"fan\""), "{message}");
        }
        other => panic!("expected an invalid manifest, got {other:?}"),
    }
    // An entry that names another node, or a node given in the file and the manifest both.
    let path = manifest_in(dir.path(), &format!("{own}\n[nodes.bom]\nname = \"tray02\"\n"), None);
    let text = RackManifest::load(&path).expect_err("another name").to_string();
    assert!(text.contains("field `nodes[0].bom.name`") && text.contains("leave `name` out"), "{text}");
    let path = manifest_in(
        dir.path(),
        &format!("{RACK}{entry}").replace("\"fan\"", "\"nic\""),
        Some("node,kind,place,serial\ntray01,gpu,gpu1,S9\n"),
    );
    let text = RackManifest::load(&path).expect_err("in both").to_string();
    assert!(text.contains("r1.toml:9: field `nodes[0].bom`") && text.contains("also has an entry in"), "{text}");
    // An unknown field in an entry is a syntax error at its line.
    let path = manifest_in(dir.path(), &format!("{own}\n[nodes.bom]\ngpus = 4\n"), None);
    let text = RackManifest::load(&path).expect_err("unknown field").to_string();
    assert!(text.contains("r1.toml:") && text.contains("gpus"), "{text}");
}

#[test]
fn a_gpu_recorded_in_another_place_fails_the_rack_validate_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    // A node validated alone, outside any rack, holds GPU 5 with serial X.
    let (lone, built) = tray(dir.path(), "bench-07", 61, |_| {});
    let serial = built["gpus"]["gpus"][5]["serial"].as_str().expect("serial").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["validate", "--root", s(&lone), "--db", s(&db), "--json"])
        .env_remove("KILN_DB")
        .output()
        .expect("run kiln validate");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // tray01 of rack r-uniq, another machine, reports serial X on its GPU 2; tray02 is clean.
    let copied = serial.clone();
    let (root1, _) = tray(dir.path(), "tray01", 62, move |t| {
        t.gpu_mut(2).expect("GPU 2").serial = Some(copied);
    });
    let (root2, _) = tray(dir.path(), "tray02", 63, |_| {});
    let manifest = format!(
        "[rack]\nid = \"r-uniq\"\nplatform = \"hgx-b200\"\n\n[[nodes]]\nname = \"tray01\"\naddress = \"127.0.0.1\"\n\
         kiln_root = \"{}\"\n\n[[nodes]]\nname = \"tray02\"\naddress = \"127.0.0.1\"\nkiln_root = \"{}\"\n",
        s(&root1),
        s(&root2)
    );
    let path = dir.path().join("r-uniq.toml");
    std::fs::write(&path, manifest).expect("write the manifest");
    let manifest = RackManifest::load(&path).expect("manifest");
    let mut inv = Inventory::open(&db).expect("open inventory");
    let outcome = run(dir.path(), &mut inv, &manifest);

    let unique: Vec<&kiln::checks::Finding> =
        outcome.rack_findings.iter().filter(|f| f.check == "inventory.serial_unique").collect();
    assert_eq!(unique.len(), 1, "{:#?}", outcome.rack_findings);
    let f = unique[0];
    assert_eq!(f.outcome, Outcome::Fail);
    assert!(f.message.starts_with("tray01 gpu2 "), "{}", f.message);
    assert!(f.message.contains(&format!("serial {serial} is also recorded in bench-07 as gpu5")), "{}", f.message);
    assert_eq!(outcome.exit_code, kiln::exit::CHECK_FAILED);
    // The rack gate holds the tray the finding names, and only it.
    let state = |name: &str| inv.state(&format!("r-uniq/{name}")).expect("state");
    assert_eq!(state("tray01").name(), "failed");
    assert!(state("tray01").reason().is_some_and(|r| r.contains("inventory.serial_unique")), "{:?}", state("tray01"));
    assert_eq!(state("tray02").name(), "validated");
}
