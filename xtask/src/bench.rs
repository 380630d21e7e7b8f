//! `cargo xtask bench`: kiln against the tools a user would otherwise run,
//! side by side in one run, as ratios. Figures go into docs/benchmarks.md
//! between markers, so each section is rewritten by its own benchmark.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sh;

const RUNS: usize = 15;

pub fn run(args: &[String]) -> Result<u8> {
    if !args.iter().any(|a| a == "--no-install") && sh::is_root() {
        sh::apt_install(&["pciutils"])?;
    }
    // `--kiln FILE` measures that binary (say which in the figures) instead of a release build.
    let given = args.iter().position(|a| a == "--kiln").and_then(|i| args.get(i + 1));
    let kiln = match given {
        Some(path) => std::path::PathBuf::from(path),
        None => sh::build_kiln(true)?,
    };
    let root = sh::root();
    let install = !args.iter().any(|a| a == "--no-install");
    // `--only=node|image|fleet|firmware|rack|inventory|site-scale` runs one section; by default
    // the first six (site-scale brings up a lab of 198 nodes: asked for by name only).
    let only = args.iter().find_map(|a| a.strip_prefix("--only=")).map(str::to_string);
    let wants = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if let Some(o) = &only {
        if !["node", "image", "fleet", "firmware", "rack", "inventory", "site-scale"].contains(&o.as_str()) {
            bail!("--only takes node, image, fleet, firmware, rack, inventory or site-scale, not {o:?}");
        }
    }
    // Many racks at once at the lab's largest size, against pdsh.
    if only.as_deref() == Some("site-scale") {
        if !sh::is_root() {
            eprintln!("xtask: SKIPPED: site scale benchmark needs root (network namespaces)");
            return Ok(0);
        }
        let nodes = flag_value(args, "--site-nodes").unwrap_or(198);
        let parallel = flag_value(args, "--site-parallel").unwrap_or(64);
        let rounds = flag_value(args, "--site-rounds").unwrap_or(3);
        let report = xtask::bench_site::run(&root, &kiln, nodes, parallel, rounds)?;
        let body = format!(
            "Measured by `cargo xtask bench --only=site-scale` on {} ({} cores), kiln binary `{}`.\n\n{}",
            host_line(),
            cores(),
            kiln.strip_prefix(&root).unwrap_or(&kiln).display(),
            report.markdown()
        );
        println!("{body}");
        write_section(&root.join("docs/benchmarks.md"), "site", &format!("{body}\n"))?;
        return Ok(0);
    }
    if wants("inventory") {
        crate::bench_inventory::run(&kiln, &root, given.map(String::as_str))?;
    }
    if wants("node") {
        node(&kiln, &root)?;
    }
    if wants("image") {
        crate::bench_image::run(&kiln, &root, install)?;
    }
    // Rack fan-out over the lab against pdsh (needs root for namespaces).
    if wants("fleet") {
        if sh::is_root() {
            fleet(flag_value(args, "--fleet-nodes").unwrap_or(32))?;
        } else {
            eprintln!("xtask: SKIPPED: rack fan-out benchmark needs root (network namespaces)");
        }
    }
    // A firmware check beside DMTF's rf_firmware_inventory.py: over the recorded GH200 tree
    // (no root needed), and over the lab's BMCs (root: network namespaces).
    if wants("firmware") {
        firmware(&kiln, flag_value(args, "--firmware-nodes").unwrap_or(8))?;
    }
    // An NVLink-domain rack of compute trays validated as one machine, against pdsh.
    if wants("rack") {
        if sh::is_root() {
            let report = xtask::bench_rack::run(&root, &kiln, flag_value(args, "--rack-trays").unwrap_or(18), 3)?;
            let body = report.markdown();
            println!("{body}");
            write_section(&root.join("docs/benchmarks.md"), "rack", &format!("{body}\n"))?;
        } else {
            eprintln!("xtask: SKIPPED: rack validate benchmark needs root (network namespaces)");
        }
    }
    Ok(0)
}

fn firmware(kiln: &Path, nodes: usize) -> Result<()> {
    let root = sh::root();
    let mut body = format!(
        "Measured by `cargo xtask bench` on {} ({} cores), kiln binary `{}`.\n\n",
        host_line(),
        cores(),
        kiln.strip_prefix(&root).unwrap_or(kiln).display()
    );
    body.push_str(&xtask::bench_firmware::run_recorded(&root, kiln, nodes, 5)?.markdown());
    body.push('\n');
    if sh::is_root() {
        body.push_str(&xtask::bench_firmware::run_lab(&root, kiln, nodes, 5)?.markdown());
    } else {
        body.push_str("Lab BMCs: SKIPPED (the lab needs root for its network namespaces).\n");
    }
    println!("{body}");
    write_section(&root.join("docs/benchmarks.md"), "firmware", &format!("{body}\n"))
}

/// Inspecting, validating and recording, beside lspci.
fn node(kiln: &Path, root: &Path) -> Result<()> {
    let mut section = String::new();
    section.push_str(&format!("Measured by `cargo xtask bench` on {} ({} cores).\n\n", host_line(), cores()));
    section.push_str("| what | kiln (median) | reference (median) | ratio kiln/reference |\n|---|---|---|---|\n");

    // 1. Inspecting this machine against lspci -vvv over the same devices.
    if sh::have("lspci") {
        let k = median_time(RUNS, || quiet(Command::new(kiln).args(["inspect", "--json"])))?;
        let l = median_time(RUNS, || quiet(Command::new("lspci").arg("-vvv")))?;
        section.push_str(&format!(
            "| inspect this machine (`kiln inspect --json` vs `lspci -vvv`) | {} | {} | {:.2} |\n",
            ms(k),
            ms(l),
            k.as_secs_f64() / l.as_secs_f64()
        ));
    } else {
        section.push_str("| inspect this machine | SKIPPED: lspci not installed | | |\n");
    }

    // 2. Validating the 8-GPU fixture, written fresh by kiln's builder.
    xtask::fixtures::write(root, &root.join("target/bench/fixtures"), &["hgx-b200"])?;
    let fixture = root.join("target/bench/fixtures/hgx-b200");
    let fixture_arg = fixture.to_string_lossy().into_owned();
    let v = median_time(RUNS, || {
        quiet(Command::new(kiln).args(["validate", "--json", "--platform", "hgx-b200", "--root", &fixture_arg]))
    })?;
    section.push_str(&format!("| validate the hgx-b200 fixture (8 GPUs) | {} | | |\n", ms(v)));

    // 3. Recording 1,000 node inventories of that fixture into one database.
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).context("could not create target/bench")?;
    let db = dir.join("record.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let db_arg = db.to_string_lossy().into_owned();
    let start = Instant::now();
    let ok =
        quiet(Command::new(kiln).args(["bench-record", "--root", &fixture_arg, "--count", "1000", "--db", &db_arg]))?;
    let took = start.elapsed();
    if !ok {
        bail!("kiln bench-record failed");
    }
    section.push_str(&format!(
        "| record 1,000 inventories of the hgx-b200 fixture into one database | {} ({:.2} ms each) | | |\n",
        ms(took),
        took.as_secs_f64() * 1000.0 / 1000.0
    ));

    println!("{section}");
    write_section(&root.join("docs/benchmarks.md"), "node", &section)
}

/// `cargo xtask bench-fleet [NODES]`: only the rack fan-out benchmark.
pub fn fleet_only(args: &[String]) -> Result<u8> {
    let nodes = match args.first() {
        Some(n) => n.parse().with_context(|| format!("node count {n:?}"))?,
        None => 32,
    };
    sh::build_kiln(true)?;
    fleet(nodes)?;
    Ok(0)
}

fn fleet(nodes: usize) -> Result<()> {
    let root = sh::root();
    // The node binary a crew pushes: this machine's target from `cargo
    // xtask dist`, in a directory of the benchmark's own.
    let host = xtask::dist::host_target()?;
    let dist = root.join("target/bench-dist");
    let built = xtask::dist::build(&root, &host, &host)?;
    xtask::dist::package(&built, &host, &dist)?;
    xtask::dist::index(&dist, xtask::dist::PackLevels::SMALLEST)?;
    let report = xtask::bench_fleet::run(&root, nodes, Some(&dist))?;
    let body = report.markdown();
    println!("{body}");
    write_section(&root.join("docs/benchmarks.md"), "fleet", &format!("{body}\n"))
}

fn flag_value(args: &[String], name: &str) -> Option<usize> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn quiet(cmd: &mut Command) -> Result<bool> {
    let st = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().with_context(|| sh::describe(cmd))?;
    // Validate exits non-zero for a failing node; timing is what counts here,
    // but a crash (no exit code) is not a measurement.
    Ok(st.code().is_some_and(|c| c == 0 || c == 1 || c == 3))
}

fn median_time(runs: usize, mut f: impl FnMut() -> Result<bool>) -> Result<Duration> {
    f()?; // warm the page cache
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        if !f()? {
            bail!("benchmark command failed");
        }
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn host_line() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
/// in the file, appending the section when the markers are absent.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let new = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if a < b => format!("{}{open}\n{body}{}", &text[..a], &text[b..]),
        _ => format!("{}\n{open}\n{body}{close}\n", text.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("could not write {}", path.display()))
}
