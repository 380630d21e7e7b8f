//! Asking the inventory about the past, with the real binary and a database on disk: where a
//! GPU swapped between two trays has been, a node as of a time, a diff of two runs, the export.

mod fixture_support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn kiln(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env("KILN_DB", db).output().expect("run kiln")
}

fn json(db: &Path, args: &[&str]) -> Value {
    let out = kiln(db, args);
    assert_eq!(out.status.code(), Some(0), "kiln {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON document")
}

fn inspected(tree: &str) -> Value {
    let root = fixture_support::shared(tree);
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["inspect", "--json", "--root", root.to_str().expect("utf-8")])
        .output()
        .expect("inspect");
    serde_json::from_slice(&out.stdout).expect("node JSON")
}

/// Records `node` with `kiln validate --node FILE --db`.
fn record(db: &Path, dir: &Path, node: &Value) {
    let file = dir.join("node.json");
    std::fs::write(&file, serde_json::to_vec(node).expect("encode")).expect("write");
    let out = kiln(db, &["validate", "--node", file.to_str().expect("utf-8")]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
}

fn gpu_serial(node: &Value, index: usize) -> String {
    node["gpus"]["gpus"][index]["serial"].as_str().expect("GPU serial").to_string()
}

#[test]
fn a_gpu_swapped_between_two_trays_is_found_in_both_in_order_with_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let mut tray_a = inspected("hgx-b200");
    let mut tray_b = inspected("h100-sxm");
    let moved = gpu_serial(&tray_a, 2);
    let other = gpu_serial(&tray_b, 5);
    record(&db, dir.path(), &tray_a);
    record(&db, dir.path(), &tray_b);
    record(&db, dir.path(), &tray_a);
    // The technician swaps tray A's GPU 2 with tray B's GPU 5.
    tray_a["gpus"]["gpus"][2]["serial"] = other.clone().into();
    tray_b["gpus"]["gpus"][5]["serial"] = moved.clone().into();
    record(&db, dir.path(), &tray_a);
    record(&db, dir.path(), &tray_b);

    let doc = json(&db, &["inventory", "where", &moved, "--json"]);
    assert_eq!((doc["kind"].as_str(), doc["schema_version"].as_u64()), (Some("kiln.part-history"), Some(1)));
    let stays = doc["stays"].as_array().expect("stays");
    let seen: Vec<(&str, &str, u64, bool)> = stays
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap_or_default(),
                s["label"].as_str().unwrap_or_default(),
                s["runs"].as_u64().unwrap_or_default(),
                s["current"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("hgx-b200-01", "gpu2 slot 3 0000:52:00.0", 2, false), ("hgx-h100-01", "gpu5 slot 6 0000:c3:00.0", 1, true)],
        "{doc:#}"
    );
    let (first, second) = (&stays[0], &stays[1]);
    let t = |v: &Value, k: &str| v[k].as_str().expect("a time").to_string();
    assert!(t(first, "from") < t(first, "to"), "two runs saw it in tray A: {first:#}");
    assert!(t(first, "to") < t(first, "gone_by"), "gone by tray A's next run: {first:#}");
    assert!(t(first, "gone_by") <= t(second, "from"), "then in tray B: {doc:#}");
    assert!(second["gone_by"].is_null());

    // The text form says the same, one line per stay, oldest first.
    let out = kiln(&db, &["inventory", "where", &moved]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(&format!("part {moved} (gpu, NVIDIA B200): 2 stay(s)")), "{text}");
    assert!(lines[2].contains("hgx-b200-01") && lines[2].contains(&format!("gone by {}", t(first, "gone_by"))));
    assert!(lines[3].contains("hgx-h100-01") && lines[3].ends_with("still there"), "{text}");

    // As of a time between the runs, tray A still held the GPU; after, the other one.
    let before = t(first, "to");
    let report = json(&db, &["report", "--node", "hgx-b200-01", "--at", &before, "--format", "json"]);
    assert_eq!(report["as_of"].as_str(), Some(before.as_str()));
    let serials = |r: &Value| -> Vec<String> {
        r["nodes"][0]["components"]
            .as_array()
            .expect("components")
            .iter()
            .filter_map(|c| c["serial"].as_str().map(str::to_string))
            .collect()
    };
    assert!(serials(&report).contains(&moved) && !serials(&report).contains(&other));
    let now = json(&db, &["report", "--node", "hgx-b200-01", "--format", "json"]);
    assert!(serials(&now).contains(&other) && !serials(&now).contains(&moved));
    let early = kiln(&db, &["report", "--node", "hgx-h100-01", "--at", "2001-01-01"]);
    assert_eq!(early.status.code(), Some(kiln::exit::USAGE));
    assert!(String::from_utf8_lossy(&early.stderr).contains("first recorded later"));

    // The diff of tray A's first and last run is that one swap.
    let runs = json(&db, &["node", "history", "hgx-b200-01", "--json"]);
    let run_ids: Vec<i64> =
        runs["events"].as_array().expect("events").iter().filter_map(|e| e["run_id"].as_i64()).collect();
    let first_run = *run_ids.first().expect("a run");
    let report_now = &now["nodes"][0]["last_run"]["id"];
    let last_run = report_now.as_i64().expect("last run id");
    let diff = json(
        &db,
        &["inventory", "diff", "--node", "hgx-b200-01", &first_run.to_string(), &last_run.to_string(), "--json"],
    );
    assert_eq!(diff["kind"], "kiln.inventory-diff");
    let changes = diff["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{diff:#}");
    assert_eq!(changes[0]["label"], "gpu2 slot 3 0000:52:00.0");
    assert_eq!((changes[0]["from"].as_str(), changes[0]["to"].as_str()), (Some(moved.as_str()), Some(other.as_str())));

    // The export holds both trays and every part, in JSON and CSV.
    let export = json(&db, &["inventory", "export", "--format", "json"]);
    assert_eq!(export["kind"], "kiln.inventory-export");
    let nodes = export["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    let b = nodes.iter().find(|n| n["name"] == "hgx-h100-01").expect("tray B");
    assert_eq!(b["machine"], "uuid:6e1f0c2a-3b4d-4e5f-8a9b-1654223000456");
    assert!(b["parts"].as_array().expect("parts").iter().any(|p| p["serial"] == moved.as_str()));
    let csv = kiln(&db, &["inventory", "export", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("rack,node,hostname,machine,node_serial,state,run_id,recorded_at,kind,place,"), "{csv}");
    let row = csv.lines().find(|l| l.contains(&moved)).expect("the moved GPU's row");
    assert!(row.contains(",hgx-h100-01,") && row.contains(",gpu5 slot 6 0000:c3:00.0,"), "{row}");
}

#[test]
fn bad_questions_are_usage_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    record(&db, dir.path(), &inspected("hgx-b200"));

    let out = kiln(&db, &["report", "--at", "last tuesday"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE), "{stderr}");
    assert!(stderr.contains("--at \"last tuesday\": not a time kiln reads"), "{stderr}");
    assert!(stderr.contains("2025-03-01T08:00:00Z") && stderr.contains("@1740816000"), "names the forms: {stderr}");

    let out = kiln(&db, &["inventory", "where", "NO-SUCH-SERIAL"]);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no part with that serial was ever recorded"));

    let out = kiln(&db, &["inventory", "diff", "--node", "hgx-b200-01", "1", "99"]);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run 99: no such run in the inventory"));
}

#[test]
fn one_serial_in_two_places_at_once_fails_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let tray_a = inspected("hgx-b200");
    let mut tray_b = inspected("h100-sxm");
    let shared = gpu_serial(&tray_a, 2);
    record(&db, dir.path(), &tray_a);
    tray_b["gpus"]["gpus"][5]["serial"] = shared.clone().into();
    let file = dir.path().join("b.json");
    std::fs::write(&file, serde_json::to_vec(&tray_b).expect("encode")).expect("write");
    let out = kiln(&db, &["validate", "--node", file.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(kiln::exit::CHECK_FAILED), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("report");
    let dup: Vec<&Value> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "inventory.serial_unique")
        .collect();
    assert_eq!(dup.len(), 1, "{doc:#}");
    assert_eq!(dup[0]["outcome"], "fail");
    assert_eq!(dup[0]["component"]["label"], "gpu5 slot 6 0000:c3:00.0");
    let message = dup[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "gpu5 slot 6 0000:c3:00.0: serial {shared} is also recorded in hgx-b200-01 as gpu2 slot 3 0000:52:00.0 (run 1, "
        )),
        "{message}"
    );

    // A machine re-inspected finds no conflict with its own earlier runs.
    let out = kiln(&db, &["validate", "--node", dir.path().join("node.json").to_str().expect("utf-8"), "--json"]);
    let again: Value = serde_json::from_slice(&out.stdout).expect("report");
    let own: Vec<&Value> = again["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| {
            f["check"] == "inventory.serial_unique"
                && !f["message"].as_str().unwrap_or_default().contains("hgx-h100-01")
        })
        .collect();
    assert!(own.is_empty(), "{own:#?}");
}
