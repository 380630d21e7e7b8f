//! The topology of verified NVLink domains loaded by a real slurmctld: a four-tray GB200 domain
//! over the lab (one network namespace, sshd and slurmd per tray; a platform spec whose
//! `[nvlink_domain]` counts four trays, given with `--checks-dir`), validated with
//! `kiln rack validate`, its tree form from `kiln rack topology` read by slurmctld
//! (`TopologyPlugin=topology/tree`, `scontrol show topology`), then a tray quarantined and
//! `kiln rack handoff --to slurm --partial --topology` installing the topology of the trays it
//! handed off, which slurmctld shows after its reconfigure. Needs root, the lab and Debian's
//! slurm-wlm and munge; otherwise prints SKIPPED (and fails under KILN_REQUIRE_PEERS=1).

mod slurm_support;
mod topology_lab;

use std::process::Command;

use serde_json::Value;
use slurm_support::{SlurmCluster, SlurmExtras, SlurmNodeSpec};
use topology_lab::Teardown;

const TRAYS: u32 = 4;

fn run(cluster: &SlurmCluster, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cluster.configure(&mut cmd);
    cmd.args(args).output().expect("run kiln")
}

fn kiln(cluster: &SlurmCluster, args: &[&str]) -> (i32, Value) {
    let out = run(cluster, args);
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{args:?}: JSON: {e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

/// `scontrol show topology`'s switches: (name, nodes as Slurm lists them).
fn topology(cluster: &SlurmCluster) -> Vec<(String, String)> {
    let out = cluster.scontrol(&["show", "topology"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "scontrol show topology: {text}{}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .filter_map(|l| {
            let word = |key: &str| l.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_string);
            Some((word("SwitchName=")?, word("Nodes=").unwrap_or_default()))
        })
        .collect()
}

#[test]
fn a_verified_domain_is_loaded_by_slurmctld_and_handoff_installs_the_topology_of_what_it_hands_off() {
    let missing = slurm_support::missing_program().map(|p| format!("{p} missing (apt-get install slurm-wlm munge)"));
    if let Some(why) = topology_lab::skip_reason(missing) {
        println!("SKIPPED: {why}");
        return;
    }
    let mut cfg = topology_lab::config("lab-topology", "kp", 13, TRAYS);
    cfg.bmc_port_base = 8900;
    let _teardown = Teardown(cfg.dir.clone());
    let lab = topology_lab::up(&mut cfg, TRAYS, topology_lab::healthy);
    let checks = topology_lab::checks_dir(&cfg.dir, TRAYS);
    let c = checks.to_string_lossy().into_owned();
    let m = lab.manifest().to_string_lossy().into_owned();
    let db = topology_lab::fresh_db(&cfg.dir);
    let d = db.to_string_lossy().into_owned();

    // 1. The gate: every tray validates, and the rack check passes the four-tray domain.
    let validate = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "validate", "--rack", &m, "--db", &d, "--checks-dir", &c, "--json"])
        .output()
        .expect("rack validate");
    assert_eq!(validate.status.code(), Some(0), "{}", String::from_utf8_lossy(&validate.stdout));
    topology_lab::burn_in(&db, TRAYS, "kp-lab");

    // 2. The tree form from the inventory, loaded by slurmctld when it starts.
    let tree = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "topology", "--rack", &m, "--format", "slurm-tree", "--db", &d])
        .output()
        .expect("rack topology");
    assert_eq!(tree.status.code(), Some(0), "{}", String::from_utf8_lossy(&tree.stderr));
    let tree = String::from_utf8(tree.stdout).expect("utf-8");
    let specs = SlurmNodeSpec::of_lab(&lab.state);
    let extras = SlurmExtras {
        conf: vec!["TopologyPlugin=topology/tree".into()],
        files: vec![("topology.conf".into(), tree.clone())],
        ..SlurmExtras::default()
    };
    let slurm_dir = cfg.dir.join("slurm");
    let cluster = SlurmCluster::start_with(&slurm_dir, "kpctl", &cfg.host_address(), 16971, &specs, &extras);
    let shown = topology(&cluster);
    let block = "kp-lab-7c1e2f3a-32766";
    assert_eq!(shown, [(block.to_string(), "node[01-04]".to_string())], "{tree}");

    // 3. A tray quarantined; the partial hand-off installs the topology of the three it hands off.
    let q = run(&cluster, &["node", "quarantine", "node04", "--reason", "NVLink cartridge reseat", "--db", &d]);
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let conf = slurm_dir.join("topology.conf");
    let t = conf.to_string_lossy().into_owned();
    let (code, out) = kiln(
        &cluster,
        &["rack", "handoff", "--to", "slurm", "--partial", "--json", "--rack", &m, "--db", &d, "--topology", &t],
    );
    assert_eq!(code, 1, "node04 is kept out: {out:#}");
    let topo = &out["topology"];
    assert_eq!(topo["result"], "installed", "{out:#}");
    assert_eq!(topo["format"], "slurm-tree", "Slurm 22.05 has no topology/block: {out:#}");
    assert_eq!(topo["domains"][0]["nodes"], serde_json::json!(["node01", "node02", "node03"]), "{out:#}");
    assert!(topo.get("warnings").is_none(), "{out:#}");
    let written = std::fs::read_to_string(&conf).expect("read topology.conf");
    assert!(written.lines().any(|l| l == format!("SwitchName={block} Nodes=node[01-03]")), "{written}");
    assert_eq!(topology(&cluster), [(block.to_string(), "node[01-03]".to_string())]);
    // Each tray put in the file has it in its history; the tray kept out has not.
    let said = |node: &str| {
        let h = run(&cluster, &["node", "history", node, "--db", &d]);
        assert!(h.status.success(), "{}", String::from_utf8_lossy(&h.stderr));
        String::from_utf8_lossy(&h.stdout).into_owned()
    };
    let installed = format!("topology installed: in {block}");
    assert!(said("node02").contains(&installed), "{}", said("node02"));
    assert!(said("node02").contains("as slurm-tree"), "{}", said("node02"));
    assert!(!said("node04").contains("topology installed"), "{}", said("node04"));

    // 4. Again: the file already holds it; nothing written, no reconfigure. A dry run writes nothing.
    let (_, out) = kiln(
        &cluster,
        &["rack", "handoff", "--to", "slurm", "--partial", "--json", "--rack", &m, "--db", &d, "--topology", &t],
    );
    assert_eq!(out["topology"]["result"], "already_done", "{out:#}");
    assert_eq!(said("node02").matches("topology installed").count(), 1, "nothing written, nothing noted again");
    let elsewhere = cfg.dir.join("dry-topology.conf");
    let e = elsewhere.to_string_lossy().into_owned();
    let (_, out) = kiln(
        &cluster,
        &[
            "rack",
            "handoff",
            "--to",
            "slurm",
            "--partial",
            "--dry-run",
            "--json",
            "--rack",
            &m,
            "--db",
            &d,
            "--topology",
            &e,
        ],
    );
    assert_eq!(out["topology"]["result"], "would_do", "{out:#}");
    assert!(!elsewhere.exists());
    let warnings = out["topology"]["warnings"].to_string();
    assert!(warnings.contains("beside slurm.conf"), "a file Slurm does not read is said: {out:#}");
    drop(cluster);
}
