//! A lab NVLink domain of a few GB200 trays for the topology and IMEX tests: the trays' trees
//! built by the fixture builder, the lab up with them (no BMCs), and the shipped platform specs
//! with the tray's `[nvlink_domain]` cut to that many trays, for `--checks-dir`.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kiln::checks::Verdict;
use kiln::hw::fixture::{gb200_tray, FixtureTree, Gb200Tray};
use kiln::inventory::{Inventory, RunRecord};
use kiln::lifecycle::{LifecycleState, RunKind};
pub use xtask::lab::Teardown;
use xtask::lab::{self, Lab, LabConfig};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why the lab cannot run here, if it cannot; panics instead under KILN_REQUIRE_PEERS=1.
pub fn skip_reason(extra: Option<String>) -> Option<String> {
    let why = (!lab::is_root()).then(|| "not root: the lab needs network namespaces".to_string()).or(extra)?;
    if std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("KILN_REQUIRE_PEERS=1 but {why}");
    }
    Some(why)
}

/// The lab's configuration for `trays` trays under `target/NAME`.
pub fn config(name: &str, prefix: &str, subnet: u8, trays: u32) -> LabConfig {
    let mut cfg = LabConfig::standard(&repo(), trays as usize);
    cfg.dir = repo().join("target").join(name);
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = prefix.into();
    cfg.subnet = subnet;
    cfg.bmc = false;
    cfg
}

/// Writes tray `i`'s tree (1-based) as `tray(i)` builds it and brings the lab up on them.
pub fn up(cfg: &mut LabConfig, trays: u32, tray: impl Fn(u32) -> FixtureTree) -> Lab {
    let fixtures = cfg.dir.join("fixtures");
    cfg.fixtures = (1..=trays)
        .map(|i| {
            let path = fixtures.join(format!("gb200-tray-{i:02}"));
            if path.exists() {
                std::fs::remove_dir_all(&path).expect("remove the old tree");
            }
            tray(i).write(&path).expect("write the tray");
            path
        })
        .collect();
    lab::up(cfg).expect("lab up")
}

/// A healthy tray `i` of one rack.
pub fn healthy(i: u32) -> FixtureTree {
    gb200_tray(&Gb200Tray::in_rack(i))
}

/// The shipped specs in `dir/checks`, the NVL72 tray's domain cut to `trays` trays.
pub fn checks_dir(dir: &Path, trays: u32) -> PathBuf {
    let checks = dir.join("checks");
    let _ = std::fs::remove_dir_all(&checks);
    std::fs::create_dir_all(checks.join("platforms")).expect("mkdir");
    for entry in std::fs::read_dir(repo().join("checks/platforms")).expect("list checks/platforms") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("read spec");
        if text.contains("[nvlink_domain]") {
            text = text
                .replace("\ngpus = 72\n", &format!("\ngpus = {}\n", trays * 4))
                .replace("\ntrays = 18\n", &format!("\ntrays = {trays}\n"));
            assert!(text.contains(&format!("\ntrays = {trays}\n")), "the domain's tray count is where this expects it");
        }
        std::fs::write(checks.join("platforms").join(path.file_name().expect("name")), text).expect("write spec");
    }
    checks
}

/// A fresh inventory path in the lab's directory.
pub fn fresh_db(dir: &Path) -> PathBuf {
    let db = dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    db
}

/// A passing burn-in recorded for every validated tray `node01..` of `trays` in rack `rack` (no
/// GPU here to run one), as the pipeline's `kiln rack burnin` would.
pub fn burn_in(db: &Path, trays: u32, rack: &str) {
    let mut inv = Inventory::open(db).expect("open inventory");
    for i in 1..=trays {
        let name = format!("node{i:02}");
        if inv.state(&name).ok() != Some(LifecycleState::Validated) {
            continue;
        }
        let row = inv.node(&name).expect("query").expect("node");
        let run = inv.latest_run_of_kind(row.id, RunKind::Validate).expect("query").expect("validate run");
        let mut node = inv.run_node(run.id).expect("recorded model");
        node.hostname = name.clone();
        let burn = RunRecord {
            verdict: Some(Verdict::Pass),
            rack: Some(rack),
            ..RunRecord::new(RunKind::Burnin, &node, "test")
        };
        inv.record_run(&burn).expect("record burn-in");
    }
}
