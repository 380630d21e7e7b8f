//! `cargo xtask fuzz [TARGET] [--seconds N]`: runs the fuzz targets of `tests/fuzz` one at a
//! time, each for a bounded time, with cargo-fuzz (libFuzzer). The targets' names and what they
//! parse are in `tests/fuzz/src/lib.rs`; how to set the tools up is docs/fuzzing.md.
//!
//! Each target's working corpus (`tests/fuzz/corpus/TARGET`, not committed) is seeded from the
//! files kiln ships (specs, recipes, manifests, NVML dumps of the fixtures), a few inputs written
//! here, and every committed regression input. A crash leaves its input in
//! `tests/fuzz/artifacts/TARGET/`; copy it to `tests/fuzz/regressions/TARGET/` with the fix.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::sh;

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: [&str; 11] = [
    "spec",
    "rack_manifest",
    "image_recipe",
    "firmware_recipe",
    "block_map",
    "artifact_manifest",
    "nvml_dump",
    "sysfs_value",
    "node_json",
    "agent_message",
    "redfish_reply",
];

const USAGE: &str = "usage: cargo xtask fuzz [TARGET] [--seconds N]   (targets: see --list)";

/// What one target's run came to.
struct Run {
    target: &'static str,
    seconds: u64,
    execs: Option<u64>,
    crashed: bool,
}

pub fn run(args: &[String]) -> Result<u8> {
    let mut seconds = 120;
    let mut only: Option<&'static str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let n = it.next().context("--seconds needs a number")?;
                seconds = n.parse().with_context(|| format!("--seconds {n:?} is not a number of seconds"))?;
            }
            "--list" => {
                for t in TARGETS {
                    println!("{t}");
                }
                return Ok(0);
            }
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(t) => only = Some(t),
                None => {
                    eprintln!("xtask fuzz: unknown target {name:?}; known: {}\n{USAGE}", TARGETS.join(", "));
                    return Ok(2);
                }
            },
        }
    }
    let toolchain = toolchain()?;
    let root = sh::root();
    let fuzz_dir = root.join("tests/fuzz");
    let mut runs = Vec::new();
    for target in TARGETS.iter().copied().filter(|t| only.is_none_or(|o| o == *t)) {
        let corpus = fuzz_dir.join("corpus").join(target);
        seed(&root, target, &corpus)?;
        runs.push(run_target(&toolchain, &root, target, seconds)?);
    }
    println!("\n{:<18} {:>8} {:>12}  result", "target", "seconds", "execs");
    for r in &runs {
        let execs = r.execs.map(|n| n.to_string()).unwrap_or_else(|| "?".into());
        let result = if r.crashed { "CRASH: see tests/fuzz/artifacts/".to_string() + r.target } else { "ok".into() };
        println!("{:<18} {:>8} {:>12}  {result}", r.target, r.seconds, execs);
    }
    Ok(if runs.iter().any(|r| r.crashed) { 1 } else { 0 })
}

/// How cargo-fuzz is run: `cargo +nightly fuzz`, or stable cargo with `RUSTC_BOOTSTRAP=1`
/// (cargo-fuzz passes `-Z` flags) when no nightly toolchain is installed.
struct Toolchain {
    nightly: bool,
}

fn toolchain() -> Result<Toolchain> {
    let fuzz_ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !fuzz_ok {
        bail!("cargo-fuzz is not installed: `cargo install cargo-fuzz` (docs/fuzzing.md)");
    }
    let list = Command::new("rustup").args(["toolchain", "list"]).output();
    let nightly = list.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("nightly")));
    Ok(Toolchain { nightly })
}

fn run_target(toolchain: &Toolchain, root: &Path, target: &'static str, seconds: u64) -> Result<Run> {
    let mut cmd = Command::new("cargo");
    if toolchain.nightly {
        cmd.arg("+nightly");
    } else {
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    // Safe Rust needs no AddressSanitizer; without it a run is several times faster.
    cmd.args(["fuzz", "run", "--fuzz-dir", "tests/fuzz", "--sanitizer", "none", "--target-dir", "target/fuzz", target])
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // A single input that takes seconds is a hang; memory past 2 GiB is a leak or a bomb.
        .args(["-timeout=10", "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1"])
        .current_dir(root)
        .stderr(Stdio::piped());
    println!("== fuzz {target} for {seconds} s");
    let out = cmd.output().with_context(|| format!("run {}", sh::describe(&cmd)))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    for line in tail.iter().rev() {
        if line.starts_with("stat::") || line.contains("Done ") || line.contains("ERROR") || line.contains("panicked") {
            println!("   {line}");
        }
    }
    let execs =
        log.lines().find_map(|l| l.strip_prefix("stat::number_of_executed_units:")).and_then(|n| n.trim().parse().ok());
    Ok(Run { target, seconds, execs, crashed: !out.status.success() })
}

/// Fills the working corpus of `target` with what kiln ships and every regression input.
fn seed(root: &Path, target: &str, corpus: &Path) -> Result<()> {
    std::fs::create_dir_all(corpus).with_context(|| format!("create {}", corpus.display()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    let glob = |dir: &str, ext: &str| -> Vec<PathBuf> {
        std::fs::read_dir(root.join(dir))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default()
    };
    match target {
        "spec" => files.extend(glob("checks/platforms", "toml")),
        "rack_manifest" => files.extend(glob("inventory/racks", "toml")),
        "image_recipe" => files.extend(glob("images", "toml")),
        "firmware_recipe" => files.extend(glob("checks/firmware", "toml")),
        "nvml_dump" => {
            // The recorded capture, and the trees `cargo xtask fixtures` wrote, when it has run.
            let trees = ["tests/fixtures", "target/fixtures"].map(|d| std::fs::read_dir(root.join(d)));
            for dir in trees.into_iter().flatten().flatten().flatten() {
                for name in ["kiln/nvml.json", "kiln/telemetry.json"] {
                    let p = dir.path().join(name);
                    if p.is_file() {
                        files.push(p);
                    }
                }
            }
        }
        _ => {}
    }
    for (i, text) in written_seeds(target).iter().enumerate() {
        std::fs::write(corpus.join(format!("seed-{i}")), text).context("write a seed")?;
    }
    if let Ok(rd) = std::fs::read_dir(root.join("tests/fuzz/regressions").join(target)) {
        files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
    }
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::copy(&f, corpus.join(format!("file-{name}"))).with_context(|| format!("copy {}", f.display()))?;
    }
    Ok(())
}

/// Small inputs of the shapes kiln reads, for targets with no file in the tree to start from.
fn written_seeds(target: &str) -> Vec<&'static str> {
    match target {
        "block_map" => vec![
            r#"{"format":"kiln-bmap","version":1,"block_size":4096,"image_size":16384,"ranges":[{"start":0,"end":8192,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
        ],
        "artifact_manifest" => vec![r#"{"format":"kiln-image-manifest","version":1,"recipe":"r"}"#],
        "sysfs_value" => vec![
            "0x10de\n",
            "0x030200\n",
            "32.0 GT/s PCIe\n",
            "8 GT/s\n",
            "-1\n",
            "0-3,8-11\n",
            "RxErr 0\nBadTLP 2\nTOTAL_ERR_COR 2\n",
            "MemTotal:       2113470072 kB\n",
            "0000:1b:00.0",
            "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0",
        ],
        "node_json" => vec![
            r#"{"schema_version":1,"hostname":"n","dmi":{},"cpus":{},"memory":{},"gpus":{"status":"not_inspected","reason":"x"}}"#,
        ],
        "agent_message" => vec![
            r#"{"mode":"imaging","node":"n1","macs":["aa:bb:cc:dd:ee:ff"],"kiln_version":"0.1.0"}"#,
            r#"{"node":"n1","ok":true,"image_sha256":"ab00000000000000000000000000000000000000000000000000000000000000","bytes":1,"seconds":0.5}"#,
            r#"{"node":"n1","source":"disk","image_sha256":"ab00000000000000000000000000000000000000000000000000000000000000"}"#,
        ],
        "redfish_reply" => vec![
            r#"{"error":{"code":"Base.1.8.GeneralError","message":"x","@Message.ExtendedInfo":[{"Message":"busy"}]}}"#,
            "Running",
            "On",
        ],
        _ => Vec::new(),
    }
}
