//! A GB200 NVL72 rack of 18 compute trays over the lab (one network namespace and sshd per tray,
//! each tray's tree built at test time by the fixture builder from the healthy tray), validated
//! with `kiln rack validate` and handed to a real slurmctld with `kiln rack handoff --to slurm`:
//! the faulty trays are kept out with their reasons, the domain is held whole until `--partial`,
//! and a repaired tray comes back through the lifecycle. Needs root, the lab and Debian's
//! slurm-wlm and munge; otherwise prints SKIPPED (and fails under KILN_REQUIRE_PEERS=1).

mod slurm_support;
mod topology_lab;

use std::process::Command;

use kiln::hw::fixture::{gb200_tray, FixtureTree, Gb200Tray};
use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;
use serde_json::Value;
use slurm_support::{SlurmCluster, SlurmNodeSpec};

const TRAYS: u32 = 18;

/// Tray `i` of one rack; tray 3 registered in another NVLink domain, tray 7's GPU 1 reporting
/// degraded fabric bandwidth.
fn tray(i: u32, healthy: bool) -> FixtureTree {
    let mut tree = gb200_tray(&Gb200Tray::in_rack(i));
    if !healthy && i == 3 {
        for g in 0..4 {
            if let Some(f) = tree.gpu_mut(g).and_then(|g| g.fabric.as_mut()) {
                f.cluster_uuid = "0badc0de-0000-4000-8000-000000000001".into();
            }
        }
    }
    if !healthy && i == 7 {
        if let Some(f) = tree.gpu_mut(1).and_then(|g| g.fabric.as_mut()) {
            f.health_mask = 0x1a9;
        }
    }
    tree
}

fn kiln(cluster: &SlurmCluster, args: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cluster.configure(&mut cmd);
    let out = cmd.args(args).output().expect("run kiln");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{args:?}: JSON: {e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

fn node_out<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["nodes"].as_array().and_then(|a| a.iter().find(|n| n["node"] == name)).expect("node in outcome")
}

#[test]
fn an_nvl72_rack_is_judged_as_one_machine_and_handed_to_slurm_whole() {
    let missing = slurm_support::missing_program().map(|p| format!("{p} missing (apt-get install slurm-wlm munge)"));
    if let Some(why) = topology_lab::skip_reason(missing) {
        println!("SKIPPED: {why}");
        return;
    }
    let mut cfg = topology_lab::config("lab-nvl72", "kn", 5, TRAYS);
    cfg.bmc_port_base = 8700;
    let _teardown = topology_lab::Teardown(cfg.dir.clone());
    let lab = topology_lab::up(&mut cfg, TRAYS, |i| tray(i, false));
    let specs = SlurmNodeSpec::of_lab(&lab.state);
    let cluster = SlurmCluster::start(&cfg.dir.join("slurm"), "knctl", &cfg.host_address(), 16957, &specs);
    let m = lab.manifest().to_string_lossy().into_owned();
    let db = topology_lab::fresh_db(&cfg.dir);
    let d = db.to_string_lossy().into_owned();

    // 1. Validate: node07 fails on its own GPU; node03 passes alone but the rack check fails it.
    let (code, out) = kiln(&cluster, &["rack", "validate", "--rack", &m, "--db", &d, "--json"]);
    assert_eq!(code, 1, "{out:#}");
    let inv = Inventory::open_existing(&db).expect("open");
    let reason = |inv: &Inventory, n: &str| inv.state(n).expect("state").reason().unwrap_or_default().to_string();
    assert!(reason(&inv, "node03").starts_with("rack validate failed: rack.fabric.cluster"), "{out:#}");
    assert!(reason(&inv, "node07").contains("fabric.health.degraded_bandwidth"), "{}", reason(&inv, "node07"));
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
    drop(inv);
    topology_lab::burn_in(&db, TRAYS, "kn-lab");

    // 2. Hand-off: the domain is broken, so no tray goes into service; the broken ones are named.
    let (code, out) = kiln(&cluster, &["rack", "handoff", "--to", "slurm", "--json", "--rack", &m, "--db", &d]);
    assert_eq!(code, 1, "{out:#}");
    let broken: Vec<&str> =
        out["domains"][0]["broken"].as_array().expect("broken").iter().filter_map(|b| b["node"].as_str()).collect();
    assert_eq!(broken, ["node03", "node07"], "{out:#}");
    let (state, why) = cluster.state("node01");
    assert_eq!(state, "drained", "{out:#}");
    assert!(why.starts_with("kiln: NVLink domain") && why.contains("node03"), "{why}");
    assert!(cluster.state("node03").1.contains("rack.fabric.cluster"), "{:?}", cluster.state("node03"));

    // 3. --partial: the 16 healthy trays go into service; the broken ones stay out with their reasons.
    let (_, out) =
        kiln(&cluster, &["rack", "handoff", "--to", "slurm", "--json", "--partial", "--rack", &m, "--db", &d]);
    for i in (1..=TRAYS).filter(|i| ![3, 7].contains(i)) {
        let name = format!("node{i:02}");
        assert_eq!(node_out(&out, &name)["disposition"], "handed_off", "{name}: {out:#}");
        assert_eq!(cluster.settle(&name, "idle", 15), "idle", "{name}");
    }
    assert_eq!(cluster.state("node07").0, "drained");
    assert!(cluster.state("node07").1.contains("fabric.health.degraded_bandwidth"), "{:?}", cluster.state("node07"));

    // 4. Repair node03 (its tree replaced in place: the node sees it through its bind mount),
    //    release it, and rerun: it validates, burns in and is handed off.
    let healthy = cfg.dir.join("node03-repaired");
    let _ = std::fs::remove_dir_all(&healthy);
    tray(3, true).write(&healthy).expect("write the repaired tree");
    std::fs::copy(healthy.join("kiln/nvml.json"), cfg.fixtures[2].join("kiln/nvml.json")).expect("replace the dump");
    let mut release = Command::new(env!("CARGO_BIN_EXE_kiln"));
    let st = release.args(["node", "release", "node03", "--reason", "recabled", "--db", &d]).status().expect("release");
    assert!(st.success());
    let (_, out) = kiln(&cluster, &["rack", "validate", "--rack", &m, "--db", &d, "--json"]);
    let inv = Inventory::open_existing(&db).expect("open");
    assert_eq!(inv.state("node03").expect("state"), LifecycleState::Validated, "{out:#}");
    drop(inv);
    topology_lab::burn_in(&db, TRAYS, "kn-lab");
    let (_, out) =
        kiln(&cluster, &["rack", "handoff", "--to", "slurm", "--json", "--partial", "--rack", &m, "--db", &d]);
    assert_eq!(node_out(&out, "node03")["disposition"], "handed_off", "{out:#}");
    assert_eq!(cluster.settle("node03", "idle", 15), "idle");
    let broken: Vec<&str> =
        out["domains"][0]["broken"].as_array().expect("broken").iter().filter_map(|b| b["node"].as_str()).collect();
    assert_eq!(broken, ["node07"]);
    drop(cluster);
}
