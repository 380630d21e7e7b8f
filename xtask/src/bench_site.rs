//! The inventory at site scale: a synthetic site of GB200 NVL72 racks (18 trays of 4 GPUs each,
//! every tray its own machine) recorded by `kiln bench-record --site-racks`, and the questions
//! `kiln inventory where` and `kiln report --at` asked of it.
//!
//! The site the issue describes (250 racks, 4,500 trays, 18,000 GPUs, a year of daily checks:
//! 1,642,500 runs) does not fit this machine's disk. Measured instead: one full pass over the
//! whole site (ingest time and database size per run), and a month of daily checks over a tenth of
//! it (the questions' latency with a month of history); the year's size is extrapolated from the
//! measured bytes per run, and said to be.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The site of the issue.
const RACKS: usize = 250;
const HISTORY_RACKS: usize = 25;
const HISTORY_DAYS: usize = 30;
const YEAR_RUNS: f64 = 4_500.0 * 365.0;

fn record(kiln: &Path, root: &Path, db: &Path, racks: usize, days: usize) -> Result<Value> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let fixture = root.join("target/bench/fixtures/gb200-nvl72-tray");
    let out = Command::new(kiln)
        .args(["bench-record", "--root"])
        .arg(&fixture)
        .arg("--db")
        .arg(db)
        .args(["--site-racks", &racks.to_string(), "--days", &days.to_string()])
        .output()
        .context("run kiln bench-record")?;
    if !out.status.success() {
        bail!("kiln bench-record --site-racks {racks} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let figures = serde_json::from_slice(&out.stdout).context("kiln bench-record printed no figures")?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(figures)
}

/// `given`: the binary `--kiln` named, else `None` for the release build.
pub fn run(kiln: &Path, root: &Path, given: Option<&str>) -> Result<()> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).context("could not create target/bench")?;
    let db = dir.join("site.db");
    // The tray template, written fresh by kiln's fixture builder.
    xtask::fixtures::write(root, &root.join("target/bench/fixtures"), &["gb200-nvl72-tray"])?;
    let full = record(kiln, root, &db, RACKS, 1)?;
    let month = record(kiln, root, &db, HISTORY_RACKS, HISTORY_DAYS)?;
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let pass_s = full["day_seconds"][0].as_f64().unwrap_or(f64::NAN);
    let per_run = f(&full, "db_bytes") / f(&full, "runs");
    let mib = |b: f64| b / (1u64 << 20) as f64;
    let (flag, build) = match given {
        Some(k) => (format!(" --kiln {k}"), format!("the binary {k}")),
        None => (String::new(), "the release build".to_string()),
    };
    let mut s = format!(
        "Measured by `cargo xtask bench --only=site{flag}` on {} ({} cores), {build}.\n\n",
        crate::bench::host_line(),
        crate::bench::cores()
    );
    s.push_str("| what | measured | aim |\n|---|---|---|\n");
    s.push_str(&format!(
        "| ingest one full site pass: {} racks, {} trays, {} GPUs, one validate run per tray | {:.1} s ({:.2} ms per run) | under 60 s |\n",
        full["racks"], full["trays"], full["gpus"], pass_s, pass_s * 1000.0 / f(&full, "runs")
    ));
    s.push_str(&format!(
        "| database after that pass | {:.0} MiB ({:.1} KiB per run) | |\n",
        mib(f(&full, "db_bytes")),
        per_run / 1024.0
    ));
    s.push_str(&format!(
        "| `where SERIAL` over {} days of daily checks of {} trays ({} runs; a GPU swapped, {} stays) | {:.2} ms | under 100 ms |\n",
        month["days"], month["trays"], month["runs"], month["where_stays"], f(&month, "where_ms")
    ));
    s.push_str(&format!(
        "| `report --node RACK/TRAY --at TIME` over the same | {:.2} ms | under 100 ms |\n",
        f(&month, "at_ms")
    ));
    s.push_str(&format!(
        "| a year of daily checks of the whole site ({YEAR_RUNS:.0} runs), extrapolated from the bytes per run | {:.0} GiB | under 2 GB |\n",
        per_run * YEAR_RUNS / (1u64 << 30) as f64
    ));
    s.push_str(
        "\nEach run stores the whole node model it judged (`runs.node_json`, about 40 KB for a GB200 tray) \
         beside its components and findings: that, not the component rows, is what a year of daily \
         checks costs. Storing a model only when it differs from the node's previous one would bring \
         the year near the size of its component rows; it is not done yet.\n",
    );
    println!("{s}");
    crate::bench::write_section(&root.join("docs/benchmarks.md"), "site", &s)
}
