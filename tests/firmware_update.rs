//! `kiln rack firmware update` end to end: the built binary updating real peers. The
//! sushy-tools emulator (libvirt test driver) takes a real `SimpleUpdate` of its BIOS from
//! kiln's package server; the recorded GH200 BMC server takes multipart pushes and runs their
//! Tasks like bmcweb. Every change is read back from the peer, every step from the inventory.

mod bmc_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use bmc_support::rack_cli::{json_of, kiln, manifest, node, s, text};
use bmc_support::server::{RecordedServer, TaskScript, UpdateBehaviour};
use bmc_support::sushy::{self, Sushy};
use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PW: &str = "fw-update-secret-31";
const FW_BMC: &str = "/redfish/v1/UpdateService/FirmwareInventory/FW_BMC_0";

/// A package of `len` bytes in `dir` and its SHA-256.
fn package(dir: &Path, name: &str, len: usize) -> String {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join(name), &bytes).expect("write package");
    hex::encode(Sha256::digest(&bytes))
}

/// `DIR/checks/firmware/NAME.toml` with `text`; returns `DIR/checks`.
fn checks_dir(dir: &Path, name: &str, text: &str) -> PathBuf {
    let checks = dir.join("checks");
    std::fs::create_dir_all(checks.join("firmware")).expect("mkdir");
    std::fs::write(checks.join("firmware").join(format!("{name}.toml")), text).expect("write recipe");
    checks
}

/// The causes of a node's lifecycle events, oldest first.
fn history(db: &Path, node: &str) -> Vec<String> {
    Inventory::open_existing(db).expect("db").history(node).expect("history").into_iter().map(|e| e.cause).collect()
}

#[test]
fn a_real_simple_update_of_the_emulated_bios_with_a_dry_run_first_and_a_rerun_that_sends_nothing() {
    let Some(emulator) = Sushy::start_libvirt_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sha = package(d, "bios-1.1.0.bin", 1 << 20);
    let checks = checks_dir(
        d,
        "lab-bios",
        &format!(
            r#"name = "lab-bios"
description = "the emulated node's BIOS"
tray = "node"
source = "sushy-tools 2.2 raises BiosVersion 1.0.0 to 1.1.0"

[[components]]
id = "bios"
name = "system BIOS"
version = "1.1.0"
source = "what the emulator's SimpleUpdate installs"
activation = "host-reset"
package = "bios"
match = {{ redfish_property = "BiosVersion" }}

[[packages]]
id = "bios"
file = "bios-1.1.0.bin"
sha256 = "{sha}"
method = "simple-update"
task_timeout_s = 30
"#
        ),
    );
    let rack = manifest(d, None, &[("lab-01", "", Some(&emulator.url))]);
    let system = emulator.system_path();
    assert_eq!(emulator.get(&system)["BiosVersion"], "1.0.0");
    let update = |extra: &[&str]| {
        let mut args = vec!["rack", "firmware", "update", "--rack", s(&rack), "--recipe", "lab-bios"];
        args.extend(["--checks-dir", s(&checks), "--packages", s(d), "--json"]);
        args.extend(extra);
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(&args)
            .current_dir(d)
            .env("KILN_DB", d.join("kiln.db"))
            .env("RACK_PW", sushy::PASSWORD)
            .env_remove("KILN_CHECKS")
            .output()
            .expect("kiln runs")
    };
    let posts = || emulator.requests().into_iter().filter(|(m, _, _)| m == "POST").count();

    // The dry run prints the plan and changes nothing: no POST, no inventory.
    let dry = update(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{:?}", text(&dry));
    let doc = json_of(&dry);
    assert_eq!((doc["kind"].as_str(), doc["dry_run"].as_bool()), (Some("kiln.rack-firmware-update"), Some(true)));
    let n = node(&doc, "lab-01");
    assert_eq!((n["before"].as_str(), n["result"].as_str()), (Some("non-compliant"), Some("planned")));
    assert_eq!(n["plan"]["updates"][0]["method"], "simple-update");
    assert_eq!(n["plan"]["updates"][0]["targets"], json!([system.clone()]));
    assert_eq!(n["plan"]["activation"], "host-reset");
    assert_eq!(posts(), 0, "a dry run sends nothing");
    assert!(!d.join("kiln.db").exists(), "a dry run records nothing");
    assert_eq!(emulator.get(&system)["BiosVersion"], "1.0.0");

    // The update, for real.
    let out = update(&["--listen", "127.0.0.1:0", "--task-poll", "100ms"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let doc = json_of(&out);
    let n = node(&doc, "lab-01");
    assert_eq!((n["result"].as_str(), n["after"].as_str()), (Some("updated"), Some("compliant")), "{n:#}");
    assert_eq!(emulator.get(&system)["BiosVersion"], "1.1.0", "the emulator itself says so");
    let asked: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|(m, _, _)| m == "POST")
        .map(|(_, p, status)| format!("{p} {status}"))
        .collect();
    assert_eq!(
        asked,
        [
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate 204".to_string(),
            format!("{system}/Actions/ComputerSystem.Reset 204"),
        ]
    );
    // Every step is a lifecycle event, after the plan was put on record.
    let db = d.join("kiln.db");
    let causes = history(&db, "lab-01");
    let at = |prefix: &str| {
        causes.iter().position(|c| c.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {causes:#?}"))
    };
    let planned = at("firmware update planned (lab-bios): bios (simple-update) for bios, then host-reset");
    let order = [
        at("firmware bios: discover started"),
        at("firmware bios: stage done"),
        at("firmware bios: simple-update done"),
        at("firmware bios: task done"),
        at("firmware bios: activate done: host reset"),
        at("firmware changed: firmware "),
    ];
    assert!(causes[order[5]].ends_with(" BiosVersion: firmware 1.0.0 -> 1.1.0"), "{causes:#?}");
    assert!(planned < order[0] && order.windows(2).all(|w| w[0] < w[1]), "{causes:#?}");
    // The re-check is recorded as a firmware run that passes.
    let inv = Inventory::open_existing(&db).expect("db");
    let row = inv.node("lab-01").expect("query").expect("node");
    let run = inv.latest_firmware_check(row.id).expect("query").expect("a re-check");
    assert_eq!(Some(run.id.0), n["after_run_id"].as_i64());
    assert_eq!(run.verdict, Some(kiln::checks::Verdict::Pass));

    // A rerun finds nothing out of date and sends nothing.
    let before = posts();
    let again = update(&["--listen", "127.0.0.1:0"]);
    assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
    assert_eq!(node(&json_of(&again), "lab-01")["result"], "up-to-date");
    assert_eq!(posts(), before);
    let bytes = std::fs::read(&db).expect("db");
    assert!(!bytes.windows(sushy::PASSWORD.len()).any(|w| w == sushy::PASSWORD.as_bytes()), "password in the db");
}

fn push_recipe(d: &Path, sha: &str) -> PathBuf {
    checks_dir(
        d,
        "site-gh200",
        &format!(
            r#"name = "site-gh200"
description = "a site's GH200 BMC pin"
tray = "node"
source = "qualified by the site"

[[components]]
id = "bmc"
name = "BMC firmware"
version = "GH200-24.05-2"
prefix = "GH200-"
source = "qualified"
package = "bmc_pkg"
match = {{ redfish = ["FW_BMC_0"] }}

[[packages]]
id = "bmc_pkg"
file = "nvfw_GH200_bmc.fwpkg"
sha256 = "{sha}"
apply_time = "Immediate"
task_timeout_s = 20
"#
        ),
    )
}

fn stale_gh200() -> RecordedServer {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let mut member = server.resource(FW_BMC).expect("member");
    member["Version"] = json!("GH200-24.01-1");
    server.set(FW_BMC, member);
    server
}

#[test]
fn a_failed_task_fails_that_node_the_rest_go_on_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sha = package(d, "nvfw_GH200_bmc.fwpkg", 300_000);
    let checks = push_recipe(d, &sha);
    let bad = stale_gh200();
    bad.on_update(UpdateBehaviour {
        script: TaskScript::Fails { polls: 2, message: "ERoT rejected the image signature".into() },
        sets: Vec::new(),
    });
    let good = stale_gh200();
    good.on_update(UpdateBehaviour {
        script: TaskScript::Completes { polls: 3 },
        sets: vec![(FW_BMC.into(), "GH200-24.05-2".into())],
    });
    let rack = manifest(d, None, &[("gh-bad", "", Some(&bad.url())), ("gh-good", "", Some(&good.url()))]);
    let args = [
        "rack",
        "firmware",
        "update",
        "--rack",
        s(&rack),
        "--recipe",
        "site-gh200",
        "--checks-dir",
        s(&checks),
        "--packages",
        s(d),
        "--task-poll",
        "100ms",
        "--json",
    ];
    let out = kiln(d, &args, PW);
    assert_eq!(out.status.code(), Some(kiln::exit::CHECK_FAILED), "{:?}", text(&out));
    let doc = json_of(&out);
    let failed = node(&doc, "gh-bad");
    assert_eq!(failed["result"], "failed");
    let reason = failed["reason"].as_str().expect("reason");
    assert!(reason.starts_with("firmware: bmc: task: bmc http://127.0.0.1:"), "{reason}");
    assert!(reason.contains("(gh-bad)") && reason.contains("ERoT rejected the image signature"), "{reason}");
    let ok = node(&doc, "gh-good");
    assert_eq!((ok["result"].as_str(), ok["after"].as_str()), (Some("updated"), Some("compliant")), "{ok:#}");
    // What each BMC received: one push each, the package byte for byte.
    for server in [&bad, &good] {
        let uploads = server.uploads();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].file.len(), 300_000);
        assert_eq!(uploads[0].parameters["Targets"], json!([FW_BMC]));
    }
    let db = d.join("kiln.db");
    let inv = Inventory::open_existing(&db).expect("db");
    assert_eq!(inv.state("gh-bad").expect("state"), LifecycleState::Failed { reason: reason.to_string() });
    drop(inv);
    assert!(history(&db, "gh-bad").iter().any(|c| c.starts_with("firmware bmc: push done")), "the push is on record");

    // The BMC fixed, the rerun updates only what is still out of date, and the node kiln failed
    // for its firmware goes back to be qualified again.
    bad.on_update(UpdateBehaviour {
        script: TaskScript::Completes { polls: 2 },
        sets: vec![(FW_BMC.into(), "GH200-24.05-2".into())],
    });
    let again = kiln(d, &args, PW);
    assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
    let doc = json_of(&again);
    assert_eq!(node(&doc, "gh-bad")["result"], "updated");
    assert_eq!(node(&doc, "gh-good")["result"], "up-to-date");
    assert_eq!(good.uploads().len(), 1, "nothing sent again to the node already done");
    assert_eq!(bad.uploads().len(), 2);
    let inv = Inventory::open_existing(&db).expect("db");
    assert_eq!(inv.state("gh-bad").expect("state"), LifecycleState::Enrolled);
    for out in [&out, &again] {
        let (o, e) = text(out);
        assert!(!o.contains(PW) && !e.contains(PW), "password leaked");
    }
}

#[test]
fn a_package_whose_checksum_differs_is_refused_before_any_bmc_is_sent_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    package(d, "nvfw_GH200_bmc.fwpkg", 1000);
    let checks = push_recipe(d, &"ab".repeat(32));
    let server = stale_gh200();
    let rack = manifest(d, None, &[("gh-01", "", Some(&server.url()))]);
    let out = kiln(
        d,
        &[
            "rack",
            "firmware",
            "update",
            "--rack",
            s(&rack),
            "--recipe",
            "site-gh200",
            "--checks-dir",
            s(&checks),
            "--packages",
            s(d),
        ],
        PW,
    );
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{:?}", text(&out));
    let (_, err) = text(&out);
    assert!(err.contains("package bmc_pkg:") && err.contains("the recipe pins abab"), "{err}");
    assert!(server.uploads().is_empty());
    assert!(server.requests().iter().all(|r| r.method == "GET"), "only reads before the refusal");
    let inv = Inventory::open_existing(d.join("kiln.db")).expect("db");
    assert!(
        inv.history("gh-01").map(|h| h.iter().all(|e| !e.cause.contains("planned"))).unwrap_or(true),
        "no plan recorded"
    );
}

#[test]
fn a_package_for_one_node_of_the_rack_at_a_time_is_never_on_two_bmcs_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sha = package(d, "nvfw_GH200_bmc.fwpkg", 50_000);
    let checks = push_recipe(d, &sha);
    let recipe = checks.join("firmware/site-gh200.toml");
    let text = std::fs::read_to_string(&recipe).expect("recipe");
    std::fs::write(&recipe, text.replace("task_timeout_s = 20", "task_timeout_s = 2\none_at_a_time = \"rack\""))
        .expect("rewrite recipe");
    // Tasks that never end: each node holds the rack's turn until its deadline.
    let servers = [stale_gh200(), stale_gh200()];
    for s in &servers {
        s.on_update(UpdateBehaviour { script: TaskScript::Never, sets: Vec::new() });
    }
    let rack = manifest(d, None, &[("gh-a", "", Some(&servers[0].url())), ("gh-b", "", Some(&servers[1].url()))]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "firmware", "update", "--rack", s(&rack), "--recipe", "site-gh200", "--checks-dir", s(&checks)])
        .args(["--packages", s(d), "--task-poll", "100ms", "--parallel", "2", "--json"])
        .current_dir(d)
        .env("KILN_DB", d.join("kiln.db"))
        .env("RACK_PW", PW)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kiln starts");
    // While one BMC's Task is being followed, the other has been sent nothing.
    let started = std::time::Instant::now();
    let mut seen_first = false;
    while started.elapsed() < std::time::Duration::from_secs(20) {
        let polls: Vec<usize> = servers.iter().map(|s| s.task_polls().iter().sum()).collect();
        let uploads: Vec<usize> = servers.iter().map(|s| s.uploads().len()).collect();
        if let Some(busy) = polls.iter().position(|p| *p >= 3) {
            if polls[1 - busy] == 0 {
                assert_eq!(uploads[1 - busy], 0, "the second BMC got its package while the first was flashing");
                seen_first = true;
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("kiln ends");
    assert!(seen_first, "saw one BMC's Task followed alone");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for name in ["gh-a", "gh-b"] {
        let n = node(&doc, name);
        assert_eq!(n["result"], "failed", "{n:#}");
        assert!(n["reason"].as_str().expect("reason").contains("did not finish within 2s"), "{n:#}");
    }
    assert!(servers.iter().all(|s| s.uploads().len() == 1), "each got its package, in turn");
}
