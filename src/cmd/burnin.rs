//! `kiln burnin`: run the burn-in on this node and report it; the exit code is the verdict.

use crate::burnin::options::{self, BurninOptions, InjectFault};
use crate::burnin::render;
use crate::burnin::run::{self, Inspected, RunContext};
use crate::burnin::thresholds::Thresholds;
use crate::checks::select::SpecChoice;
use crate::checks::Verdict;
use crate::cli::BurninArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::exit;
use crate::hw;
use crate::inventory::{Inventory, RunLifecycle, RunRecord};
use crate::lifecycle::RunKind;
use crate::model::Node;
use crate::notice::Notices;

/// Runs `kiln burnin`; its exit code:
/// any fail => CHECK_FAILED; else any error => CHECK_ERROR; else a requested
/// test that could not run (no driver, no GPU, no stress-ng, no NCCL) => SKIPPED;
/// else OK. A run that did not run never exits 0. Progress lines go to
/// `notices` (shown on a terminal only), never with `--json`.
pub fn burnin(args: BurninArgs, notices: &dyn Notices) -> CmdResult {
    let opts = parse(&args)?;
    let started = crate::inventory::now();
    // Inspect first, through the same source selection as `kiln validate`;
    // the GPU source's NVML session (or capture) also gives the telemetry.
    let (tree, gpus) = hw::open(args.source.root.as_deref())?;
    let node = hw::inspect(tree.as_ref(), gpus.as_ref());
    let choice = SpecChoice {
        spec_file: args.spec.as_deref(),
        platform: args.platform.as_deref(),
        checks_dir: args.checks_dir.as_deref(),
    };
    let thresholds = Thresholds::select(&node, &choice)?;
    let show = !args.json;
    let progress = move |line: &str| {
        if show {
            notices.progress(&format!("kiln burnin: {line}"));
        }
    };
    let ctx = RunContext { host_memory_percent: args.host_memory };
    let input = Inspected { node: &node, gpus: gpus.telemetry(), thresholds: &thresholds };
    let report = run::run(&opts, &ctx, &input, &progress)?;
    if args.json {
        crate::terminal::json(&report)?;
    } else {
        crate::terminal::print(&render::text(&report));
    }
    let code = exit_code(report.verdict, report.incomplete);
    if let Some(db) = &args.db.db {
        record(db, &node, &report, code, started)?;
    }
    Ok(Outcome::exit(code))
}

/// Records the burn-in with the inspection it judged. An incomplete run (a
/// requested test could not run) is kept but does not move the node's
/// lifecycle: a burn-in that did not burn in is not `burned_in`.
fn record(
    db: &std::path::Path,
    node: &Node,
    report: &crate::burnin::report::BurninReport,
    code: i32,
    started: time::OffsetDateTime,
) -> CmdResult<()> {
    let run = RunRecord {
        platform: Some(&report.platform),
        findings: &report.findings,
        verdict: Some(report.verdict),
        exit_code: code,
        started_at: started,
        finished_at: crate::inventory::now(),
        lifecycle: if report.incomplete { RunLifecycle::Leave } else { RunLifecycle::FromOutcome },
        ..RunRecord::new(RunKind::Burnin, node, "kiln burnin")
    };
    let id = Inventory::open(db).and_then(|mut inv| inv.record_burnin_run(&run, report)).map_err(|source| {
        CmdError::InventoryDoing { doing: format!("could not record the burn-in in {}", db.display()), source }
    })?;
    tracing::info!(db = %db.display(), run = id.0, "burn-in recorded");
    Ok(())
}

/// The exit code of a judged run.
pub fn exit_code(verdict: Verdict, incomplete: bool) -> i32 {
    match verdict {
        Verdict::Fail => exit::CHECK_FAILED,
        Verdict::Error => exit::CHECK_ERROR,
        Verdict::Pass if incomplete => exit::SKIPPED,
        Verdict::Pass => exit::OK,
    }
}

fn parse(args: &BurninArgs) -> Result<BurninOptions, options::OptionsError> {
    Ok(BurninOptions {
        duration: options::parse_duration(&args.duration)?,
        tests: options::parse_tests(&args.tests)?,
        gpus: options::parse_gpus(&args.gpus)?,
        gemm_dtype: args.gemm_dtype,
        gemm_engine: args.gemm_engine,
        gemm_size: args.gemm_size,
        sample_period: std::time::Duration::from_secs(1),
        inject_fault: match &args.inject_fault {
            Some(s) => Some(InjectFault::parse(s).ok_or_else(|| options::OptionsError::Fault(s.clone()))?),
            None => None,
        },
        collective_named: options::names(&args.tests, options::TestKind::Collective),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_never_say_ok_for_a_run_that_did_not_run() {
        assert_eq!(exit_code(Verdict::Pass, false), exit::OK);
        assert_eq!(exit_code(Verdict::Pass, true), exit::SKIPPED);
        assert_eq!(exit_code(Verdict::Fail, true), exit::CHECK_FAILED);
        assert_eq!(exit_code(Verdict::Error, false), exit::CHECK_ERROR);
    }
}
