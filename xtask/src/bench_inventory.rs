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
        "Measured by `cargo xtask bench --only=inventory{flag}` on {} ({} cores), {build}.\n\n",
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
    // A model is stored once per distinct content, so the database grows by a model per tray
    // (and per change) and by rows per run: db = trays * model + runs * rows. The full pass (one
    // run per tray) and the month (30 runs per tray) are two such sums; solved for the two.
    let (trays_f, runs_f, bytes_f) = (f(&full, "trays"), f(&full, "runs"), f(&full, "db_bytes"));
    let (trays_m, runs_m, bytes_m) = (f(&month, "trays"), f(&month, "runs"), f(&month, "db_bytes"));
    let rows = (bytes_m - bytes_f * trays_m / trays_f) / (runs_m - runs_f * trays_m / trays_f);
    let model = (bytes_f - runs_f * rows) / trays_f;
    let year = trays_f * model + YEAR_RUNS * rows;
    s.push_str(&format!(
        "| database after {} days of {} trays | {:.0} MiB ({:.1} KiB per run) | |\n",
        month["days"],
        month["trays"],
        mib(bytes_m),
        bytes_m / runs_m / 1024.0
    ));
    s.push_str(&format!(
        "| a year of daily checks of the whole site ({YEAR_RUNS:.0} runs), extrapolated: {:.1} KiB per tray once (its model), {:.2} KiB per run (its components and findings) | {:.1} GiB | under 2 GB |\n",
        model / 1024.0,
        rows / 1024.0,
        year / (1u64 << 30) as f64
    ));
    s.push_str(
        "\nA node model (about 40 KB for a GB200 tray) is stored once per distinct content \
         (`node_models`, schema 7) and each run points to it, so a daily check that finds the tray \
         unchanged adds only its run, component and finding rows. The year is extrapolated from the \
         two recordings above: the full pass and the month are each `trays x model + runs x rows`, \
         solved for the two sizes, then `4,500 x model + 1,642,500 x rows`. What remains per run is \
         those rows; they are not shared between runs.\n",
    );
    println!("{s}");
    crate::bench::write_section(&root.join("docs/benchmarks.md"), "inventory", &s)
}
