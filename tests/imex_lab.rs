//! `kiln rack imex` over the lab: four GB200 trays (one network namespace and sshd each; a
//! platform spec whose domain is four trays, given with `--checks-dir`), tray 3 registered in
//! another NVLink domain so the rack gate fails it; the dry run prints the peer list and writes
//! nothing, the real run writes the three gate-passed trays' IPs on those three trays only
//! (each node's /var/lib/kiln is a directory of the lab's, so the test reads what the node wrote),
//! notes it in their histories, and a second run finds every list already there. Needs root and
//! the lab; otherwise prints SKIPPED (and fails under KILN_REQUIRE_PEERS=1).

mod topology_lab;

use std::process::Command;

use kiln::inventory::Inventory;
use serde_json::Value;
use topology_lab::Teardown;

const TRAYS: u32 = 4;
/// Inside each node's /var/lib/kiln, which the lab binds to a directory the test can read.
const CONFIG: &str = "/var/lib/kiln/imex/nodes_config.cfg";

fn kiln(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("run kiln");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{args:?}: JSON: {e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn each_gate_passed_tray_gets_its_domains_peer_list_and_the_failed_tray_none() {
    if let Some(why) = topology_lab::skip_reason(None) {
        println!("SKIPPED: {why}");
        return;
    }
    let mut cfg = topology_lab::config("lab-imex", "km", 14, TRAYS);
    cfg.bmc_port_base = 8950;
    let _teardown = Teardown(cfg.dir.clone());
    let lab = topology_lab::up(&mut cfg, TRAYS, |i| {
        let mut tree = topology_lab::healthy(i);
        if i == 3 {
            for g in 0..4 {
                if let Some(f) = tree.gpu_mut(g).and_then(|g| g.fabric.as_mut()) {
                    f.cluster_uuid = "0badc0de-0000-4000-8000-000000000001".into();
                }
            }
        }
        tree
    });
    let checks = topology_lab::checks_dir(&cfg.dir, TRAYS);
    let c = checks.to_string_lossy().into_owned();
    let m = lab.manifest().to_string_lossy().into_owned();
    let db = topology_lab::fresh_db(&cfg.dir);
    let d = db.to_string_lossy().into_owned();
    let (code, out) = kiln(&["rack", "validate", "--rack", &m, "--db", &d, "--checks-dir", &c, "--json"]);
    assert_eq!(code, 1, "node03 fails the rack check: {out:#}");

    let address = |i: usize| lab.state.nodes[i].address.clone();
    let want = format!("{}\n{}\n{}\n", address(0), address(1), address(3));
    let on_node = |i: usize| lab.state.nodes[i].sshd.var_lib.join("imex/nodes_config.cfg");

    // Dry run: the list and its trays, nothing written, nothing recorded.
    let (code, out) = kiln(&["rack", "imex", "--rack", &m, "--db", &d, "--config-path", CONFIG, "--dry-run", "--json"]);
    assert_eq!(code, 1, "node03 is left out: {out:#}");
    assert_eq!(out["kind"], "kiln.rack-imex");
    assert_eq!(out["domains"][0]["config"], want, "{out:#}");
    assert_eq!(out["left_out"][0]["node"], "node03", "{out:#}");
    assert!(out["writes"].as_array().expect("writes").iter().all(|w| w["result"] == "would_write"), "{out:#}");
    assert!((0..4).all(|i| !on_node(i).exists()));

    // The real run: the three gate-passed trays hold the list; node03 holds none.
    let (code, out) = kiln(&["rack", "imex", "--rack", &m, "--db", &d, "--config-path", CONFIG, "--json"]);
    assert_eq!(code, 1, "{out:#}");
    let written: Vec<(&str, &str)> = out["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .map(|w| (w["node"].as_str().unwrap_or_default(), w["result"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(written, [("node01", "written"), ("node02", "written"), ("node04", "written")], "{out:#}");
    for i in [0, 1, 3] {
        assert_eq!(std::fs::read_to_string(on_node(i)).expect("the node's list"), want, "node{:02}", i + 1);
    }
    assert!(!on_node(2).exists(), "the failed tray gets no list");
    let inv = Inventory::open_read_only(&db).expect("open");
    let history = inv.history("node01").expect("history");
    let last = history.last().expect("an event");
    assert_eq!(last.actor, "kiln rack imex");
    assert!(last.cause.contains("IMEX peers written") && last.cause.contains(&address(3)), "{}", last.cause);
    drop(inv);

    // Again: every list already there, and said so.
    let (_, out) = kiln(&["rack", "imex", "--rack", &m, "--db", &d, "--config-path", CONFIG, "--json"]);
    assert!(out["writes"].as_array().expect("writes").iter().all(|w| w["result"] == "already_done"), "{out:#}");
}
