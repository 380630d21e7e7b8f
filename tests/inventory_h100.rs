//! A database recorded on a real H100 (validate + burn-in, schema 2) opens
//! under the current schema and still answers what a report asks of it.

use std::path::PathBuf;

use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;

#[test]
fn an_h100_inventory_of_an_older_schema_migrates_and_reports() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/h100-burnin-schema2.db");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    std::fs::copy(&fixture, &db).expect("copy the fixture");
    let (before, models) = {
        let old = Inventory::open_read_only(&db).expect("read the schema-2 file");
        let id = old.node("vm").expect("query").expect("the node").id;
        let models: Vec<_> = old
            .runs(id)
            .expect("runs")
            .into_iter()
            .map(|r| (r.id, old.run_node(r.id).expect("the run's model")))
            .collect();
        (old.row_counts().expect("counts"), models)
    };
    assert!(before.iter().any(|(t, n)| t == "nodes" && *n == 1), "{before:?}");
    assert_eq!(models.len(), 2, "a validate and a burn-in run");

    let inv = Inventory::open(&db).expect("opens and migrates");
    let after = inv.row_counts().expect("counts");
    for (table, rows) in &before {
        let now = after.iter().find(|(t, _)| t == table).map(|(_, n)| *n);
        assert_eq!(now, Some(*rows), "table {table} keeps every row through the migrations");
    }
    assert_eq!(inv.schema_version().expect("version"), kiln::inventory::migrate::latest_version());
    assert_eq!(inv.integrity_check().expect("integrity"), vec!["ok".to_string()]);
    // Each run's model moved to the shared models, once per distinct content, and reads back
    // as it was.
    for (run, model) in &models {
        assert_eq!(&inv.run_node(*run).expect("the run's model after the migration"), model);
    }
    let distinct: std::collections::BTreeSet<String> =
        models.iter().map(|(_, m)| serde_json::to_string(m).expect("encode")).collect();
    let shared = after.iter().find(|(t, _)| t == "node_models").map(|(_, n)| *n);
    assert_eq!(shared, Some(distinct.len() as i64), "one stored model per distinct model");

    let node = inv.node("vm").expect("query").expect("the H100 VM is recorded");
    // A VM without DMI: nothing identifies the machine, so it keeps its hostname as its name.
    assert_eq!((node.name.as_str(), node.hostname.as_deref(), node.machine.as_deref()), ("vm", Some("vm"), None));
    assert_eq!(inv.state("vm").expect("state"), LifecycleState::BurnedIn);
    let burnin = inv.latest_burnin(node.id).expect("query").expect("a burn-in is recorded");
    assert!(!burnin.incomplete, "every GPU test ran on the H100");
    let figure = |test: &str, name: &str| {
        burnin
            .results
            .iter()
            .filter(|r| r.test == test)
            .flat_map(|r| r.figures.iter())
            .find(|f| f.name == name)
            .map(|f| f.value)
            .unwrap_or_else(|| panic!("{test} {name} recorded"))
    };
    assert!(figure("gemm", "tflops") > 596.0, "bf16 GEMM above the H100 minimum");
    assert_eq!(figure("gemm", "mismatches"), 0.0);
    assert_eq!(figure("memtest", "errors"), 0.0);
    assert!(figure("host-link", "h2d") > 48.0);
    assert!(!burnin.samples.is_empty(), "telemetry samples recorded at 1 Hz");

    let report = kiln::report::build_report(&inv, Some("vm"), time::OffsetDateTime::now_utc()).expect("report builds");
    let table = kiln::report::render_table(&report);
    assert!(table.contains("1752724007035"), "the GPU's serial is in the report:\n{table}");
    assert!(table.contains("Burn-in (run 2): pass"), "{table}");
}
