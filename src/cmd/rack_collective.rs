//! `kiln rack burnin` on a platform whose NVLink domain spans trays: the NCCL collective across
//! the trays after (or, with `--collective only`, instead of) each tray's own burn-in, recorded
//! as a rack run of kind `collective` with a finding per tray.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::burnin::collective::human;
use crate::checks::spec_load::LoadedSpec;
use crate::checks::Outcome as FindingOutcome;
use crate::cli::{CollectiveMode, RackRunArgs};
use crate::cmd::{CmdError, CmdResult};
use crate::exit;
use crate::fleet::{run_collective, CollectiveOutcome, CollectiveRun, Connector, RackOutcome, RemoteBinary, Step};
use crate::inventory::{now, CollectiveTrayRecord, Inventory, RackRunId, RackRunRecord};
use crate::rack::{RackManifest, RackNode};

/// The hooks of `--rank-hook NODE=die|hang`, each node one of `nodes`; anything else is a usage
/// error before any node is touched.
pub fn hooks(args: &RackRunArgs, nodes: &[&RackNode]) -> CmdResult<BTreeMap<String, String>> {
    Ok(hooks_per_rack(args, &[nodes])?.pop().unwrap_or_default())
}

/// `hooks` over many racks (`--site`): each rack's hooks, for the nodes of that name in it; a
/// node in no rack is a usage error before any node is touched.
pub fn hooks_per_rack(args: &RackRunArgs, racks: &[&[&RackNode]]) -> CmdResult<Vec<BTreeMap<String, String>>> {
    let mut out = vec![BTreeMap::new(); racks.len()];
    for h in &args.rank_hook {
        let (node, hook) = h
            .split_once('=')
            .ok_or_else(|| CmdError::Usage(format!("--rank-hook {h}: expected NODE=die or NODE=hang")))?;
        if !matches!(hook, "die" | "hang") {
            return Err(CmdError::Usage(format!("--rank-hook {h}: the hook is die or hang")).into());
        }
        let mut found = false;
        for (hooks, nodes) in out.iter_mut().zip(racks) {
            if nodes.iter().any(|n| n.name == node) {
                hooks.insert(node.to_string(), hook.to_string());
                found = true;
            }
        }
        if !found {
            return Err(CmdError::Usage(format!("--rank-hook {h}: {node} is not a node of this run")).into());
        }
    }
    Ok(out)
}

/// The rack platform's spec when its NVLink domain spans more than one tray: the collective
/// applies to it. The platform is the manifest's, else the one every tray's burn-in report
/// names.
fn multi_tray_spec<'a>(
    manifest: &RackManifest,
    specs: &'a [LoadedSpec],
    outcome: Option<&RackOutcome>,
) -> Option<&'a LoadedSpec> {
    let reported = || {
        let names: Vec<&str> =
            outcome?.nodes.iter().filter_map(|n| n.report.as_ref()?.get("platform")?.as_str()).collect();
        let first = *names.first()?;
        names.iter().all(|n| *n == first).then_some(first)
    };
    let name = manifest.rack.platform.as_deref().or_else(reported)?;
    let spec = crate::checks::detect::by_name(specs, name).ok()?;
    spec.platform.nvlink_domain.as_ref().filter(|d| d.trays > 1).map(|_| spec)
}

/// The node command's extra arguments for this rack (`rack::node_args`), and for a burn-in
/// that the rack collective follows, `--tests all,-collective`: each rank measures its tray's
/// GPUs alone before it joins the domain, so the tray's own collective in its burn-in would only
/// be run twice. Arguments after `--` that name `--tests` are left as they are.
pub fn node_args_for(args: &RackRunArgs, step: Step, manifest: &RackManifest, specs: &[LoadedSpec]) -> Vec<String> {
    let mut out = crate::cmd::rack::node_args(args, step);
    let follows = step == Step::Burnin
        && args.collective != CollectiveMode::Off
        && multi_tray_spec(manifest, specs, None).is_some();
    let named = args.node_args.iter().any(|a| a == "--tests" || a.starts_with("--tests="));
    if follows && !named {
        out.push("--tests".into());
        out.push("all,-collective".into());
    }
    out
}

/// Whether this step leaves out the per-tray burn-in (`--collective only`). Only where the
/// collective applies: otherwise a usage error, before any node is touched.
pub fn only(args: &RackRunArgs, step: Step, manifest: &RackManifest, specs: &[LoadedSpec]) -> CmdResult<bool> {
    if step != Step::Burnin || args.collective != CollectiveMode::Only {
        return Ok(false);
    }
    if multi_tray_spec(manifest, specs, None).is_none() {
        return Err(CmdError::Usage(
            "--collective only: the manifest's [rack] platform must name a platform whose NVLink domain spans trays"
                .into(),
        )
        .into());
    }
    Ok(true)
}

/// What the collective needs beside the rack step's own settings.
pub struct After<'a> {
    pub args: &'a RackRunArgs,
    pub step: Step,
    pub manifest: &'a RackManifest,
    pub nodes: &'a [&'a RackNode],
    pub specs: &'a [LoadedSpec],
    pub binary: &'a RemoteBinary,
    pub hooks: &'a BTreeMap<String, String>,
}

/// Runs the collective after a `burnin` step where it applies, records it (a rack run of kind
/// `collective`) and folds it into `outcome` and its exit code.
pub fn after_step(
    a: &After<'_>,
    connector: &dyn Connector,
    inventory: Option<&mut Inventory>,
    outcome: &mut RackOutcome,
) {
    if a.step != Step::Burnin || a.args.collective == CollectiveMode::Off {
        return;
    }
    let Some(spec) = multi_tray_spec(a.manifest, a.specs, Some(outcome)) else { return };
    let limits = spec.platform.burnin.as_ref().and_then(|b| b.collective.as_ref());
    // Rank 0 is the lowest tray; trays without a number follow, by name.
    let mut trays: Vec<&RackNode> = a.nodes.to_vec();
    trays.sort_by(|x, y| (x.tray.is_none(), x.tray, &x.name).cmp(&(y.tray.is_none(), y.tray, &y.name)));
    let mut rank_args = Vec::new();
    if let Some(l) = limits {
        rank_args.push("--sizes-mib".to_string());
        rank_args.push(l.sizes_mib.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
        rank_args.extend(["--iterations".into(), l.iterations.to_string(), "--warmup".into(), l.warmup.to_string()]);
    }
    let run = CollectiveRun {
        nodes: &trays,
        binary: a.binary,
        push_timeout: Duration::from_secs(a.args.timeout.max(1)),
        deadline: Duration::from_secs(a.args.rank_deadline.max(1)),
        limits,
        telemetry: spec.platform.burnin.as_ref().map(|b| &b.telemetry),
        hooks: a.hooks,
    };
    let started = now();
    let mut c = run_collective(&run, connector, &rank_args);
    if let Some(inv) = inventory {
        let node_status = c.node_status();
        let gate = c.gate();
        let record = RackRunRecord {
            rack: &a.manifest.rack.id,
            kind: "collective",
            started_at: started,
            finished_at: now(),
            findings: &c.findings,
            exit_code: c.exit_code,
            node_status: &node_status,
            actor: "kiln rack burnin",
            gate: &gate,
        };
        let recorded = inv.record_rack_run(&record).map_err(|e| crate::error::chain(&e)).and_then(|id| {
            c.rack_run_id = Some(id.0);
            record_trays(inv, &a.manifest.rack.id, id, &spec.platform.name, started, &mut c)
        });
        if let Err(why) = recorded {
            tracing::warn!(rack = %a.manifest.rack.id, error = %why, "collective not recorded");
            c.record_error = Some(why);
            if matches!(c.exit_code, exit::OK | exit::CHECK_ERROR | exit::SKIPPED) {
                c.exit_code = exit::DATABASE;
            }
        }
    }
    outcome.exit_code = if outcome.nodes.is_empty() { c.exit_code } else { worse(outcome.exit_code, c.exit_code) };
    outcome.collective = Some(c);
}

/// Records each tray's rank under the collective's rack run (a run of kind `collective` per
/// tray, with its findings, results and telemetry), each in its own transaction: a tray that
/// cannot be recorded loses nothing recorded before it, and the others are still tried. The
/// trays not recorded, with why.
fn record_trays(
    inv: &mut Inventory,
    rack: &str,
    rack_run: RackRunId,
    platform: &str,
    started: time::OffsetDateTime,
    c: &mut CollectiveOutcome,
) -> Result<(), String> {
    let mut failed = Vec::new();
    let mut run_ids = Vec::new();
    for t in &c.trays {
        let findings = c.tray_findings(&t.node);
        let verdict = t.verdict(&findings);
        let findings: Vec<_> = findings.into_iter().cloned().collect();
        let record = CollectiveTrayRecord {
            rack,
            rack_run,
            node: &t.node,
            rank: t.rank,
            status: t.status.as_str(),
            reason: t.reason.as_deref(),
            killed: t.killed,
            duration_ms: t.duration_ms,
            report: t.report.as_ref(),
            findings: &findings,
            verdict,
            exit_code: t.exit_code(verdict),
            platform: Some(platform),
            started_at: started,
            finished_at: started + Duration::from_millis(t.duration_ms),
            actor: "kiln rack burnin",
        };
        match inv.record_collective_tray(&record) {
            Ok(id) => run_ids.push(Some(id.0)),
            Err(e) => {
                failed.push(format!("{}: {}", t.node, crate::error::chain(&e)));
                run_ids.push(None);
            }
        }
    }
    for (t, id) in c.trays.iter_mut().zip(run_ids) {
        t.run_id = id;
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(format!("trays not recorded: {}", failed.join("; "))),
    }
}

/// The exit code that says more of two: a failure, then an unreachable peer, the database, a
/// check that could not run, a skip, a pass.
fn worse(a: i32, b: i32) -> i32 {
    const ORDER: [i32; 6] =
        [exit::CHECK_FAILED, exit::PEER, exit::DATABASE, exit::CHECK_ERROR, exit::SKIPPED, exit::OK];
    let rank = |c: i32| ORDER.iter().position(|o| *o == c).unwrap_or(0);
    if rank(a) <= rank(b) {
        a
    } else {
        b
    }
}

/// The collective's lines in the text output, after the per-tray table.
pub fn print(outcome: &RackOutcome, db: &std::path::Path) {
    let Some(c) = &outcome.collective else { return };
    crate::terminal::println(format_args!(
        "collective over {} trays of rack {} (rank deadline {} s): exit {}",
        c.ranks, outcome.rack, c.deadline_s, c.exit_code
    ));
    for t in &c.trays {
        crate::terminal::println(format_args!(
            "  rank {:<3} {:<16} {:<10} {}",
            t.rank,
            t.node,
            t.status.as_str(),
            t.reason.as_deref().unwrap_or("")
        ));
    }
    for f in &c.figures {
        crate::terminal::println(format_args!(
            "  {:<10} {:>8}  busbw {:>7.1} GB/s  algbw {:>7.1} GB/s  ({} GPUs)",
            f.op.as_str(),
            human(f.bytes),
            f.busbw_gbps,
            f.algbw_gbps,
            f.gpus
        ));
    }
    let sampled = c.trays.iter().filter(|t| t.report.as_ref().is_some_and(|r| !r.telemetry.is_empty())).count();
    if sampled > 0 {
        crate::terminal::println(format_args!("  telemetry sampled on {sampled} of {} trays", c.trays.len()));
    }
    // A telemetry check that could not judge (no clocks-event reasons, ECC off) is in the JSON
    // and the inventory; the text keeps to what failed or could not be read.
    let shown = |f: &&crate::checks::Finding| {
        f.outcome != FindingOutcome::Pass
            && f.check != "burnin.collective.rank"
            && !(f.outcome == FindingOutcome::Skipped && f.check.starts_with("burnin.telemetry."))
    };
    for f in c.findings.iter().filter(shown) {
        crate::terminal::println(format_args!("  {} {}: {}", f.outcome.as_str(), f.check, f.message));
    }
    if let Some(id) = c.rack_run_id {
        crate::terminal::println(format_args!("collective recorded in {} (rack run {id})", db.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{NodeStatus, RankOutcome};

    /// The second of two trays that claim rank 0 is refused by the database: the tray before
    /// it and the one after stay recorded, and the refusal names the tray.
    #[test]
    fn a_tray_that_cannot_be_recorded_loses_nothing_recorded_and_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open");
        let status = BTreeMap::new();
        let rack_run = inv
            .record_rack_run(&RackRunRecord {
                rack: "r1",
                kind: "collective",
                started_at: now(),
                finished_at: now(),
                findings: &[],
                exit_code: exit::SKIPPED,
                node_status: &status,
                actor: "kiln rack burnin",
                gate: &BTreeMap::new(),
            })
            .expect("rack run");
        let tray = |node: &str, rank: u32| RankOutcome {
            node: node.into(),
            rank,
            status: NodeStatus::Skipped,
            reason: Some("no NCCL".into()),
            duration_ms: 10,
            killed: false,
            report: None,
            run_id: None,
        };
        let mut c = CollectiveOutcome {
            ranks: 2,
            exit_code: exit::SKIPPED,
            deadline_s: 60,
            trays: vec![tray("node01", 0), tray("node02", 0), tray("node03", 1)],
            figures: Vec::new(),
            findings: Vec::new(),
            rack_run_id: Some(rack_run.0),
            record_error: None,
        };
        let err = record_trays(&mut inv, "r1", rack_run, "gb200-nvl72-tray", now(), &mut c).expect_err("refused");
        assert!(err.starts_with("trays not recorded: node02: "), "{err}");
        let ids: Vec<bool> = c.trays.iter().map(|t| t.run_id.is_some()).collect();
        assert_eq!(ids, [true, false, true]);
        let recorded: Vec<String> =
            inv.collective_trays(rack_run).expect("trays").into_iter().map(|t| t.node).collect();
        assert_eq!(recorded, ["node01", "node03"]);
        assert_eq!(inv.rack_runs("r1").expect("runs").len(), 1, "the rack run stays");
    }

    #[test]
    fn the_worse_exit_code_wins() {
        assert_eq!(worse(exit::OK, exit::SKIPPED), exit::SKIPPED);
        assert_eq!(worse(exit::SKIPPED, exit::CHECK_FAILED), exit::CHECK_FAILED);
        assert_eq!(worse(exit::PEER, exit::CHECK_ERROR), exit::PEER);
        assert_eq!(worse(exit::OK, exit::OK), exit::OK);
    }
}
