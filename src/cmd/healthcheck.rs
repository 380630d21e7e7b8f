//! `kiln healthcheck`: a fast, read-only check of this node (inspect + validate, no burn-in) for
//! Slurm's HealthCheckProgram; with `--drain` a failing node drains itself, and never resumes.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;

use crate::checks::{Outcome, Verdict};
use crate::cli::{DbArgs, HealthcheckArgs, ValidateArgs};
use crate::cmd::{node, validate, CmdError, CmdResult};
use crate::handoff::{list_checks, short_hostname, slurm, ActionResult, Decision, Health, Scontrol};
use crate::report::findings::render_json;

pub fn run(args: &HealthcheckArgs) -> CmdResult {
    let started = Instant::now();
    let node = node::inspect(args.source.root.as_deref())?;
    let vargs = ValidateArgs {
        source: args.source.clone(),
        db: DbArgs { db: None },
        platform: args.platform.clone(),
        spec: None,
        checks_dir: args.checks_dir.clone(),
        json: args.json,
        node: None,
        with_node: false,
        bom: None,
    };
    let report = validate::judge(&node, &vargs)?;
    let code = validate::exit_code(report.verdict);
    let ids = |outcome: Outcome| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for f in report.findings.iter().filter(|f| f.outcome == outcome) {
            if !v.contains(&f.check) {
                v.push(f.check.clone());
            }
        }
        v
    };
    let elapsed = started.elapsed().as_secs_f64();
    let mut out = crate::terminal::stdout();
    if args.json {
        writeln!(out, "{}", render_json(&report)?).context("write the report")?;
    } else {
        let mut out = crate::terminal::Text(&mut out);
        let failed = report.findings.iter().filter(|f| f.outcome == Outcome::Fail).count();
        let errors = report.findings.iter().filter(|f| f.outcome == Outcome::Error).count();
        writeln!(
            out,
            "kiln healthcheck: {} on {} ({}): {} checks, {failed} failed, {errors} could not run, {elapsed:.2} s",
            report.verdict.as_str(),
            node.hostname,
            report.platform,
            report.findings.len()
        )
        .context("write the report")?;
        for f in report.findings.iter().filter(|f| matches!(f.outcome, Outcome::Fail | Outcome::Error)) {
            writeln!(out, "  {} {} {}: {}", f.outcome.as_str(), f.check, f.component.label(), f.message)
                .context("write the report")?;
            if let Some(a) = &f.action {
                writeln!(out, "      action: {a}").context("write the report")?;
            }
        }
    }
    let outcome = crate::cmd::Outcome::exit(code);
    if !args.drain || report.verdict == Verdict::Pass {
        return Ok(outcome);
    }
    // A drain that fails is said beside the verdict; the exit code stays the verdict's.
    let Some(name) = args.node_name.clone().or_else(short_hostname) else {
        return Ok(outcome.with_error(CmdError::DrainNoName));
    };
    let health = match report.verdict {
        Verdict::Fail => {
            let checks = ids(Outcome::Fail);
            Health::Fail { reason: format!("healthcheck: {}", list_checks(&checks)), checks, run: None }
        }
        _ => Health::Hold {
            run: None,
            reason: format!("healthcheck could not check {}", list_checks(&ids(Outcome::Error))),
        },
    };
    let decision = Decision { node: name, state: None, health };
    let (actions, _) = slurm::hand_off(&Scontrol::new(&args.scontrol), &decision, false);
    let mut outcome = outcome;
    for a in &actions {
        match &a.result {
            ActionResult::Done => writeln!(crate::terminal::Text(&mut out), "drained: {}", a.what),
            ActionResult::AlreadyDone { why } => writeln!(crate::terminal::Text(&mut out), "not drained again: {why}"),
            ActionResult::Failed { error } => {
                outcome = outcome.with_error(CmdError::Drain { error: error.clone() });
                Ok(())
            }
            ActionResult::WouldDo | ActionResult::Refused { .. } => Ok(()),
        }
        .context("write the report")?;
    }
    Ok(outcome)
}
