//! Snapshot tests of the report in all three formats, from a real database file.

mod burnin;

use crate::checks::{Component, Finding, Outcome, Severity};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::tests::support::{at, record, temp_db, validate_findings};
use crate::inventory::{Inventory, InventoryError};
use crate::lifecycle::RunKind;
use crate::model::GpuInventory;

use super::{build_report, render_csv, render_json, render_table, Report, CSV_COLUMNS};

/// An inventory with three nodes: gpu-a01 validated twice with a GPU swapped
/// and a VBIOS reflashed in between, the second time failing; gpu-a02
/// inspected once; gpu-a03 enrolled from a manifest and never run.
fn scenario() -> (tempfile::TempDir, Inventory) {
    let (dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let before = hgx_b200_node("gpu-a01");
    let mut after = before.clone();
    if let GpuInventory::Inspected { gpus, .. } = &mut after.gpus {
        gpus[0].serial = Some("1650924060999".into());
        gpus[5].vbios_version = Some("97.00.6B.00.02".into());
    }
    record(&mut inv, RunKind::Validate, &before, &validate_findings(false), 0);
    let mut findings = validate_findings(true);
    findings.push(Finding::new(
        "nvlink.active",
        Outcome::Skipped,
        Severity::Info,
        Component::node(),
        "NVML not queried, \"quoted\", with a comma",
    ));
    record(&mut inv, RunKind::Validate, &after, &findings, 10);
    record(&mut inv, RunKind::Inspect, &hgx_b200_node("gpu-a02"), &[], 5);
    inv.enroll("gpu-a03", Some("r08"), "manifest").expect("enroll");
    (dir, inv)
}

fn report(inv: &Inventory, node: Option<&str>) -> Report {
    build_report(inv, node, at(120)).expect("build the report")
}

/// The only things that vary between machines and releases: the kiln
/// version recorded with each run and the enrollment time of a node enrolled
/// by hand (now). Every other time comes from the fixed run times.
fn redact(text: &str, inv: &Inventory) -> String {
    let enrolled = inv.node("gpu-a03").expect("query").expect("node").first_seen;
    text.replace(env!("CARGO_PKG_VERSION"), "[version]").replace(&enrolled, "[enrolled]")
}

#[test]
fn table_snapshot() {
    let (_dir, inv) = scenario();
    insta::assert_snapshot!(redact(&render_table(&report(&inv, None)), &inv));
}

#[test]
fn json_snapshot() {
    let (_dir, inv) = scenario();
    let text = render_json(&report(&inv, Some("gpu-a01"))).expect("render");
    let parsed: Report = serde_json::from_str(&text).expect("the JSON reads back as a report");
    assert_eq!(parsed, report(&inv, Some("gpu-a01")));
    insta::assert_snapshot!(redact(&text, &inv));
}

#[test]
fn csv_snapshot() {
    let (_dir, inv) = scenario();
    let text = render_csv(&report(&inv, None));
    let header = text.lines().next().expect("header");
    assert_eq!(header.split(',').count(), CSV_COLUMNS.len());
    insta::assert_snapshot!(redact(&text, &inv));
}

#[test]
fn an_unknown_node_is_an_error_and_an_empty_inventory_says_so() {
    let (_dir, inv) = scenario();
    let err = build_report(&inv, Some("gpu-zz9"), at(0)).expect_err("unknown node");
    assert!(matches!(err, InventoryError::UnknownNode { .. }), "{err:?}");
    let (_dir2, path) = temp_db();
    let empty = Inventory::open(&path).expect("open");
    let report = build_report(&empty, None, at(0)).expect("empty report");
    assert_eq!(render_table(&report), "No nodes recorded.\n");
    assert_eq!(render_csv(&report).lines().count(), 1, "header only");
}
