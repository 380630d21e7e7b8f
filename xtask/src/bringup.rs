//! `cargo xtask bringup`: the node job on this machine, as a one-node rack.
//!
//! Inspect and validate against the detected platform, a short burn-in, all
//! recorded in the SQLite inventory, then the report. The exit code is the
//! verdict: 0 only when the node is fit to hand to a cluster. With
//! `--rack FILE` it runs the rack pipeline instead (`xtask::bringup_rack`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::sh;

/// The one place the bring-up burn-in length is set. Long enough to reach
/// steady power and clocks on a GPU, short enough for a first look.
pub const BRINGUP_BURNIN: &str = "60s";

/// kiln's exit codes that bringup reads (docs/exit-codes.md).
const EXIT_OK: i32 = 0;
const EXIT_SKIPPED: i32 = 7;

struct Options {
    db: PathBuf,
    platform: Option<String>,
    burnin: String,
    /// A rack manifest: run the rack pipeline over its nodes.
    rack: Option<PathBuf>,
    parallel: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        db: sh::root().join("inventory/kiln.db"),
        platform: None,
        burnin: BRINGUP_BURNIN.into(),
        rack: None,
        parallel: 16,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--db" => opts.db = PathBuf::from(value("--db")?),
            "--platform" => opts.platform = Some(value("--platform")?),
            "--burnin-duration" => opts.burnin = value("--burnin-duration")?,
            "--rack" => opts.rack = Some(PathBuf::from(value("--rack")?)),
            "--parallel" => {
                opts.parallel = value("--parallel")?.parse().context("--parallel needs a number of nodes")?;
            }
            other => bail!("unknown bringup option {other:?}"),
        }
    }
    Ok(opts)
}

pub fn run(args: &[String]) -> Result<u8> {
    let opts = parse(args)?;
    let kiln = sh::build_kiln(true)?;
    if let Some(rack) = &opts.rack {
        return run_rack(&opts, kiln, rack);
    }
    let db = opts.db.to_string_lossy().into_owned();
    let out_dir = sh::root().join("target/bringup");
    std::fs::create_dir_all(&out_dir).context("could not create target/bringup")?;

    // 1. Inspect, validate and record; keep the JSON for the verdict.
    eprintln!("== validate");
    let mut validate = Command::new(&kiln);
    validate.args(["validate", "--json", "--db", &db]);
    if let Some(p) = &opts.platform {
        validate.args(["--platform", p]);
    }
    let output = validate.output().context("could not run kiln validate")?;
    std::io::Write::write_all(&mut std::io::stderr(), &output.stderr).ok();
    let validate_code = output.status.code().unwrap_or(128);
    std::fs::write(out_dir.join("validate.json"), &output.stdout).context("could not write validate.json")?;
    let verdict = parse_validate(&output.stdout);

    // 2. A short burn-in, recorded in the same inventory.
    eprintln!("== burn-in ({})", opts.burnin);
    let burnin_code = sh::status(Command::new(&kiln).args(["burnin", "--duration", &opts.burnin, "--db", &db]))?;

    // 3. The report of what was recorded.
    eprintln!("== report");
    let report_code = sh::status(Command::new(&kiln).args(["report", "--db", &db, "--node", &verdict.node]))?;

    // A host that is not expected to carry GPUs (the generic platform) and has
    // no NVIDIA driver skips the GPU tests legitimately: say so and go on.
    let burnin_ok = burnin_code == EXIT_OK || (burnin_code == EXIT_SKIPPED && !verdict.gpus_present);
    if burnin_code == EXIT_SKIPPED && burnin_ok {
        eprintln!("bringup: GPU burn-in skipped: this node has no NVIDIA GPU and its platform expects none");
    }
    eprintln!(
        "bringup: node {} platform {}: validate exit {validate_code}, burn-in exit {burnin_code}, report exit {report_code}",
        verdict.node, verdict.platform
    );
    let code = if validate_code != EXIT_OK {
        validate_code
    } else if !burnin_ok {
        burnin_code
    } else {
        report_code
    };
    eprintln!("bringup: {}", if code == 0 { "PASS" } else { "NOT READY" });
    Ok(u8::try_from(code).unwrap_or(1))
}

/// The few things bringup reads from `kiln validate --json`.
struct ValidateSummary {
    node: String,
    platform: String,
    /// Whether any GPU check judged something (pass, fail or error): a node
    /// with GPUs, or whose platform expects them. Only GPU checks that were
    /// all skipped ("no NVIDIA GPU on the PCI bus") make this false.
    gpus_present: bool,
}

fn parse_validate(bytes: &[u8]) -> ValidateSummary {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
    let gpus_present = match v["findings"].as_array() {
        Some(findings) => findings.iter().any(|f| {
            f["check"]
                .as_str()
                .is_some_and(|c| c.starts_with("gpu.") || c.starts_with("nvlink.") || c.starts_with("fabric."))
                && f["outcome"].as_str() != Some("skipped")
        }),
        // No readable verdict: assume the worst, a skipped burn-in is not ok.
        None => true,
    };
    ValidateSummary {
        node: v["node"].as_str().unwrap_or("localhost").to_string(),
        platform: v["platform"].as_str().unwrap_or("unknown").to_string(),
        gpus_present,
    }
}

/// `--rack FILE`: validate then burn in every node of the rack with the
/// release kiln, recorded in the inventory, then the status table.
fn run_rack(opts: &Options, kiln: PathBuf, rack: &std::path::Path) -> Result<u8> {
    if opts.platform.is_some() {
        bail!("--platform does not apply to --rack: the manifest names the platform");
    }
    let b = xtask::bringup_rack::RackBringup {
        kiln,
        rack: rack.to_path_buf(),
        db: opts.db.clone(),
        parallel: opts.parallel,
        burnin_duration: opts.burnin.clone(),
        rack_args: Vec::new(),
    };
    let outcome = xtask::bringup_rack::run(&b)?;
    print!("{}", outcome.table());
    if let Some(why) = &outcome.burnin_skipped {
        eprintln!("bringup: burn-in SKIPPED: {why}");
    }
    eprintln!(
        "bringup: rack {}: validate exit {}, burn-in {}; recorded in {}",
        rack.display(),
        outcome.validate_exit,
        outcome.burnin_exit.map_or_else(|| "not run".to_string(), |c| format!("exit {c}")),
        opts.db.display()
    );
    let verdict = match outcome.exit_code {
        0 => "PASS: every node validated and burned in",
        EXIT_SKIPPED => "NOT READY: validated, not burned in",
        _ => "NOT READY",
    };
    eprintln!("bringup: {verdict}");
    Ok(u8::try_from(outcome.exit_code).unwrap_or(1))
}
