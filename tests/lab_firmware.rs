//! `kiln rack firmware check` and `kiln bmc locate` against the lab's real peers: sshd in network
//! namespaces (a `kiln rack inspect` records each node's in-band versions) and one sushy-tools
//! BMC per node over HTTPS verified against the lab's CA. Needs root and `ip`; otherwise prints
//! SKIPPED (a failure with KILN_REQUIRE_PEERS=1). One lab, scenarios in order.

mod bmc_support;
mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use xtask::lab::{self, LabConfig};

const NODES: usize = 3;

fn skip_reason() -> Option<String> {
    if !lab::is_root() {
        return Some("not root: the lab needs network namespaces".into());
    }
    if !["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].iter().any(|p| Path::new(p).exists()) {
        return Some("no `ip` (iproute2)".into());
    }
    None
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kiln(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("KILN_LOG")
        .env_remove("KILN_CHECKS")
        .output()
        .expect("kiln runs")
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn firmware_check_and_locate_over_the_lab() {
    if let Some(why) = skip_reason() {
        return bmc_support::skip(&why);
    }
    let mut cfg = LabConfig::standard(&repo(), NODES);
    cfg.dir = repo().join("target/lab-firmware-test");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kf".into();
    cfg.subnet = 6;
    cfg.bmc_port_base = 8600;
    // Each node a machine of its own (its own serials), as the rack's serial checks expect.
    cfg.fixtures = (0..NODES)
        .map(|i| match i {
            0 => fixture_support::written(&cfg.dir, "hgx-b200"),
            _ => fixture_support::written(&cfg.dir, &format!("hgx-b200@{}", i + 1)),
        })
        .collect();
    let _teardown = lab::Teardown(cfg.dir.clone());
    let lab = lab::up(&cfg).expect("lab up");
    let manifest = lab.manifest().to_path_buf();
    let m = manifest.to_str().expect("utf-8 path");
    let db = cfg.dir.join("kiln.db");
    let _ = std::fs::remove_file(&db);
    let password = std::fs::read_to_string(cfg.dir.join("bmc-password")).expect("lab password");
    let password = password.trim();
    let names: Vec<String> = lab.state.nodes.iter().map(|n| n.name.clone()).collect();

    // Each node's inspection, recorded over SSH: the in-band half of the check.
    let inspect = kiln(&db, &["rack", "inspect", "--json", "--connect-timeout", "5", "--rack", m]);
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect));

    // Every BMC read (TLS verified against the lab CA), joined with the inspection, judged.
    let out = kiln(&db, &["rack", "firmware", "check", "--rack", m, "--recipe", "hgx-b200", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let nodes = doc["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), NODES);
    for n in nodes {
        assert!(n["bmc"].as_str().is_some_and(|b| b.starts_with("https://")), "{n:#}");
        assert!(n["inband"].as_str().is_some_and(|i| i.starts_with("run ")), "in-band from the inspection: {n:#}");
        assert!(!["unreachable", "not-checked"].contains(&n["status"].as_str().unwrap_or("")), "{n:#}");
        let entries = n["entries"].as_array().expect("entries");
        let vbios = entries.iter().filter(|e| e["component"] == "vbios" && e["reported"].is_string()).count();
        assert_eq!(vbios, 8, "every GPU's VBIOS: {n:#}");
        let bmc = entries.iter().find(|e| e["component"] == "bmc").expect("the BMC's own firmware");
        assert_eq!(bmc["source"], "redfish-property");
        assert!(n["run_id"].is_i64(), "recorded: {n:#}");
    }
    // The emulator's manager does not run the pinned BMC image: every node is out of compliance.
    assert_eq!(out.status.code(), Some(kiln::exit::CHECK_FAILED), "{}", text(&out));

    // The report draws the matrix over the trays and names the locate command of each failing
    // node (all of them here).
    let html = cfg.dir.join("rack.html");
    let report = kiln(&db, &["report", "--rack", m, "--format", "html", "--out", html.to_str().expect("utf-8")]);
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    let page = std::fs::read_to_string(&html).expect("report");
    assert!(page.contains("<h2>Firmware</h2>"), "the matrix is drawn");
    for name in &names {
        assert!(page.contains(&format!("kiln bmc locate on --rack {m} --node {name}")), "{name}");
    }

    // The locate LED of one tray, lit and read back from the emulator, then cleared.
    let first = &names[0];
    let on = kiln(&db, &["bmc", "locate", "on", "--rack", m, "--node", first, "--json"]);
    assert_eq!(on.status.code(), Some(0), "{}", text(&on));
    let v: Value = serde_json::from_slice(&on.stdout).expect("locate JSON");
    assert_eq!(
        (v["locate"]["property"].as_str(), v["locate"]["value"].as_str()),
        (Some("IndicatorLED"), Some("Blinking"))
    );
    let status = kiln(&db, &["bmc", "locate", "status", "--rack", m, "--node", first]);
    assert!(text(&status).contains("locate LED on"), "{}", text(&status));
    let off = kiln(&db, &["bmc", "locate", "off", "--rack", m, "--node", first]);
    assert_eq!(off.status.code(), Some(0), "{}", text(&off));
    let status = kiln(&db, &["bmc", "locate", "status", "--rack", m, "--node", first]);
    assert!(text(&status).contains("locate LED off"), "{}", text(&status));

    // The BMC password is in no output and not in the database.
    for out in [&out, &on, &off, &status] {
        assert!(!text(out).contains(password), "password leaked");
    }
    let bytes = std::fs::read(&db).expect("db");
    assert!(!bytes.windows(password.len()).any(|w| w == password.as_bytes()), "password in the database");
}
