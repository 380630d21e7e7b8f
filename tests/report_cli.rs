//! `kiln report` end to end: the binary against database files in temporary directories.

mod fixture_support;

use std::path::Path;
use std::process::{Command, Output};

use kiln::checks::{Component, Finding, Outcome, Severity, Verdict};
use kiln::exit;
use kiln::hw::fixture::sample::hgx_b200_node;
use kiln::inventory::{Inventory, RunRecord};
use kiln::lifecycle::RunKind;

fn kiln(args: &[&str], db_env: Option<&Path>, cwd: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args).current_dir(cwd).env_remove("KILN_DB");
    if let Some(db) = db_env {
        cmd.env("KILN_DB", db);
    }
    cmd.output().expect("run kiln")
}

fn recorded_db(path: &Path) {
    let mut inv = Inventory::open(path).expect("open");
    let node = hgx_b200_node("gpu-b07");
    let findings = [Finding::new("gpu.count", Outcome::Fail, Severity::Critical, Component::node(), "7 GPUs, not 8")
        .expected(8)
        .actual(7)
        .action("reseat the missing GPU's tray")];
    let run = RunRecord {
        findings: &findings,
        verdict: Some(Verdict::Fail),
        exit_code: exit::CHECK_FAILED,
        ..RunRecord::new(RunKind::Validate, &node, "tech-ana")
    };
    inv.record_run(&run).expect("record");
}

#[test]
fn a_missing_database_is_a_database_error_and_is_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(&["report"], None, dir.path());
    assert_eq!(out.status.code(), Some(exit::DATABASE));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inventory/kiln.db") && stderr.contains("no such file"), "{stderr}");
    assert!(!dir.path().join("inventory").exists(), "report must not create the database");
    assert!(out.stdout.is_empty());
}

#[test]
fn report_reads_the_default_path_the_flag_and_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    recorded_db(&dir.path().join("inventory/kiln.db"));
    let elsewhere = dir.path().join("other.db");
    recorded_db(&elsewhere);

    let table = kiln(&["report"], None, dir.path());
    assert_eq!(table.status.code(), Some(exit::OK), "{}", String::from_utf8_lossy(&table.stderr));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("gpu-b07  serial "), "{text}");
    assert!(text.contains("action: reseat the missing GPU's tray"), "{text}");

    let flag = elsewhere.to_str().expect("utf-8 path");
    let json = kiln(&["report", "--db", flag, "--node", "gpu-b07", "--format", "json"], None, dir.path());
    assert_eq!(json.status.code(), Some(exit::OK));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON on stdout");
    assert_eq!((doc["schema_version"].as_u64(), doc["kind"].as_str()), (Some(1), Some("kiln.report")));
    assert_eq!(doc["nodes"][0]["state"]["state"], "failed");

    let csv = kiln(&["report", "--format", "csv"], Some(&elsewhere), Path::new("/"));
    assert_eq!(csv.status.code(), Some(exit::OK));
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.lines().any(|l| l.starts_with("finding,gpu-b07,1,validate,node,")), "{text}");
}

#[test]
fn an_unknown_node_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    recorded_db(&db);
    let out = kiln(&["report", "--node", "gpu-zz9"], Some(&db), dir.path());
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("find node gpu-zz9: not in the inventory"));
}

#[test]
fn a_gpu_is_named_the_same_in_findings_components_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let root = fixture_support::shared("hgx-b200-gpu-x8");
    let out = kiln(
        &["validate", "--root", root.to_str().expect("utf-8"), "--db", db.to_str().expect("utf-8")],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(exit::CHECK_FAILED), "{}", String::from_utf8_lossy(&out.stderr));

    // NVML index as nvidia-smi counts, the chassis slot, the address: one name, everywhere.
    let name = "gpu3 slot 4 0000:61:00.0";
    let table = kiln(&["report", "--db", db.to_str().expect("utf-8")], None, dir.path());
    let text = String::from_utf8_lossy(&table.stdout);
    let component_row = text.lines().find(|l| l.trim_start().starts_with(name) && l.contains("NVIDIA"));
    assert!(component_row.is_some(), "the component table names it {name}:\n{text}");
    let finding_row = text.lines().find(|l| l.contains("pcie.width") && l.contains(name));
    assert!(finding_row.is_some(), "the finding names it {name}:\n{text}");

    let json = kiln(&["report", "--db", db.to_str().expect("utf-8"), "--format", "json"], None, dir.path());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("report JSON");
    let node = &doc["nodes"][0];
    let labels: Vec<&str> =
        node["components"].as_array().expect("components").iter().filter_map(|c| c["label"].as_str()).collect();
    assert!(labels.contains(&name), "{labels:?}");
    let finding = node["findings"]["not_passing"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == "pcie.width")
        .expect("the x8 finding");
    assert_eq!(finding["component"]["label"], name);

    let csv = kiln(&["report", "--db", db.to_str().expect("utf-8"), "--format", "csv"], None, dir.path());
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.lines().any(|l| l.starts_with("component,") && l.contains(&format!(",{name},"))), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("finding,") && l.contains(&format!(",{name},"))), "{csv}");
}
