//! `kiln validate --bom`: a node judged against its bill of materials with the real binary,
//! from TOML and from CSV; bad BOMs are bad input naming file, line and field.

mod fixture_support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env_remove("KILN_DB").output().expect("run kiln")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn inspected() -> Value {
    let root = fixture_support::shared("hgx-b200");
    let out = kiln(&["inspect", "--json", "--root", s(&root)]);
    serde_json::from_slice(&out.stdout).expect("node JSON")
}

/// The asset record of the healthy tray: every GPU by NVML index, every DIMM by slot.
fn parts(node: &Value) -> Vec<(String, String, String)> {
    let mut parts = Vec::new();
    for g in node["gpus"]["gpus"].as_array().expect("gpus") {
        let place = format!("gpu{}", g["index"]);
        parts.push(("gpu".to_string(), place, g["serial"].as_str().expect("serial").to_string()));
    }
    for d in node["memory"]["dimms"].as_array().expect("dimms") {
        parts.push((
            "dimm".into(),
            d["locator"].as_str().expect("slot").into(),
            d["serial"].as_str().expect("serial").into(),
        ));
    }
    parts
}

fn toml_bom(node: &Value) -> String {
    let mut text = format!(
        "[[platform]]\nname = \"hgx-b200\"\ncpu_sockets = 2\ngpu_count = 8\n\n[[node]]\nname = \"hgx-b200-01\"\nsystem_serial = {}\nparts = [\n",
        node["dmi"]["product_serial"]
    );
    for (kind, place, serial) in parts(node) {
        text.push_str(&format!("  {{ kind = \"{kind}\", place = \"{place}\", serial = \"{serial}\" }},\n"));
    }
    text + "]\n"
}

fn csv_bom(node: &Value) -> String {
    let mut text = format!(
        "asset_tag,node,kind,place,serial\nA-1,hgx-b200-01,system,,{}\n",
        node["dmi"]["product_serial"].as_str().unwrap_or_default()
    );
    for (kind, place, serial) in parts(node) {
        text.push_str(&format!("A-2,hgx-b200-01,{kind},{place},{serial}\n"));
    }
    text
}

fn validate(dir: &Path, node: &Value, bom: &Path) -> (i32, Value) {
    let file = dir.join("node.json");
    std::fs::write(&file, serde_json::to_vec(node).expect("encode")).expect("write");
    let out = kiln(&["validate", "--node", s(&file), "--bom", s(bom), "--json"]);
    let doc =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), doc)
}

fn failing(doc: &Value) -> Vec<(String, String)> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["outcome"] != "pass" && f["check"].as_str().is_some_and(|c| c.starts_with("bom.")))
        .map(|f| {
            (
                f["check"].as_str().unwrap_or_default().to_string(),
                f["component"]["label"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_wrong_gpu_serial_and_a_missing_dimm_fail_exactly_those_two_with_their_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let healthy = inspected();
    let toml = dir.path().join("bom.toml");
    std::fs::write(&toml, toml_bom(&healthy)).expect("write");
    let csv = dir.path().join("bom.csv");
    std::fs::write(&csv, csv_bom(&healthy)).expect("write");

    for bom in [&toml, &csv] {
        let (code, doc) = validate(dir.path(), &healthy, bom);
        assert_eq!((code, failing(&doc)), (0, vec![]), "the tray as recorded passes its BOM ({})", bom.display());
        let passed =
            doc["findings"].as_array().expect("findings").iter().filter(|f| f["check"] == "bom.serial").count();
        assert_eq!(passed, 40, "8 GPUs and 32 DIMMs checked by serial");
    }

    // GPU 2 is another one now, and the DIMM in CPU0_DIMM_B1 is gone.
    let mut changed = healthy.clone();
    changed["gpus"]["gpus"][2]["serial"] = "1650000000999".into();
    let dimms = changed["memory"]["dimms"].as_array_mut().expect("dimms");
    let slot = dimms.iter_mut().find(|d| d["locator"] == "CPU0_DIMM_B1").expect("slot B1");
    *slot = serde_json::json!({ "locator": "CPU0_DIMM_B1", "size_bytes": 0 });
    for bom in [&toml, &csv] {
        let (code, doc) = validate(dir.path(), &changed, bom);
        assert_eq!(code, kiln::exit::CHECK_FAILED);
        assert_eq!(
            failing(&doc),
            [
                ("bom.serial".to_string(), "gpu2 slot 3 0000:52:00.0".to_string()),
                ("bom.missing".to_string(), "dimm slot CPU0_DIMM_B1".to_string())
            ],
            "{}",
            bom.display()
        );
        let wrong = doc["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["check"] == "bom.serial" && f["outcome"] == "fail")
            .expect("serial finding");
        assert_eq!(wrong["actual"], "1650000000999");
        assert!(wrong["action"].as_str().unwrap_or_default().contains("put serial"), "{wrong:#}");
    }
}

#[test]
fn a_bad_bom_is_bad_input_naming_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = dir.path().join("node.json");
    std::fs::write(&node, serde_json::to_vec(&inspected()).expect("encode")).expect("write");
    let bom = dir.path().join("site.toml");
    std::fs::write(
        &bom,
        "[[node]]\nname = \"hgx-b200-01\"\nparts = [\n  { kind = \"gpu\", place = \"gpu0\", serial = \"S1\" },\n  { kind = \"gpu\", place = \"gpu1\", serial = \"S1\" },\n]\n",
    )
    .expect("write");
    let out = kiln(&["validate", "--node", s(&node), "--bom", s(&bom)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:5:", bom.display()))
            && stderr.contains("field `node[0].parts[1].serial`: serial S1 is listed twice"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing judged");

    let csv = dir.path().join("site.csv");
    std::fs::write(&csv, "node,kind,place,serial\nhgx-b200-01,gpu,gpu0,\n").expect("write");
    let out = kiln(&["validate", "--node", s(&node), "--bom", s(&csv)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{stderr}");
    assert!(stderr.contains(&format!("{}:2:1: field `serial`: an empty serial", csv.display())), "{stderr}");
}
