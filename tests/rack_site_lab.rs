//! Many racks at once against the lab's real peers: five sshd nodes in network namespaces as a
//! site of two racks (each rack its own manifest and known_hosts), `kiln rack validate --site`
//! through the binary, recorded in one inventory. Needs root and `ip`; otherwise prints SKIPPED
//! (a failure with KILN_REQUIRE_PEERS=1).

mod bmc_support;
mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;
use serde_json::Value;
use xtask::lab::{self, LabConfig};

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

/// `kiln rack validate --json --site SITE ...`: (exit code, the document).
fn validate(site: &Path, db: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "validate", "--json", "--connect-timeout", "2", "--timeout", "60", "--site"])
        .arg(site)
        .arg("--db")
        .arg(db)
        .args(extra)
        .env_remove("KILN_RACK")
        .output()
        .expect("run kiln rack validate");
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kiln rack validate --site: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), doc)
}

fn rack<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["racks"].as_array().and_then(|a| a.iter().find(|r| r["rack"] == id)).expect("rack in the document")
}

fn status(doc: &Value, rack_id: &str, node: &str) -> String {
    let nodes = rack(doc, rack_id)["nodes"].as_array().cloned().unwrap_or_default();
    let n = nodes.iter().find(|n| n["node"] == node).expect("node in its rack");
    n["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn two_racks_of_lab_nodes_validate_at_once_each_recorded_and_judged_on_its_own() {
    if let Some(why) = skip_reason() {
        return bmc_support::skip(&why);
    }
    // r01: node01-03, healthy machines of their own; r02: node04 healthy, node05 an NVLink down.
    let mut cfg = LabConfig::standard(&repo(), 5);
    cfg.dir = repo().join("target/lab-site-test");
    cfg.manifest = cfg.dir.join("lab.toml");
    cfg.prefix = "kq".into();
    cfg.subnet = 9;
    cfg.bmc = false;
    cfg.fixtures = (1..=5)
        .map(|i| match i {
            5 => fixture_support::written(&cfg.dir, "hgx-b200-nvlink-down@5"),
            _ => fixture_support::written(&cfg.dir, &format!("hgx-b200@{i}")),
        })
        .collect();
    let _teardown = lab::Teardown(cfg.dir.clone());
    let lab = lab::up(&cfg).expect("lab up");
    // The kiln under test on every node, hard-linked: nothing to push, nothing copied.
    lab::preinstall(&lab.state, Path::new(env!("CARGO_BIN_EXE_kiln"))).expect("preinstall");
    let site = lab::write_site(&lab.state, 3, false, &cfg.dir.join("site")).expect("site manifest");
    trust_the_site_rack_by_rack(&site);
    let db = cfg.dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let (code, doc) = validate(&site, &db, &["--parallel", "2", "--per-rack", "1"]);
    assert_eq!(doc["kind"], "kiln.site");
    assert_eq!(code, 1, "node05 fails: {doc:#}");
    let codes: Vec<i64> =
        doc["racks"].as_array().expect("racks").iter().filter_map(|r| r["exit_code"].as_i64()).collect();
    assert_eq!(codes, [0, 1], "{doc:#}");
    assert!(doc["peak_sessions"].as_u64().is_some_and(|p| (1..=2).contains(&p)), "{doc:#}");
    for n in ["node01", "node02", "node03"] {
        assert_eq!(status(&doc, "kq-r01", n), "pass", "{doc:#}");
    }
    assert_eq!(status(&doc, "kq-r02", "node04"), "pass");
    assert_eq!(status(&doc, "kq-r02", "node05"), "fail");
    let inv = Inventory::open_existing(&db).expect("inventory");
    for (id, nodes) in [("kq-r01", 3), ("kq-r02", 2)] {
        let runs = inv.rack_runs(id).expect("rack runs");
        assert_eq!(runs.len(), 1, "{id}");
        assert_eq!(runs[0].node_status.len(), nodes, "{id}");
        assert_eq!(Some(runs[0].id.0), rack(&doc, id)["rack_run_id"].as_i64(), "{id}");
    }
    assert_eq!(inv.state("node02").expect("state"), LifecycleState::Validated);
    assert_eq!(inv.state("node05").expect("state").name(), "failed");
    drop(inv);

    // node02's cable pulled: its rack is a peer error, the worst of the site stays node05's failure.
    lab.set_link("node02", false).expect("unplug");
    let (code, doc) = validate(&site, &db, &["--force", "--parallel", "4", "--per-rack", "2"]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(rack(&doc, "kq-r01")["exit_code"], 6, "{doc:#}");
    assert_eq!(status(&doc, "kq-r01", "node02"), "peer_error");
    // Only r01's nodes named: r02 is not run, and the site's code is r01's.
    let (code, doc) = validate(&site, &db, &["--nodes", "node01,node02"]);
    assert_eq!(code, 6, "{doc:#}");
    assert_eq!(doc["racks"].as_array().map(Vec::len), Some(1), "{doc:#}");
    lab.set_link("node02", true).expect("plug");
}

/// `kiln rack trust --site`: every rack's nodes, each rack's keys into its own known-hosts file
/// (here fresh ones, beside copies of the lab's rack manifests), named `RACK/NODE`; a second run
/// finds them all trusted.
fn trust_the_site_rack_by_rack(site: &Path) {
    let dir = site.parent().expect("site dir");
    let fresh = dir.join("trust");
    std::fs::create_dir_all(&fresh).expect("mkdir");
    let mut racks = String::from("[site]\nid = \"lab-trust\"\n");
    for r in ["r01", "r02"] {
        let text = std::fs::read_to_string(dir.join(format!("{r}.toml"))).expect("rack manifest");
        let text: String = text
            .lines()
            .map(|l| if l.starts_with("known_hosts") { format!("known_hosts = \"{r}.known_hosts\"") } else { l.into() })
            .map(|l| l.replace("ssh_key = \"", "ssh_key = \"../"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(fresh.join(format!("{r}.toml")), text).expect("write");
        racks.push_str(&format!("\n[[racks]]\nmanifest = \"{r}.toml\"\n"));
    }
    let site = fresh.join("site.toml");
    std::fs::write(&site, racks).expect("write site");
    let trust = || {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["rack", "trust", "--site"])
            .arg(&site)
            .env_remove("KILN_RACK")
            .output()
            .expect("rack trust");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = trust();
    assert_eq!(code, Some(0), "{text}");
    for n in ["kq-r01/node01", "kq-r01/node03", "kq-r02/node04", "kq-r02/node05"] {
        assert!(text.lines().any(|l| l.starts_with(n) && l.contains("recorded")), "{n}: {text}");
    }
    let keys = |r: &str| std::fs::read_to_string(fresh.join(format!("{r}.known_hosts"))).unwrap_or_default();
    assert_eq!(keys("r01").lines().filter(|l| !l.trim().is_empty()).count(), 3, "{}", keys("r01"));
    assert_eq!(keys("r02").lines().filter(|l| !l.trim().is_empty()).count(), 2, "{}", keys("r02"));
    let (code, text) = trust();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("already trusted")).count(), 5, "{text}");
}
