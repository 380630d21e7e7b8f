//! `kiln burnin --root` on snapshot nodes built at test time from the healthy GB200 tray
//! (`gb200-nvl72-tray` of `kiln::hw::fixture`) with the fixture builder: burn-in judges the same
//! inspection validate judges, gates on the same fabric rule before any CUDA work, replays
//! recorded telemetry, and takes its thresholds from the platform file `--checks-dir` names.
//!
//! No GPU is needed: a replayed capture runs no kernel, so these pass the same on any machine.

mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::hw::fixture::{gb200_tray, Gb200Tray};
use kiln::model::{FabricState, GpuInventory};

/// The healthy tray written out, as `cargo xtask fixtures` writes it.
fn healthy_tray() -> PathBuf {
    fixture_support::shared("gb200-nvl72-tray")
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_CHECKS")
        .env_remove("KILN_DB")
        .output()
        .expect("kiln runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// The healthy tray with its NVML dump changed by `edit` and extra files added,
/// written under `dir`.
fn tray_with(dir: &Path, edit: impl FnOnce(&mut GpuInventory), extra: &[(&str, String)]) -> PathBuf {
    let mut tree = gb200_tray(&Gb200Tray::default());
    let mut inventory = tree.gpu_inventory().cloned().expect("the tray's NVML dump");
    edit(&mut inventory);
    tree.nvml(&inventory);
    for (path, text) in extra {
        tree.file(path, text);
    }
    let root = dir.join("tray");
    tree.write(&root).expect("write the tray");
    root
}

fn gpus_mut(inventory: &mut GpuInventory) -> &mut Vec<kiln::model::Gpu> {
    match inventory {
        GpuInventory::Inspected { gpus, .. } => gpus,
        GpuInventory::NotInspected { .. } => panic!("the healthy tray's GPUs are inspected"),
    }
}

/// GPU 2 of the tray says its fabric is not supported: on an NVL72 tray that
/// GPU is not in the rack's NVLink domain.
fn fabric_fault(dir: &Path) -> PathBuf {
    tray_with(dir, |inv| gpus_mut(inv)[2].fabric.as_mut().expect("fabric info").state = FabricState::NotSupported, &[])
}

fn findings<'a>(v: &'a serde_json::Value, prefix: &str) -> Vec<&'a serde_json::Value> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"].as_str().is_some_and(|c| c.starts_with(prefix)))
        .collect()
}

fn results(v: &serde_json::Value, gpu: u64) -> Vec<&serde_json::Value> {
    v["results"].as_array().expect("results").iter().filter(|r| r["gpu"]["index"] == gpu).collect()
}

#[test]
fn an_nvl72_fabric_fault_fails_burnin_as_it_fails_validate_before_any_cuda_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fabric_fault(dir.path());
    let root = root.to_str().expect("utf-8 path");

    let validate = kiln(&["validate", "--json", "--root", root]);
    let burnin = kiln(&["burnin", "--json", "--tests", "gemm,memtest", "--duration", "1s", "--root", root]);
    assert_eq!(validate.status.code(), Some(1), "{}", String::from_utf8_lossy(&validate.stderr));
    assert_eq!(burnin.status.code(), Some(1), "{}", String::from_utf8_lossy(&burnin.stderr));
    let (v, b) = (json(&validate), json(&burnin));
    assert_eq!((v["platform"].as_str(), b["platform"].as_str()), (Some("gb200-nvl72-tray"), Some("gb200-nvl72-tray")));

    // The same fabric findings, word for word: same check id, GPU, expected and actual.
    let from_validate = findings(&v, "fabric.");
    assert_eq!(findings(&b, "fabric."), from_validate);
    let failed: Vec<_> = from_validate.iter().filter(|f| f["outcome"] == "fail").collect();
    assert_eq!(failed.len(), 1, "{from_validate:#?}");
    assert_eq!(failed[0]["check"], "fabric.state");
    assert_eq!(failed[0]["component"]["gpu_index"], 2);
    assert_eq!(failed[0]["actual"], "not_supported");
    assert_eq!(b["verdict"], "fail");

    // GPU 2 got no CUDA work: every test of it was skipped at the gate, naming the rule.
    let gated = results(&b, 2);
    assert_eq!(gated.len(), 2);
    for r in gated {
        assert_eq!(r["status"], "skipped", "{r}");
        let reason = r["reason"].as_str().expect("reason");
        assert!(reason.starts_with("NVLink fabric not ready (fabric.state: GPU 2"), "{reason}");
    }
    // The other GPUs passed the gate; a replay runs no kernel on them either.
    for r in results(&b, 0) {
        assert_eq!(r["status"], "skipped");
        assert!(r["reason"].as_str().is_some_and(|s| s.starts_with("replayed from a capture")), "{r}");
    }
    assert_eq!(b["gpu_access"]["status"], "replayed");
    assert_eq!(b["gpu_access"]["gpus"].as_array().map(Vec::len), Some(4));
}

#[test]
fn the_healthy_tray_passes_the_gate_and_its_inspection_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let out = kiln(&[
        "burnin",
        "--json",
        "--tests",
        "gemm",
        "--duration",
        "1s",
        "--root",
        healthy_tray().to_str().expect("utf-8"),
        "--db",
        db.to_str().expect("utf-8"),
    ]);
    // Nothing failed, but no kernel ran: incomplete, never a pass.
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let b = json(&out);
    assert!(findings(&b, "fabric.").iter().all(|f| f["outcome"] == "pass"), "{b}");
    // Workers would be pinned from the model's NUMA data: GPUs 0-1 on node 0, 2-3 on node 1.
    let numa: Vec<_> =
        b["telemetry"].as_array().expect("telemetry").iter().map(|t| t["gpu"]["numa_node"].clone()).collect();
    assert_eq!(numa, [0, 0, 1, 1]);

    // The inventory holds the node burn-in judged: the replayed tray itself.
    let inv = kiln::inventory::Inventory::open(&db).expect("open the inventory");
    let row = inv.node("gb200-tray-04").expect("query").expect("the tray is recorded");
    let run = inv.latest_run_of_kind(row.id, kiln::lifecycle::RunKind::Burnin).expect("query").expect("burn-in run");
    let node = inv.run_node(run.id).expect("the run's node");
    let (tree, gpus) = kiln::hw::open(Some(&healthy_tray())).expect("open the tray");
    assert_eq!(node, kiln::hw::inspect(tree.as_ref(), gpus.as_ref()));
}

#[test]
fn a_replayed_tray_reports_the_collective_as_not_run_once_for_the_node() {
    let root = healthy_tray();
    let out = kiln(&["burnin", "--json", "--tests", "collective", "--root", root.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let b = json(&out);
    let results = b["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "one result for the node, none per GPU: {results:?}");
    assert_eq!(results[0]["test"], "collective");
    assert_eq!(results[0]["status"], "skipped");
    assert!(results[0]["reason"].as_str().is_some_and(|r| r.starts_with("replayed from a capture")), "{b}");
    assert_eq!(b["incomplete"], true);
}

#[test]
fn recorded_telemetry_replays_xids_and_throttling_that_validate_cannot_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    // GPU 0 hit a hardware power-brake slowdown; GPU 1 reported Xid 79 (fallen off the bus).
    let recording = serde_json::json!({
        "xid_watch": {"status": "watched"},
        "gpus": [
            {"index": 0, "samples": [
                {"at_unix_ms": 1000, "throttle_reasons": 4, "power_w": 1180.5},
                {"at_unix_ms": 2000, "throttle_reasons": 132, "power_w": 990.0}
            ]},
            {"index": 1, "samples": [{"at_unix_ms": 1000, "throttle_reasons": 0}],
             "xids": [{"at_unix_ms": 1500, "xid": 79}]}
        ]
    });
    let root = tray_with(dir.path(), |_| {}, &[("kiln/telemetry.json", recording.to_string())]);
    let root = root.to_str().expect("utf-8");
    assert_eq!(kiln(&["validate", "--root", root]).status.code(), Some(0), "validate sees no fault");
    let out = kiln(&["burnin", "--json", "--tests", "gemm", "--duration", "1s", "--root", root]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let b = json(&out);
    let failing = |check: &str| -> Vec<u64> {
        findings(&b, check)
            .iter()
            .filter(|f| f["outcome"] == "fail")
            .filter_map(|f| f["component"]["gpu_index"].as_u64())
            .collect()
    };
    assert_eq!(failing("burnin.telemetry.throttle"), [0]);
    assert_eq!(failing("burnin.telemetry.xid"), [1]);
    let xid = findings(&b, "burnin.telemetry.xid").into_iter().find(|f| f["outcome"] == "fail").expect("xid");
    assert!(xid["message"].as_str().is_some_and(|m| m.contains("Xid 79")), "{xid}");
    // GPUs without a recording: counters from the dump, Xids watched (the recording says so), clean.
    let gpu3 = &b["telemetry"].as_array().expect("telemetry")[3];
    assert_eq!(gpu3["before"], gpu3["after"]);
    assert_eq!(gpu3["xid_watch"]["status"], "watched");
}

#[test]
fn a_malformed_telemetry_recording_is_bad_input_naming_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root =
        tray_with(dir.path(), |_| {}, &[("kiln/telemetry.json", "{\"gpus\": [\n  {\"index\": \"zero\"}]}\n".into())]);
    let out = kiln(&["burnin", "--tests", "gemm", "--duration", "1s", "--root", root.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("malformed recorded telemetry") && err.contains("kiln/telemetry.json:2:"), "{err}");
}

/// The built-in specs copied into `dir/platforms`, each passed through `edit`.
fn checks_dir(dir: &Path, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let checks = dir.join("checks");
    std::fs::create_dir_all(checks.join("platforms")).expect("mkdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/platforms");
    for entry in std::fs::read_dir(&shipped).expect("list checks/platforms") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("file name").to_string();
        let text = std::fs::read_to_string(&path).expect("read spec");
        std::fs::write(checks.join("platforms").join(&name), edit(&name, text)).expect("write spec");
    }
    checks
}

#[test]
fn checks_dir_overrides_a_built_in_platform_for_validate_and_burnin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fabric_fault(dir.path());
    // A site whose trays are judged without the fabric rule and with its own GEMM floor.
    let checks = checks_dir(dir.path(), |name, text| {
        if name != "gb200-nvl72-tray.toml" {
            return text;
        }
        let text = text.replace("[fabric]\n", "[site_fabric_removed]\n");
        let text = text.replace("require_completed = true\nsame_clique = true\n", "");
        let text = text.replace("[site_fabric_removed]\n", "");
        text.replace("min = 1366.0", "min = 1000.0")
    });
    let (root, checks) = (root.to_str().expect("utf-8"), checks.to_str().expect("utf-8"));
    let validate = kiln(&["validate", "--json", "--root", root, "--checks-dir", checks]);
    let burnin =
        kiln(&["burnin", "--json", "--tests", "gemm", "--duration", "1s", "--root", root, "--checks-dir", checks]);
    let (v, b) = (json(&validate), json(&burnin));
    // The site's file, not the built-in one, judged both.
    let origin = format!("{checks}/platforms/gb200-nvl72-tray.toml");
    assert_eq!(v["platform_origin"].as_str(), Some(origin.as_str()), "{v}");
    assert!(b["platform_source"].as_str().is_some_and(|s| s.contains(&origin)), "{}", b["platform_source"]);
    assert!(findings(&v, "fabric.").is_empty() && findings(&b, "fabric.").is_empty());
    assert_eq!(validate.status.code(), Some(0), "{v}");
    // Burn-in found nothing failing; the replay ran no kernel, so it is incomplete.
    assert_eq!(burnin.status.code(), Some(7), "{b}");

    // The same site file with a malformed [burnin] section: both refuse it with file:line:field.
    let bad = checks_dir(&dir.path().join("bad"), |name, text| {
        if name == "gb200-nvl72-tray.toml" {
            text.replacen("outlier_fraction = 0.9", "outlier_fraction = \"most\"", 1)
        } else {
            text
        }
    });
    let bad = bad.to_str().expect("utf-8");
    let spec = std::fs::read_to_string(format!("{bad}/platforms/gb200-nvl72-tray.toml")).expect("read");
    let line = spec.lines().position(|l| l.contains("\"most\"")).expect("the bad line") + 1;
    let expected = format!("{bad}/platforms/gb200-nvl72-tray.toml:{line}:");
    for args in [
        vec!["validate", "--root", root, "--checks-dir", bad],
        vec!["burnin", "--tests", "gemm", "--duration", "1s", "--root", root, "--checks-dir", bad],
    ] {
        let out = kiln(&args);
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&expected) && err.contains("field `burnin.gemm.outlier_fraction`"), "{args:?}: {err}");
    }
}

#[test]
fn a_burn_in_of_some_gpus_is_gated_on_the_fabric_of_those_gpus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fabric_fault(dir.path());
    let root = root.to_str().expect("utf-8");
    let healthy = kiln(&["burnin", "--json", "--gpus", "0,1", "--tests", "gemm", "--duration", "1s", "--root", root]);
    assert_eq!(healthy.status.code(), Some(7), "GPU 2's fault is not theirs");
    let b = json(&healthy);
    assert!(findings(&b, "fabric.").iter().all(|f| f["outcome"] != "fail"), "{b}");
    let faulty = kiln(&["burnin", "--json", "--gpus", "2", "--tests", "gemm", "--duration", "1s", "--root", root]);
    assert_eq!(faulty.status.code(), Some(1));
    let b = json(&faulty);
    let failed: Vec<_> = findings(&b, "fabric.state").into_iter().filter(|f| f["outcome"] == "fail").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["component"]["gpu_index"], 2);
}
