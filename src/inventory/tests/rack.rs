//! Rack runs, the event log and BMC firmware readings, against real database files.

use std::collections::BTreeMap;

use super::support::{at, record, temp_db, validate_findings};
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::{ComponentRecord, FirmwareReading, Inventory, RackRunRecord, BMC_FIRMWARE_RUN};
use crate::lifecycle::{LifecycleState, RunKind};

#[test]
fn a_rack_run_keeps_its_findings_and_node_statuses() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let drift =
        Finding::new("rack.firmware.bios", Outcome::Fail, Severity::Warning, Component::node(), "node03 differs")
            .expected("1.2")
            .actual("1.1")
            .action("update the BIOS");
    let pass = Finding::new("rack.count.gpu", Outcome::Pass, Severity::Info, Component::node(), "all 8");
    let status: BTreeMap<String, String> =
        [("node01", "pass"), ("node03", "peer_error")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let findings = [pass.clone(), drift.clone()];
    let run = RackRunRecord {
        rack: "r07",
        kind: "validate",
        started_at: at(0),
        finished_at: at(2),
        findings: &findings,
        exit_code: 1,
        node_status: &status,
        actor: "kiln rack validate",
        gate: &BTreeMap::new(),
    };
    let first = inv.record_rack_run(&run).expect("record");
    let second =
        inv.record_rack_run(&RackRunRecord { started_at: at(5), findings: &[], exit_code: 0, ..run }).expect("again");
    let runs = inv.rack_runs("r07").expect("runs");
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![second, first], "newest first");
    assert_eq!(runs[1].verdict, Verdict::Fail);
    assert_eq!(runs[0].verdict, Verdict::Pass);
    assert_eq!(runs[1].node_status, status);
    assert_eq!(runs[1].started_at, "2025-03-01T08:00:00.000Z");
    assert_eq!(inv.rack_run_findings(first).expect("findings"), vec![pass, drift]);
    assert!(inv.rack_runs("r08").expect("other rack").is_empty());
}

fn firmware(id: &str, version: &str) -> ComponentRecord {
    ComponentRecord {
        kind: "firmware".into(),
        slot: None,
        address: Some(id.into()),
        vendor: None,
        model: None,
        serial: None,
        firmware: Some(version.into()),
        extra: serde_json::Map::new(),
    }
}

#[test]
fn bmc_firmware_is_its_own_run_and_stays_out_of_node_comparisons() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("node01");
    let inspect = record(&mut inv, RunKind::Inspect, &node, &[], 0);
    let items = [firmware("FW_BMC_0", "24.10"), firmware("HGX_FW_GPU_0", "96.00.A6.00.01")];
    let reading = FirmwareReading {
        node: "node01",
        rack: Some("r07"),
        components: &items,
        exit_code: 0,
        started_at: at(5),
        finished_at: at(6),
        actor: "kiln bmc firmware",
    };
    let fw = inv.record_bmc_firmware(&reading).expect("record firmware");
    let validate = record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 10);

    let id = inv.node("node01").expect("query").expect("node").id;
    let latest_fw = inv.latest_bmc_firmware(id).expect("query").expect("a reading");
    assert_eq!((latest_fw.id, latest_fw.kind.as_str(), latest_fw.verdict), (fw, BMC_FIRMWARE_RUN, None));
    let components = inv.run_components(fw).expect("components");
    assert_eq!(components, items.to_vec());
    // The node runs compare with each other, never with the firmware reading.
    let changes = inv.changes_since_previous_run(id).expect("changes").expect("two node runs");
    assert_eq!((changes.previous_run, changes.run, changes.changes.len()), (inspect, validate, 0));
    let later = inv
        .record_bmc_firmware(&FirmwareReading { started_at: at(20), finished_at: at(21), ..reading })
        .expect("again");
    assert_eq!(inv.latest_run(id).expect("latest").map(|r| r.id), Some(validate));
    assert_eq!(inv.latest_runs().expect("all")[0].1.as_ref().map(|r| r.id), Some(validate));
    assert_eq!(inv.runs(id).expect("runs")[0].id, later, "the full history still lists it");
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated, "readings move no state");

    // A reading of a node never seen enrolls it.
    inv.record_bmc_firmware(&FirmwareReading { node: "node09", ..reading }).expect("new node");
    assert_eq!(inv.state("node09").expect("state"), LifecycleState::Enrolled);
    assert_eq!(inv.history("node09").expect("history").len(), 1);
}

#[test]
fn latest_run_of_kind_picks_the_newest_of_that_kind() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("node01");
    let v1 = record(&mut inv, RunKind::Validate, &node, &validate_findings(true), 0);
    let v2 = record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 5);
    record(&mut inv, RunKind::Inspect, &node, &[], 10);
    let id = inv.node("node01").expect("query").expect("node").id;
    let latest = inv.latest_run_of_kind(id, RunKind::Validate).expect("query").expect("a run");
    assert_eq!((latest.id, latest.verdict), (v2, Some(Verdict::Pass)));
    assert_ne!(latest.id, v1);
    assert!(inv.latest_run_of_kind(id, RunKind::Burnin).expect("query").is_none());
}
