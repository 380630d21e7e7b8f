//! `kiln rack burnin`'s NCCL collective over the lab: four GB200 trays (one network namespace and
//! sshd each, real `kiln` pushed to every tray), no NCCL and no driver on any. Every tray's rank
//! reports `skipped: no NCCL` and the run exits 7; a rank that hangs is named with its tray at its
//! deadline, and a rank that dies is named while the rank still running is killed at once; no
//! rank's process is left in any tray's namespace, and the run is recorded as a collective rack
//! run with a finding per tray. Needs root and `ip`; otherwise prints SKIPPED (a failure with
//! KILN_REQUIRE_PEERS=1). One lab, scenarios in order.

mod bmc_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln::hw::fixture::{gb200_tray, Gb200Tray};
use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;
use serde_json::Value;
use xtask::lab::{self, Lab, LabConfig};

const TRAYS: u32 = 4;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kiln rack <args> --json` against the lab; (exit code, JSON, seconds it took).
fn kiln(manifest: &Path, db: &Path, args: &[&str]) -> (i32, Value, f64) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("rack")
        .args(args)
        .args(["--json", "--connect-timeout", "5", "--timeout", "120", "--rack"])
        .arg(manifest)
        .arg("--db")
        .arg(db)
        .env("KILN_LOG", "kiln=info")
        .output()
        .expect("run kiln rack");
    let took = t0.elapsed().as_secs_f64();
    // Shown when the test fails.
    println!("kiln rack {args:?} ({took:.1} s):\n{}", String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kiln rack {args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json, took)
}

fn tray<'a>(out: &'a Value, name: &str) -> &'a Value {
    out["collective"]["trays"].as_array().and_then(|a| a.iter().find(|t| t["node"] == name)).expect("tray in outcome")
}

/// No process of a rank (or of the `timeout` around it) is left in any tray's namespace.
fn no_rank_left(lab: &Lab) {
    // The remote kill and sshd's teardown of a killed session take a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<(String, u32, String)> = lab
            .state
            .nodes
            .iter()
            .flat_map(|n| {
                lab.node_processes(&n.name)
                    .expect("node processes")
                    .into_iter()
                    .filter(|(_, cmd)| cmd.contains("nccl-rank"))
                    .map(|(pid, cmd)| (n.name.clone(), pid, cmd))
                    .collect::<Vec<_>>()
            })
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "rank processes left behind: {left:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_collective_runs_over_every_tray_and_a_dead_or_hung_rank_is_named_and_cleaned_up() {
    if !lab::is_root() {
        return bmc_support::skip("not root: the lab needs network namespaces");
    }
    let mut cfg = LabConfig::standard(&repo(), TRAYS as usize);
    cfg.dir = repo().join("target/lab-nccl");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kc".into();
    cfg.subnet = 12;
    cfg.bmc = false;
    cfg.bmc_port_base = 9200;
    let fixtures = cfg.dir.join("fixtures");
    cfg.fixtures = (1..=TRAYS)
        .map(|i| {
            let path = fixtures.join(format!("gb200-nvl72-tray-{i:02}"));
            if path.exists() {
                std::fs::remove_dir_all(&path).expect("remove the old tree");
            }
            gb200_tray(&Gb200Tray::in_rack(i)).write(&path).expect("write the tray");
            path
        })
        .collect();
    let _teardown = lab::Teardown(cfg.dir.clone());
    let lab = lab::up(&cfg).expect("lab up");
    let manifest = lab.manifest().to_path_buf();
    // The rack's platform, as a site's manifest for an NVL72 rack names it.
    let text = std::fs::read_to_string(&manifest).expect("read the manifest");
    std::fs::write(&manifest, text.replacen("position = 1\n", "position = 1\nplatform = \"gb200-nvl72-tray\"\n", 1))
        .expect("write the manifest");
    let db = cfg.dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    // The trays are known to the inventory (and kiln is pushed) before the collective; named
    // with --nodes, as four trays of an 18-tray domain are not judged as a whole rack.
    let (code, out, _) = kiln(&manifest, &db, &["inspect", "--nodes", "node01,node02,node03,node04"]);
    assert_eq!(code, 0, "{out:#}");

    // 1. No NCCL anywhere: every rank ran for real on its tray and says so; never a pass.
    let (code, out, _) = kiln(&manifest, &db, &["burnin", "--collective", "only", "--rank-deadline", "60"]);
    assert_eq!(code, 7, "{out:#}");
    assert_eq!(out["collective"]["ranks"], TRAYS, "{out:#}");
    for i in 1..=TRAYS {
        let t = tray(&out, &format!("node{i:02}"));
        assert_eq!(t["status"], "skipped", "{out:#}");
        assert_eq!(t["rank"], i - 1, "rank order is the manifest's");
        assert_eq!(t["report"]["kind"], "kiln.collective-rank", "{out:#}");
        assert!(t["reason"].as_str().unwrap_or("").contains("no NCCL"), "{out:#}");
        // Each report comes from the tray's own namespace.
        assert_eq!(t["report"]["hostname"], format!("node{i:02}"), "{out:#}");
        // No driver on the tray: nothing sampled, and the report says why.
        assert_eq!(t["report"]["telemetry"], serde_json::json!([]), "{out:#}");
        assert_eq!(t["report"]["telemetry_note"], "not sampled: no NVIDIA driver", "{out:#}");
        assert!(t["run_id"].as_i64().is_some(), "the tray's rank is recorded: {out:#}");
    }
    assert!(out["collective"]["figures"].as_array().is_some_and(|f| f.is_empty()), "no figure without NCCL");
    let inv = Inventory::open_existing(&db).expect("open");
    let runs = inv.rack_runs("kc-lab").or_else(|_| inv.rack_runs(out["rack"].as_str().unwrap_or(""))).expect("runs");
    let run = runs.iter().rev().find(|r| r.kind == "collective").expect("a collective rack run");
    assert_eq!(run.exit_code, 7);
    let findings = inv.rack_run_findings(run.id).expect("findings");
    let per_tray: Vec<&str> = findings
        .iter()
        .filter(|f| f.check == "burnin.collective.rank")
        .filter_map(|f| f.component.name.as_deref())
        .collect();
    assert_eq!(per_tray, ["node01", "node02", "node03", "node04"]);
    assert!(findings.iter().all(|f| f.outcome == kiln::checks::Outcome::Skipped), "{findings:#?}");
    // One record per rank, each a run of its tray: the skip with why, no figure, no sample.
    let trays = inv.collective_trays(run.id).expect("trays");
    let names: Vec<(&str, u32)> = trays.iter().map(|t| (t.node.as_str(), t.rank)).collect();
    assert_eq!(names, [("node01", 0), ("node02", 1), ("node03", 2), ("node04", 3)]);
    for t in &trays {
        assert_eq!((t.status.as_str(), t.verdict, t.exit_code), ("skipped", None, 7), "{t:#?}");
        assert_eq!(t.hostname.as_deref(), Some(t.node.as_str()));
        assert_eq!(t.telemetry_note.as_deref(), Some("not sampled: no NVIDIA driver"));
        assert_eq!(t.results.len(), 1, "{t:#?}");
        assert_eq!(t.results[0].test, "collective");
        assert!(t.results[0].reason.as_deref().unwrap_or("").contains("no NCCL"), "{t:#?}");
        assert!(t.samples.is_empty());
        assert_eq!(Some(t.run_id.0), tray(&out, &t.node)["run_id"].as_i64());
    }
    assert_eq!(inv.state("node02").expect("state"), LifecycleState::Inspected, "a skip fails no tray");
    let node02 = inv.node("node02").expect("query").expect("node02");
    assert_eq!(inv.latest_run(node02.id).expect("latest").map(|r| r.kind), Some("inspect".to_string()));
    // The tray's history lists its rank.
    let history = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["node", "history", "node02", "--json", "--db"])
        .arg(&db)
        .output()
        .expect("run kiln node history");
    let history: Value = serde_json::from_slice(&history.stdout).expect("the history document");
    let ranks = history["collectives"].as_array().expect("collectives");
    assert_eq!(ranks.len(), 1, "{history:#}");
    assert_eq!((ranks[0]["rank"].as_u64(), ranks[0]["status"].as_str()), (Some(1), Some("skipped")), "{history:#}");
    assert_eq!(ranks[0]["rack_run_id"].as_i64(), Some(run.id.0), "{history:#}");
    drop(inv);
    no_rank_left(&lab);

    // 2. node03's rank hangs: named as hung with its tray at its deadline, its processes killed.
    let (code, out, took) =
        kiln(&manifest, &db, &["burnin", "--collective", "only", "--rank-deadline", "6", "--rank-hook", "node03=hang"]);
    assert_eq!(code, 3, "{out:#}");
    let hung = tray(&out, "node03");
    assert_eq!(hung["status"], "error", "{out:#}");
    assert!(hung["reason"].as_str().unwrap_or("").starts_with("hung: rank 2 on node03"), "{out:#}");
    assert_eq!(hung["killed"], true);
    assert!(took < 6.0 + 20.0, "named within its deadline (and the kill grace): {took:.1} s");
    assert_eq!(tray(&out, "node01")["status"], "skipped", "{out:#}");
    no_rank_left(&lab);
    let inv = Inventory::open_existing(&db).expect("open");
    let state = inv.state("node03").expect("state");
    assert_eq!(state.name(), "failed", "{state:?}");
    assert!(state.reason().unwrap_or("").contains("burnin.collective.rank"), "{state:?}");
    assert_eq!(inv.state("node02").expect("state"), LifecycleState::Inspected, "the others are not failed");
    let run = inv.rack_runs(run_rack(&out)).expect("runs").into_iter().find(|r| r.kind == "collective").expect("run");
    let hung = inv.collective_trays(run.id).expect("trays").into_iter().find(|t| t.node == "node03").expect("node03");
    assert_eq!((hung.status.as_str(), hung.killed, hung.verdict), ("error", true, Some(kiln::checks::Verdict::Error)));
    assert!(hung.reason.as_deref().unwrap_or("").starts_with("hung: rank 2 on node03"), "{hung:#?}");
    assert_eq!(hung.results[0].status, kiln::inventory::BurninResultStatus::Error, "{hung:#?}");
    drop(inv);

    // 3. node02's rank dies while node04's hangs: node02 is named, and node04 is killed at once,
    //    long before its deadline, and said to be stopped because of node02.
    let (code, out, took) = kiln(
        &manifest,
        &db,
        &[
            "burnin",
            "--collective",
            "only",
            "--rank-deadline",
            "40",
            "--rank-hook",
            "node02=die",
            "--rank-hook",
            "node04=hang",
        ],
    );
    assert_eq!(code, 3, "{out:#}");
    let died = tray(&out, "node02");
    assert!(died["reason"].as_str().unwrap_or("").starts_with("died"), "{out:#}");
    let stopped = tray(&out, "node04");
    assert_eq!(stopped["killed"], true, "{out:#}");
    assert!(
        stopped["reason"].as_str().unwrap_or("").starts_with("stopped by kiln after rank 1 on node02 failed"),
        "{out:#}"
    );
    assert!(took < 30.0, "the hung rank was killed when node02 died, not at its deadline: {took:.1} s");
    no_rank_left(&lab);
    let inv = Inventory::open_existing(&db).expect("open");
    assert_eq!(inv.state("node02").expect("state").name(), "failed");
    assert_ne!(inv.state("node04").expect("state").name(), "failed", "a rank kiln stopped is not failed");

    // A hook for a node not in the run is refused before anything runs.
    let (code, _, _) = {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["rack", "burnin", "--collective", "only", "--rank-hook", "node09=die", "--rack"])
            .arg(&manifest)
            .arg("--db")
            .arg(&db)
            .output()
            .expect("run");
        (out.status.code().unwrap_or(-1), (), ())
    };
    assert_eq!(code, 2);

    // 4. The same trays as a site of two racks of two: each rack runs a collective of its own
    //    (its own rank 0), at once, each in the site document and recorded per tray.
    drop(inv);
    let site = lab::write_site(&lab.state, 2, true, &cfg.dir.join("site")).expect("site manifest");
    for (r, rack) in ["r01.toml", "r02.toml"].iter().enumerate() {
        let path = cfg.dir.join("site").join(rack);
        let text = std::fs::read_to_string(&path).expect("read the rack");
        let position = format!("position = {}\n", r + 1);
        let with = format!("{position}platform = \"gb200-nvl72-tray\"\n");
        std::fs::write(&path, text.replacen(&position, &with, 1)).expect("write the rack");
    }
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "burnin", "--json", "--connect-timeout", "5", "--timeout", "120", "--site"])
        .arg(&site)
        .args(["--collective", "only", "--rank-deadline", "60", "--db"])
        .arg(&db)
        .env_remove("KILN_RACK")
        .output()
        .expect("run kiln rack burnin --site");
    println!(
        "kiln rack burnin --site ({:.1} s):\n{}",
        t0.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("the site document");
    assert_eq!(out.status.code(), Some(7), "{doc:#}");
    assert_eq!(doc["kind"], "kiln.site");
    let inv = Inventory::open_existing(&db).expect("open");
    for (rack, nodes) in [("kc-r01", ["node01", "node02"]), ("kc-r02", ["node03", "node04"])] {
        let r = doc["racks"].as_array().and_then(|a| a.iter().find(|r| r["rack"] == rack)).expect("rack");
        let c = &r["collective"];
        assert_eq!(c["ranks"], 2, "{doc:#}");
        let trays: Vec<(&str, u64)> = c["trays"]
            .as_array()
            .expect("trays")
            .iter()
            .map(|t| (t["node"].as_str().unwrap_or(""), t["rank"].as_u64().unwrap_or(9)))
            .collect();
        assert_eq!(trays, [(nodes[0], 0), (nodes[1], 1)], "each rack its own rank 0: {doc:#}");
        assert!(c["trays"].as_array().expect("trays").iter().all(|t| t["status"] == "skipped"), "{doc:#}");
        let runs = inv.rack_runs(rack).expect("rack runs");
        let run = runs.iter().find(|x| x.kind == "collective").expect("a collective rack run per rack");
        assert_eq!(Some(run.id.0), c["rack_run_id"].as_i64(), "{doc:#}");
        let recorded: Vec<String> = inv.collective_trays(run.id).expect("trays").into_iter().map(|t| t.node).collect();
        assert_eq!(recorded, nodes, "{rack}");
    }
    no_rank_left(&lab);
    drop(inv);

    // 5. The per-tray burn-in before the collective leaves out the tray's own collective: each
    //    rank measures its tray's GPUs alone, so the burn-in's would run it twice.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "burnin", "--json", "--force", "--connect-timeout", "5", "--timeout", "120", "--rack"])
        .arg(&manifest)
        .args(["--rank-deadline", "60", "--db"])
        .arg(&db)
        .args(["--", "--duration", "1s"])
        .env_remove("KILN_RACK")
        .output()
        .expect("run kiln rack burnin");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rack burnin: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["collective"]["ranks"], TRAYS, "the collective followed: {doc:#}");
    let nodes = doc["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), TRAYS as usize, "{doc:#}");
    for n in nodes {
        let tests: Vec<&str> =
            n["report"]["tests_requested"].as_array().expect("tests").iter().filter_map(Value::as_str).collect();
        assert!(tests.contains(&"gemm") && tests.contains(&"p2p"), "{n:#}");
        assert!(!tests.contains(&"collective"), "{n:#}");
    }
    no_rank_left(&lab);
}

/// The rack id of a `kiln.rack` document.
fn run_rack(out: &Value) -> &str {
    out["rack"].as_str().unwrap_or("")
}
