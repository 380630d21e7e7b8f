//! Recording runs and reading them back.

use super::support::{at, count, raw, record, temp_db, validate_findings};
use crate::checks::Verdict;
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::{components_of, format_timestamp, Inventory, InventoryError, RunLifecycle, RunRecord};
use crate::lifecycle::{LifecycleState, RunKind};

#[test]
fn round_trip_of_a_run() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    let findings = validate_findings(true);
    let id = record(&mut inv, RunKind::Validate, &node, &findings, 0);

    let nodes = inv.nodes().expect("nodes");
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!(n.name, "gpu-a01");
    assert_eq!(n.rack.as_deref(), Some("r07"));
    assert_eq!(n.platform.as_deref(), Some("hgx-b200"));
    assert_eq!(n.serial, node.dmi.product_serial);
    assert_eq!(n.first_seen, format_timestamp(at(0)));
    assert_eq!(n.last_seen, format_timestamp(at(1)));
    assert!(matches!(&n.state, LifecycleState::Failed { reason } if reason == "validate failed: pci.link_width"));

    let run = inv.latest_run(n.id).expect("query").expect("a run");
    assert_eq!(run.id, id);
    assert_eq!((run.kind.as_str(), run.verdict, run.exit_code), ("validate", Some(Verdict::Fail), 1));
    assert_eq!(run.kiln_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(run.actor, "tech-ana");
    assert_eq!(inv.run_components(id).expect("components"), components_of(&node));
    assert_eq!(inv.run_findings(id).expect("findings"), findings);
    assert_eq!(inv.run_node(id).expect("node json"), node);
}

#[test]
fn a_stored_node_of_a_newer_schema_is_refused_naming_its_run() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let id = record(&mut inv, RunKind::Validate, &hgx_b200_node("gpu-a01"), &validate_findings(true), 0);
    raw(&path)
        .execute(
            "UPDATE node_models SET node_json = json_set(node_json, '$.schema_version', 999)
             WHERE id = (SELECT model_id FROM runs WHERE id = ?1)",
            [id.0],
        )
        .expect("edit");
    let err = crate::error::chain(&inv.run_node(id).expect_err("newer schema"));
    assert!(err.contains(&format!("run {}", id.0)) && err.contains("node schema_version 999"), "{err}");
}

#[test]
fn latest_queries_pick_the_newest_runs() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let a = hgx_b200_node("gpu-a01");
    let b = hgx_b200_node("gpu-a02");
    let validate = record(&mut inv, RunKind::Validate, &a, &validate_findings(false), 0);
    let burnin = record(&mut inv, RunKind::Burnin, &a, &validate_findings(false), 10);
    // Recorded last but started first: order is by start time, not arrival.
    let late = record(&mut inv, RunKind::Validate, &a, &validate_findings(true), -30);
    let inspect = record(&mut inv, RunKind::Inspect, &a, &[], 20);
    let b_inspect = record(&mut inv, RunKind::Inspect, &b, &[], 5);
    inv.enroll("gpu-a03", Some("r07"), "manifest").expect("enroll");

    let latest = inv.latest_runs().expect("latest runs");
    let summary: Vec<(&str, Option<_>)> =
        latest.iter().map(|(n, r)| (n.name.as_str(), r.as_ref().map(|r| r.id))).collect();
    assert_eq!(summary, vec![("gpu-a01", Some(inspect)), ("gpu-a02", Some(b_inspect)), ("gpu-a03", None)]);

    let a_id = latest[0].0.id;
    let judged: Vec<_> = inv.latest_judged_runs(a_id).expect("judged").into_iter().map(|r| r.id).collect();
    assert_eq!(judged, vec![burnin, validate], "newest burn-in and newest validate, the older failure hidden");
    let all: Vec<_> = inv.runs(a_id).expect("runs").into_iter().map(|r| r.id).collect();
    assert_eq!(all, vec![inspect, burnin, validate, late]);
    let latest_a = inv.latest_run(a_id).expect("latest").expect("a run");
    assert_eq!(inv.previous_run(&latest_a).expect("previous").map(|r| r.id), Some(burnin));
    assert_eq!(inv.node("gpu-a02").expect("query").map(|n| n.name), Some("gpu-a02".to_string()));
    assert_eq!(inv.node("nope").expect("query"), None);
}

#[test]
fn serials_are_found_across_nodes() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let a = hgx_b200_node("gpu-a01");
    let mut b = hgx_b200_node("gpu-a02");
    record(&mut inv, RunKind::Inspect, &a, &[], 0);
    // The GPU moved from a01 slot 3 to a02 slot 5.
    let moved = a.gpus.gpus()[3].serial.clone().expect("serial");
    if let crate::model::GpuInventory::Inspected { gpus, .. } = &mut b.gpus {
        gpus[5].serial = Some(moved.clone());
    }
    record(&mut inv, RunKind::Inspect, &b, &[], 60);
    let seen = inv.find_serial(&moved).expect("find");
    let places: Vec<(&str, Option<&str>)> =
        seen.iter().map(|s| (s.node.as_str(), s.component.address.as_deref())).collect();
    let gpu5 = crate::hw::fixture::sample::gpu_address(5);
    let gpu3 = crate::hw::fixture::sample::gpu_address(3);
    assert_eq!(places, vec![("gpu-a02", Some(gpu5.as_str())), ("gpu-a01", Some(gpu3.as_str()))]);
}

#[test]
fn a_failing_statement_leaves_no_partial_run() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    record(&mut inv, RunKind::Inspect, &node, &[], 0);
    // A trigger makes the last insert of a run (its findings) fail, after
    // the node, the run and its components were written.
    raw(&path)
        .execute_batch(
            "CREATE TRIGGER test_fail_findings BEFORE INSERT ON findings
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .expect("create trigger");
    let findings = validate_findings(true);
    let run = RunRecord {
        findings: &findings,
        verdict: Some(Verdict::Fail),
        started_at: at(10),
        finished_at: at(11),
        ..RunRecord::new(RunKind::Validate, &node, "tech-ana")
    };
    let err = inv.record_run(&run).expect_err("the injected failure must surface");
    assert!(matches!(err, InventoryError::RecordRun { .. }), "{err:?}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("record validate run of node gpu-a01") && chain.contains("injected failure"), "{chain}");

    let conn = raw(&path);
    assert_eq!(count(&conn, "runs"), 1, "only the first run");
    assert_eq!(count(&conn, "components"), components_of(&node).len() as i64);
    assert_eq!(count(&conn, "findings"), 0);
    let n = inv.nodes().expect("nodes").remove(0);
    assert_eq!(n.last_seen, format_timestamp(at(1)), "node update rolled back");
    assert_eq!(n.state, LifecycleState::Inspected, "no lifecycle change from the failed write");
    assert_eq!(inv.history("gpu-a01").expect("history").len(), 2, "enrolled and inspected only");
}

#[test]
fn an_illegal_requested_transition_refuses_the_whole_run() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    let run = RunRecord {
        lifecycle: RunLifecycle::To { state: LifecycleState::Ready, cause: "skip ahead".into() },
        ..RunRecord::new(RunKind::Inspect, &node, "tech-ana")
    };
    let err = inv.record_run(&run).expect_err("enrolled -> ready is illegal");
    assert!(err.to_string().contains("move node gpu-a01 to ready"), "{err}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("from enrolled to ready"), "{chain}");
    assert!(inv.nodes().expect("nodes").is_empty(), "not even the node was recorded");
}

#[test]
fn lifecycle_follows_run_outcomes() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    record(&mut inv, RunKind::Inspect, &node, &[], 0);
    record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 10);
    record(&mut inv, RunKind::Burnin, &node, &validate_findings(false), 20);
    // A passing rerun of validate keeps the node burned in.
    record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 30);
    let states: Vec<String> = inv.history("gpu-a01").expect("history").iter().map(|e| e.to.to_string()).collect();
    assert_eq!(states, ["enrolled", "inspected", "validated", "burned_in"]);
    let events = inv.history("gpu-a01").expect("history");
    assert_eq!(events[0].at, format_timestamp(at(0)), "enrolled when its first run started");
    assert_eq!(events[3].from, Some(LifecycleState::Validated));
    assert!(events[3].cause.starts_with("burnin run ") && events[3].cause.ends_with(" passed"), "{}", events[3].cause);
    assert_eq!(inv.state("gpu-a01").expect("state"), LifecycleState::BurnedIn);
}

#[test]
fn extra_writes_share_the_run_transaction() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    raw(&path)
        .execute_batch("CREATE TABLE test_results (run_id INTEGER NOT NULL REFERENCES runs(id), value REAL);")
        .expect("create a results table");
    let node = hgx_b200_node("gpu-a01");
    let run = RunRecord::new(RunKind::Burnin, &node, "tech-ana");
    let id = inv
        .record_run_with(&run, &mut |conn, id| {
            conn.execute("INSERT INTO test_results (run_id, value) VALUES (?1, 795.5)", [id.0]).map(|_| ())
        })
        .expect("record with results");
    let stored: i64 = raw(&path).query_row("SELECT run_id FROM test_results", [], |r| r.get(0)).expect("result row");
    assert_eq!(stored, id.0);

    let err = inv
        .record_run_with(&run, &mut |conn, id| {
            conn.execute("INSERT INTO test_results (run_id, value) VALUES (?1, 1.0)", [id.0])?;
            conn.execute("INSERT INTO no_such_table VALUES (1)", []).map(|_| ())
        })
        .expect_err("a failing extra write fails the run");
    assert!(matches!(err, InventoryError::RecordRun { .. }), "{err:?}");
    let conn = raw(&path);
    assert_eq!((count(&conn, "runs"), count(&conn, "test_results")), (1, 1), "the second run left nothing");
}

#[test]
fn a_node_without_hostname_is_recorded_by_its_machine_and_one_without_either_is_refused() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let named = hgx_b200_node("gpu-a01");
    let mut nameless = named.clone();
    nameless.hostname = " ".into();
    inv.record_run(&RunRecord::new(RunKind::Inspect, &nameless, "tech-ana")).expect("recordable by serial");
    let serial = named.dmi.product_serial.clone().expect("the sample has a serial");
    let row = inv.node(&serial).expect("query").expect("found by its serial");
    assert_eq!((row.name.as_str(), row.hostname.as_deref()), (format!("serial {serial}").as_str(), None));
    // The same machine reporting its hostname later is the same node, now named by it.
    inv.record_run(&RunRecord::new(RunKind::Inspect, &named, "tech-ana")).expect("record");
    let rows = inv.nodes().expect("nodes");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!((rows[0].name.as_str(), rows[0].hostname.as_deref()), ("gpu-a01", Some("gpu-a01")));

    let mut nothing = nameless.clone();
    nothing.dmi = Default::default();
    let err = inv.record_run(&RunRecord::new(RunKind::Inspect, &nothing, "tech-ana")).expect_err("no identity");
    assert!(matches!(err, InventoryError::NoIdentity { .. }), "{err:?}");
    assert!(err.to_string().contains("no hostname and no DMI system UUID, system or board serial"), "{err}");
}

#[test]
fn two_machines_with_one_hostname_stay_two_nodes_and_a_machine_without_identity_joins_neither() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let first = hgx_b200_node("localhost");
    let mut second = hgx_b200_node("other");
    second.hostname = "localhost".into();
    for node in [&first, &second, &first] {
        inv.record_run(&RunRecord::new(RunKind::Inspect, node, "tech-ana")).expect("record");
    }
    let rows = inv.nodes().expect("nodes");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(inv.runs(rows[0].id).expect("runs").len(), 2, "the first machine's two runs are its own");
    assert_eq!(inv.runs(rows[1].id).expect("runs").len(), 1);
    let err = inv.node("localhost").expect_err("two nodes answer to localhost");
    assert!(matches!(err, InventoryError::AmbiguousNode { .. }), "{err:?}");
    let serial = second.dmi.product_serial.clone().expect("serial");
    assert!(err.to_string().contains(&format!("serial {serial}")), "{err}");
    assert_eq!(inv.node(&serial).expect("by serial").map(|n| n.id), Some(rows[1].id));

    // A VM without DMI under the same hostname is a third node, not either machine.
    let mut vm = hgx_b200_node("vm");
    vm.hostname = "localhost".into();
    vm.dmi = Default::default();
    inv.record_run(&RunRecord::new(RunKind::Inspect, &vm, "tech-ana")).expect("record");
    inv.record_run(&RunRecord::new(RunKind::Inspect, &vm, "tech-ana")).expect("record again");
    assert_eq!(inv.nodes().expect("nodes").len(), 3, "the VM is one node of its own, run twice");
}

#[test]
fn one_name_in_two_racks_is_two_places() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let a = hgx_b200_node("a");
    let b = hgx_b200_node("b");
    for (rack, node) in [("r7", &a), ("r8", &b)] {
        let run = RunRecord { name: Some("tray03"), rack: Some(rack), ..RunRecord::new(RunKind::Inspect, node, "t") };
        inv.record_run(&run).expect("record");
    }
    let rows = inv.nodes().expect("nodes");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(inv.node("r8/tray03").expect("query").map(|n| n.serial), Some(b.dmi.product_serial.clone()));
}

#[test]
fn a_model_seen_again_is_stored_once_and_every_run_reads_its_own() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    let first = record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 0);
    let again = record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 10);
    let mut changed = node.clone();
    changed.kernel = Some("6.8.0-61-generic".into());
    let third = record(&mut inv, RunKind::Validate, &changed, &validate_findings(false), 20);
    let conn = raw(&path);
    assert_eq!((count(&conn, "runs"), count(&conn, "node_models")), (3, 2), "the same model twice is one row");
    let inline: i64 =
        conn.query_row("SELECT count(*) FROM runs WHERE node_json <> ''", [], |r| r.get(0)).expect("count");
    assert_eq!(inline, 0, "no run keeps a copy of its own");
    assert_eq!(inv.run_node(first).expect("node"), node);
    assert_eq!(inv.run_node(again).expect("node"), node);
    assert_eq!(inv.run_node(third).expect("node"), changed);
}
