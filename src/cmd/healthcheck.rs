//! `kiln healthcheck`: a fast, read-only check of this node (inspect + validate, no burn-in) for
//! Slurm's HealthCheckProgram; with `--drain` a failing node drains itself, and never resumes.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;

use crate::checks::{Outcome, Verdict};
use crate::cli::{DbArgs, HealthcheckArgs, ValidateArgs};
use crate::cmd::{node, validate};
use crate::exit;
use crate::handoff::{list_checks, short_hostname, slurm, ActionResult, Decision, Health, Scontrol};
use crate::report::findings::render_json;

pub fn run(args: &HealthcheckArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let node = match node::inspect(args.source.root.as_deref()) {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let vargs = ValidateArgs {
        source: args.source.clone(),
        db: DbArgs { db: None },
        platform: args.platform.clone(),
        spec: None,
        checks_dir: args.checks_dir.clone(),
        json: args.json,
        node: None,
        with_node: false,
    };
    let report = match validate::judge(&node, &vargs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kiln: error: {e}");
            return Ok(exit::BAD_INPUT);
        }
    };
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
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", render_json(&report)?).context("write the report")?;
    } else {
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
    if !args.drain || report.verdict == Verdict::Pass {
        return Ok(code);
    }
    let Some(name) = args.node_name.clone().or_else(short_hostname) else {
        eprintln!("kiln: error: cannot drain: the hostname could not be read (pass --node-name)");
        return Ok(code);
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
    for a in &actions {
        match &a.result {
            ActionResult::Done => writeln!(out, "drained: {}", a.what),
            ActionResult::AlreadyDone { why } => writeln!(out, "not drained again: {why}"),
            ActionResult::Failed { error } => {
                eprintln!("kiln: error: could not drain: {error}");
                Ok(())
            }
            ActionResult::WouldDo | ActionResult::Refused { .. } => Ok(()),
        }
        .context("write the report")?;
    }
    Ok(code)
}
