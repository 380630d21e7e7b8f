//! The controller side of the collective burn-in: one `kiln nccl-rank` per tray of an NVLink
//! domain over the SSH fan-out, rank 0's NCCL unique id relayed to the others on their stdin,
//! every rank under a hard deadline, and a rank that dies or hangs named while every other
//! rank's process group is killed, so nothing is left on any tray.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::node_binary::RemoteBinary;
use super::outcome::NodeStatus;
use super::push::{run_current, verified, VERIFY_EXIT};
use super::transport::{Answer, CommandOutput, Connector, RemoteExit, TransportError};
use crate::burnin::collective::{domain_figures, judge, DomainFigure, RankReport, Reply, Said};
use crate::burnin::judge::judge_telemetry_with;
use crate::burnin::xid::XidCatalog;
use crate::checks::burnin_spec::{CollectiveLimits, TelemetryLimits};
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::exit;
use crate::rack::RackNode;

/// One collective over (part of) a rack.
pub struct CollectiveRun<'a> {
    /// The trays, in rank order (rank 0 first).
    pub nodes: &'a [&'a RackNode],
    pub binary: &'a RemoteBinary,
    /// Limit for pushing kiln to a tray before its rank starts.
    pub push_timeout: Duration,
    /// Each rank's hard deadline, from its start: past it the rank's process group is killed
    /// on its tray and the rank is named as hung.
    pub deadline: Duration,
    pub limits: Option<&'a CollectiveLimits>,
    /// The platform's telemetry budgets (`[burnin.telemetry]`), by which each tray's sampled
    /// telemetry is judged as a burn-in judges its own; `None`: no NVLink error or PCIe replay
    /// is allowed.
    pub telemetry: Option<&'a TelemetryLimits>,
    /// Test aid: a `--rank-hook` per node (`die`, `hang`), passed to that node's rank.
    pub hooks: &'a BTreeMap<String, String>,
}

/// How one tray's rank ended.
#[derive(Debug, Clone, Serialize)]
pub struct RankOutcome {
    pub node: String,
    pub rank: u32,
    pub status: NodeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
    /// kiln killed this rank's process group on its tray (another rank failed, or its deadline
    /// passed).
    pub killed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<RankReport>,
    /// The tray's run of kind `collective` in the inventory, once recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
}

/// The whole collective: per tray, the domain's figures, the findings and the exit code.
#[derive(Debug, Clone, Serialize)]
pub struct CollectiveOutcome {
    pub ranks: u32,
    pub exit_code: i32,
    pub deadline_s: u64,
    pub trays: Vec<RankOutcome>,
    pub figures: Vec<DomainFigure>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack_run_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
}

impl CollectiveOutcome {
    /// Each tray's status, for the rack run.
    pub fn node_status(&self) -> BTreeMap<String, String> {
        self.trays.iter().map(|t| (t.node.clone(), t.status.as_str().to_string())).collect()
    }

    /// The trays a rank failure, an outlier or their own GPUs' telemetry (a fatal Xid, NVLink
    /// errors past the budget) names, with why: moved to `failed` when the run is recorded.
    /// Ranks kiln stopped because another failed, and skipped ranks, are not, unless their
    /// telemetry says so.
    pub fn gate(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for f in self.findings.iter().filter(|f| f.outcome == Outcome::Fail || f.outcome == Outcome::Error) {
            for t in self.trays.iter().filter(|t| names_tray(f, &t.node)) {
                // A rank kiln stopped because another failed is not failed for it; what its
                // own GPUs said still counts.
                if f.component.kind == "node" && t.killed_by_others() {
                    continue;
                }
                out.entry(t.node.clone()).or_insert_with(|| format!("rack collective failed: {}", f.check));
            }
        }
        out
    }
}

impl RankOutcome {
    /// The tray's own verdict, from `findings` (those about it, `tray_findings`): `None` for a
    /// rank that was skipped or that kiln stopped because another failed, unless one of its
    /// findings failed or erred (its GPUs' telemetry), as a run that judged nothing of the tray.
    pub fn verdict(&self, findings: &[&Finding]) -> Option<Verdict> {
        let own: Vec<Finding> = findings
            .iter()
            .filter(|f| !(f.check == "burnin.collective.rank" && self.killed_by_others()))
            .map(|f| (*f).clone())
            .collect();
        let verdict = Verdict::of(&own);
        let judged_nothing = self.status == NodeStatus::Skipped || self.killed_by_others();
        (!judged_nothing || verdict != Verdict::Pass).then_some(verdict)
    }

    /// The exit code `kiln rack burnin` would give for this tray alone: its verdict first, then
    /// how its rank ended (docs/exit-codes.md).
    pub fn exit_code(&self, verdict: Option<Verdict>) -> i32 {
        match (verdict, self.status) {
            (Some(Verdict::Fail), _) | (_, NodeStatus::Fail) => exit::CHECK_FAILED,
            (_, NodeStatus::PeerError) => exit::PEER,
            (Some(Verdict::Error), _) | (_, NodeStatus::Error) => exit::CHECK_ERROR,
            (_, NodeStatus::Skipped) => exit::SKIPPED,
            (_, NodeStatus::Pass) => exit::OK,
        }
    }

    fn killed_by_others(&self) -> bool {
        self.killed
            && self.status == NodeStatus::Error
            && self.reason.as_deref().is_some_and(|r| r.starts_with("stopped"))
    }
}

/// What every rank thread shares: the id once rank 0 said it, why the run stopped early, and
/// each running rank's process group.
#[derive(Default)]
struct Shared {
    id: Option<String>,
    abort: Option<String>,
    /// The first rank that failed (died, hung, unreachable): why the others were killed.
    failure: Option<String>,
    pgids: HashMap<usize, i32>,
    running: HashSet<usize>,
    killed: HashSet<usize>,
    /// Ranks past their push (or failed before it): every rank starts only once all are.
    ready: usize,
}

struct Rendezvous {
    state: Mutex<Shared>,
    changed: Condvar,
}

impl Rendezvous {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Says rank `i` is ready to start and waits for every other rank, at most until `until`:
    /// a collective needs them all, so none starts while another is still being pushed kiln.
    fn all_ready(&self, n: usize, until: Instant) {
        let mut s = self.lock();
        s.ready += 1;
        self.changed.notify_all();
        while s.ready < n {
            let now = Instant::now();
            if now >= until {
                return;
            }
            s = self.changed.wait_timeout(s, until - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits for the id or an abort, at most until `until`.
    fn reply(&self, until: Instant) -> Reply {
        let mut s = self.lock();
        loop {
            if let Some(why) = &s.abort {
                return Reply::Abort(why.clone());
            }
            if let Some(id) = &s.id {
                return Reply::Id(id.clone());
            }
            let now = Instant::now();
            if now >= until {
                return Reply::Abort("rank 0 gave no NCCL id before the deadline".into());
            }
            s = self.changed.wait_timeout(s, until - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Runs the collective: every rank at once (a collective needs them all), each pushed kiln if
/// needed, then `kiln nccl-rank --rank R --ranks N` under `deadline`.
pub fn run_collective(run: &CollectiveRun<'_>, connector: &dyn Connector, rank_args: &[String]) -> CollectiveOutcome {
    let n = run.nodes.len();
    let rv = Rendezvous { state: Mutex::new(Shared::default()), changed: Condvar::new() };
    let trays: Vec<RankOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let rv = &rv;
                scope.spawn(move || run_one(run, connector, rank_args, rv, i))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                h.join().unwrap_or_else(|_| RankOutcome {
                    node: run.nodes[i].name.clone(),
                    rank: i as u32,
                    status: NodeStatus::Error,
                    reason: Some("the controller's thread for this rank panicked".into()),
                    duration_ms: 0,
                    killed: false,
                    report: None,
                    run_id: None,
                })
            })
            .collect()
    });
    let mut findings = rank_findings(&trays);
    findings.extend(telemetry_findings(&trays, run.telemetry));
    let ran: Vec<(&str, &RankReport)> = trays
        .iter()
        .filter_map(|t| t.report.as_ref().filter(|r| !r.results.is_empty()).map(|r| (t.node.as_str(), r)))
        .collect();
    let everyone_ran =
        ran.len() == n && trays.iter().all(|t| t.status == NodeStatus::Pass || t.status == NodeStatus::Fail);
    let figures =
        if everyone_ran { domain_figures(&ran.iter().map(|(_, r)| *r).collect::<Vec<_>>()) } else { Vec::new() };
    if everyone_ran {
        findings.extend(judge(&ran, run.limits));
    }
    let exit_code = exit_code(&trays, &findings);
    CollectiveOutcome {
        ranks: n as u32,
        exit_code,
        deadline_s: run.deadline.as_secs(),
        trays,
        figures,
        findings,
        rack_run_id: None,
        record_error: None,
    }
}

/// Each tray's sampled telemetry judged by the burn-in's telemetry judge (throttling, ECC, row
/// remaps, Xids, the NVLink error and PCIe replay budgets, queries that failed) over the time
/// its rank ran. Each finding names its tray first, in its message and its component's name
/// (`node03 NVIDIA GB200`), as `tray_findings` and the gate find it.
fn telemetry_findings(trays: &[RankOutcome], limits: Option<&TelemetryLimits>) -> Vec<Finding> {
    let sampled: Vec<(&RankOutcome, &RankReport)> =
        trays.iter().filter_map(|t| t.report.as_ref().filter(|r| !r.telemetry.is_empty()).map(|r| (t, r))).collect();
    if sampled.is_empty() {
        return Vec::new();
    }
    let strict = TelemetryLimits {
        nvlink_error_budget: 0,
        pcie_replays_per_minute: 0.0,
        reason: "the platform spec has no [burnin.telemetry]: no error allowed".into(),
    };
    let limits = limits.unwrap_or(&strict);
    let catalog = match XidCatalog::builtin() {
        Ok(c) => c,
        Err(e) => {
            return vec![Finding::new(
                "burnin.telemetry.xid",
                Outcome::Error,
                Severity::Critical,
                Component::node(),
                format!("the trays' telemetry was not judged: {}", crate::error::chain(&e)),
            )];
        }
    };
    let mut out = Vec::new();
    for (t, r) in sampled {
        let minutes = t.duration_ms as f64 / 60_000.0;
        for mut f in judge_telemetry_with(&r.telemetry, limits, &catalog, minutes) {
            let what = f.component.name.take().unwrap_or_else(|| f.component.kind.clone());
            f.component.name = Some(format!("{} {what}", t.node));
            f.message = format!("{}: {}", t.node, f.message);
            out.push(f);
        }
    }
    out
}

impl CollectiveOutcome {
    /// The findings about one tray: its rank, its outlier verdicts, its GPUs' telemetry.
    pub fn tray_findings(&self, node: &str) -> Vec<&Finding> {
        self.findings.iter().filter(|f| names_tray(f, node)).collect()
    }
}

/// Whether `f` is about tray `node`: a node finding of that name, or one of its GPUs
/// (`node03 NVIDIA GB200`, as `telemetry_findings` names them).
fn names_tray(f: &Finding, node: &str) -> bool {
    match f.component.name.as_deref() {
        Some(name) if f.component.kind == "node" => name == node,
        Some(name) if f.component.kind == "gpu" => name.strip_prefix(node).is_some_and(|rest| rest.starts_with(' ')),
        _ => false,
    }
}

/// One finding per tray: its rank's own result, or why it has none.
fn rank_findings(trays: &[RankOutcome]) -> Vec<Finding> {
    trays
        .iter()
        .map(|t| {
            let outcome = match t.status {
                NodeStatus::Pass => Outcome::Pass,
                NodeStatus::Fail => Outcome::Fail,
                NodeStatus::Skipped => Outcome::Skipped,
                NodeStatus::Error | NodeStatus::PeerError => Outcome::Error,
            };
            let severity = match outcome {
                Outcome::Pass | Outcome::Skipped => Severity::Info,
                _ => Severity::Critical,
            };
            let component = Component { kind: "node".into(), name: Some(t.node.clone()), ..Default::default() };
            let said = t.reason.clone().unwrap_or_else(|| "ran".into());
            let mut f = Finding::new(
                "burnin.collective.rank",
                outcome,
                severity,
                component,
                format!("{} (rank {}): {said}", t.node, t.rank),
            );
            if let Some(best) = t.report.as_ref().and_then(|r| r.results.iter().max_by_key(|s| s.bytes)) {
                f = f.actual(format!("{} {:.1} GB/s bus bandwidth", best.op.as_str(), best.busbw_gbps));
            }
            if matches!(outcome, Outcome::Fail | Outcome::Error) && !t.killed_by_others() {
                f = f.action(format!(
                    "check {} (`kiln rack status`, its GPUs with `kiln validate`, NCCL installed), then rerun",
                    t.node
                ));
            }
            f
        })
        .collect()
}

/// 1 when a rank, a figure or a tray's telemetry failed, 6 for an unreachable tray, 3 when a
/// rank could not run or was stopped (or a tray's telemetry could not be judged), 7 when ranks
/// were skipped (no NCCL, no driver), 0 only when every rank passed.
fn exit_code(trays: &[RankOutcome], findings: &[Finding]) -> i32 {
    let any = |s: NodeStatus| trays.iter().any(|t| t.status == s);
    if any(NodeStatus::Fail) || findings.iter().any(|f| f.outcome == Outcome::Fail) {
        exit::CHECK_FAILED
    } else if any(NodeStatus::PeerError) {
        exit::PEER
    } else if any(NodeStatus::Error) || findings.iter().any(|f| f.outcome == Outcome::Error) {
        exit::CHECK_ERROR
    } else if any(NodeStatus::Skipped) || trays.is_empty() {
        exit::SKIPPED
    } else {
        exit::OK
    }
}

fn run_one(
    run: &CollectiveRun<'_>,
    connector: &dyn Connector,
    rank_args: &[String],
    rv: &Rendezvous,
    i: usize,
) -> RankOutcome {
    let node = run.nodes[i];
    let t0 = Instant::now();
    let done = |status: NodeStatus, reason: Option<String>, report: Option<RankReport>, killed: bool| RankOutcome {
        node: node.name.clone(),
        rank: i as u32,
        status,
        reason,
        duration_ms: t0.elapsed().as_millis() as u64,
        killed,
        report,
        run_id: None,
    };
    rv.lock().running.insert(i);
    let ready_by = t0 + run.push_timeout + Duration::from_secs(30);
    let outcome = match connector.connect(node) {
        Err(e) => {
            rv.all_ready(run.nodes.len(), t0);
            done(NodeStatus::PeerError, Some(e.to_string()), None, false)
        }
        Ok(mut t) => {
            // kiln current on the tray first (pushed when missing or different), then the rank
            // itself, run only on that binary, its stdin kept for the id.
            let kiln = run.binary.remote_path.clone();
            let pushed = run_current(t.as_mut(), run.binary, &[kiln.clone(), "--version".into()], run.push_timeout);
            rv.all_ready(run.nodes.len(), ready_by);
            match pushed {
                Err((e, _)) => done(NodeStatus::PeerError, Some(e.to_string()), None, false),
                Ok(_) if rv.lock().abort.is_some() => {
                    let why = rv.lock().abort.clone().unwrap_or_default();
                    done(NodeStatus::Skipped, Some(format!("not started: {why}")), None, false)
                }
                Ok(_) => {
                    let mut argv = vec![
                        kiln,
                        "nccl-rank".into(),
                        "--json".into(),
                        "--rank".into(),
                        i.to_string(),
                        "--ranks".into(),
                        run.nodes.len().to_string(),
                    ];
                    argv.extend(rank_args.iter().cloned());
                    if let Some(hook) = run.hooks.get(&node.name) {
                        argv.push("--rank-hook".into());
                        argv.push(hook.clone());
                    }
                    let script = verified(&run.binary.remote_path, &run.binary.expected(), &argv);
                    let until = t0 + run.deadline;
                    let mut answered = false;
                    let mut answer = |stderr: &[u8]| -> Option<Answer> {
                        let mut waiting = false;
                        for said in Said::all_in(stderr) {
                            match said {
                                Said::Pgid(p) => {
                                    let late = {
                                        let mut s = rv.lock();
                                        s.pgids.insert(i, p);
                                        s.failure.is_some() && !s.killed.contains(&i)
                                    };
                                    if late {
                                        rv.lock().killed.insert(i);
                                        kill_group(connector, node, p);
                                    }
                                }
                                Said::Id(hex) if i == 0 => {
                                    let mut s = rv.lock();
                                    if s.id.is_none() {
                                        s.id = Some(hex);
                                        rv.changed.notify_all();
                                    }
                                }
                                Said::Id(_) => {}
                                Said::Waiting => waiting = true,
                            }
                        }
                        if waiting && i != 0 && !answered {
                            answered = true;
                            let reply = rv.reply(until);
                            return Some(Answer { header: reply.line().into_bytes(), body: None });
                        }
                        None
                    };
                    let result = t.run_answering(&script, run.deadline, &mut answer);
                    // What a rank said as it ended reaches the controller with its output, not
                    // through `answer`: rank 0's id there still counts, or the others would be
                    // told that it never gave one.
                    if let (Ok(out), 0) = (&result, i) {
                        let said = Said::all_in(&out.stderr).into_iter().find_map(|s| match s {
                            Said::Id(hex) => Some(hex),
                            _ => None,
                        });
                        if let Some(hex) = said {
                            let mut s = rv.lock();
                            if s.id.is_none() {
                                s.id = Some(hex);
                                rv.changed.notify_all();
                            }
                        }
                    }
                    judge_rank(connector, node, i, result, run.deadline, rv, &done)
                }
            }
        }
    };
    finish(run, connector, rv, i, &outcome);
    outcome
}

type Done<'a> = dyn Fn(NodeStatus, Option<String>, Option<RankReport>, bool) -> RankOutcome + 'a;

/// A rank's status from how its command ended.
fn judge_rank(
    connector: &dyn Connector,
    node: &RackNode,
    i: usize,
    result: Result<CommandOutput, TransportError>,
    deadline: Duration,
    rv: &Rendezvous,
    done: &Done<'_>,
) -> RankOutcome {
    let (killed, first_failure) = {
        let s = rv.lock();
        (s.killed.contains(&i), s.failure.clone())
    };
    let out = match result {
        Ok(out) => out,
        Err(TransportError::Timeout { .. }) => {
            // Past its deadline: `timeout` on the tray killed its process group; kill it from
            // here too in case that was not enough.
            let pgid = rv.lock().pgids.get(&i).copied();
            if let Some(p) = pgid {
                rv.lock().killed.insert(i);
                kill_group(connector, node, p);
            }
            return done(
                NodeStatus::Error,
                Some(format!(
                    "hung: rank {i} on {} gave no result within its {} s deadline",
                    node.name,
                    deadline.as_secs()
                )),
                None,
                true,
            );
        }
        Err(e) => return done(NodeStatus::PeerError, Some(e.to_string()), None, killed),
    };
    let report: Option<RankReport> = serde_json::from_slice(&out.stdout).ok();
    let stopped = |what: String| match (&first_failure, killed) {
        (Some(first), true) => format!("stopped by kiln after {first}"),
        _ => what,
    };
    match (&out.exit, report) {
        (RemoteExit::Signal(sig), _) => {
            done(NodeStatus::Error, Some(stopped(format!("died: killed by signal {sig}"))), None, killed)
        }
        (RemoteExit::Code(c), _) if killed && *c >= 128 => {
            done(NodeStatus::Error, Some(stopped(format!("died: exit {c}"))), None, true)
        }
        (RemoteExit::Code(c), _) if *c == VERIFY_EXIT => done(
            NodeStatus::PeerError,
            Some(out.stderr_tail().unwrap_or_else(|| "kiln on the node is not the binary meant for it".into())),
            None,
            killed,
        ),
        (RemoteExit::Code(c), Some(r)) => {
            let status = match *c {
                exit::OK => NodeStatus::Pass,
                exit::CHECK_FAILED => NodeStatus::Fail,
                exit::SKIPPED => NodeStatus::Skipped,
                _ => NodeStatus::Error,
            };
            let reason = r.reason.clone().or_else(|| (status != NodeStatus::Pass).then(|| format!("exit {c}")));
            // It ended on its own, with its report, before a kill reached it.
            done(status, reason, Some(r), false)
        }
        (RemoteExit::Code(c), None) => done(
            NodeStatus::Error,
            Some(stopped(format!(
                "died: exit {c} without a report{}",
                out.stderr_tail().map(|t| format!(": {t}")).unwrap_or_default()
            ))),
            None,
            killed,
        ),
    }
}

/// After a rank ended: when it failed (not skipped, not stopped by kiln), stop the run: tell
/// the ranks still waiting for the id, and kill every other running rank's process group. When
/// rank 0 ended before giving the id, the waiting ranks are told to stop.
fn finish(run: &CollectiveRun<'_>, connector: &dyn Connector, rv: &Rendezvous, i: usize, o: &RankOutcome) {
    let failed = matches!(o.status, NodeStatus::Error | NodeStatus::PeerError) && !o.killed_by_others();
    let to_kill: Vec<(usize, i32)> = {
        let mut s = rv.lock();
        s.running.remove(&i);
        if failed && s.failure.is_none() {
            let why = format!("rank {i} on {} failed ({})", o.node, o.reason.clone().unwrap_or_default());
            s.failure = Some(why.clone());
            s.abort.get_or_insert(why);
        } else if i == 0 && s.id.is_none() && s.abort.is_none() {
            s.abort = Some(format!(
                "rank 0 on {} ended before starting the collective ({})",
                o.node,
                o.reason.clone().unwrap_or_default()
            ));
        }
        rv.changed.notify_all();
        if failed {
            let victims: Vec<(usize, i32)> = s
                .running
                .iter()
                .filter(|j| !s.killed.contains(j))
                .filter_map(|j| s.pgids.get(j).map(|p| (*j, *p)))
                .collect();
            for (j, _) in &victims {
                s.killed.insert(*j);
            }
            victims
        } else {
            Vec::new()
        }
    };
    for (j, pgid) in to_kill {
        tracing::info!(node = %run.nodes[j].name, pgid, "killing the rank's process group: {}", o.node);
        kill_group(connector, run.nodes[j], pgid);
    }
}

/// Kills process group `pgid` on `node` over a connection of its own (the rank's own session is
/// busy reading it). A group already gone is not an error.
fn kill_group(connector: &dyn Connector, node: &RackNode, pgid: i32) {
    // SAFETY: getpgrp has no preconditions. A rank run on this machine (the local transport)
    // that announced this process's own group is never killed by it.
    if pgid <= 1 || pgid == unsafe { libc::getpgrp() } {
        return;
    }
    let argv = vec!["kill".to_string(), "-KILL".into(), "--".into(), format!("-{pgid}")];
    match connector.connect(node) {
        Ok(mut t) => {
            if let Err(e) = t.run(&argv, Duration::from_secs(15)) {
                tracing::warn!(node = %node.name, pgid, error = %e, "could not kill the rank's process group");
            }
        }
        Err(e) => tracing::warn!(node = %node.name, pgid, error = %e, "could not reach the node to kill its rank"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::LocalConnector;

    /// A "kiln" for the local backend that speaks the rank protocol: rank 0 says an id (or fails
    /// first when its root says so), the others read the controller's reply and put it in their
    /// report, so the test sees what each rank was sent.
    fn fake_kiln(dir: &std::path::Path, rank0_fails: bool) -> std::path::PathBuf {
        let script = dir.join("kiln-src");
        let id = "0123456789abcdef".repeat(16);
        let fail = if rank0_fails { "echo 'segfault' >&2; exit 10" } else { "" };
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
[ "$1" = "--version" ] && {{ echo kiln; exit 0; }}
rank=$4; ranks=$6
report() {{ printf '{{"schema_version":1,"kind":"kiln.collective-rank","hostname":"h","rank":%s,"ranks":%s,"gpus":0,"world":0,"verdict":"skipped","reason":"%s","results":[]}}\n' "$rank" "$ranks" "$1"; exit 7; }}
if [ "$rank" = 0 ]; then
  {fail}
  echo "kiln-rank: id={id}" >&2
  report "made the id"
fi
echo "kiln-rank: waiting" >&2
read -r reply
report "$reply"
"#
            ),
        )
        .expect("write script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        script
    }

    fn run(rank0_fails: bool) -> CollectiveOutcome {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = fake_kiln(dir.path(), rank0_fails);
        let remote = dir.path().join("node-bin/kiln");
        let binary = RemoteBinary::unchecked(&src, std::env::consts::ARCH, remote.to_str().expect("utf8"));
        let nodes: Vec<RackNode> = (1..=4).map(|i| RackNode::new(&format!("t{i}"), "127.0.0.1")).collect();
        let refs: Vec<&RackNode> = nodes.iter().collect();
        let hooks = BTreeMap::new();
        let run = CollectiveRun {
            nodes: &refs,
            binary: &binary,
            push_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(20),
            limits: None,
            telemetry: None,
            hooks: &hooks,
        };
        run_collective(&run, &LocalConnector, &[])
    }

    #[test]
    fn rank_zeros_id_reaches_every_other_rank_on_its_input() {
        let out = run(false);
        let id = "0123456789abcdef".repeat(16);
        let said: Vec<String> =
            out.trays.iter().map(|t| t.report.as_ref().and_then(|r| r.reason.clone()).unwrap_or_default()).collect();
        assert_eq!(said[0], "made the id", "{out:#?}");
        for s in &said[1..] {
            assert_eq!(s, &format!("id {id}"), "{out:#?}");
        }
        assert!(out.trays.iter().all(|t| t.status == NodeStatus::Skipped), "{out:#?}");
        assert_eq!(out.exit_code, exit::SKIPPED);
        assert!(out.figures.is_empty(), "skipped ranks give no figure");
    }

    /// Two trays skipped (no NCCL) whose GPUs were sampled: node02's GPU reported a fatal Xid
    /// and NVLink errors past the budget, node01's nothing.
    #[test]
    fn each_trays_telemetry_is_judged_and_a_bad_gpu_fails_its_tray_by_name() {
        use crate::burnin::report::{GpuIdentity, GpuTelemetry, HealthCounters, Watch, XidEvent};
        let gpu = |node: &str, xid: Option<u64>, errors: u64| GpuTelemetry {
            gpu: GpuIdentity {
                index: 1,
                pci_address: crate::model::PciAddress::new(8, 1, 0, 0).expect("address"),
                serial: Some(format!("{node}-gpu1")),
                uuid: None,
                name: Some("NVIDIA GB200".into()),
                numa_node: None,
                slot: None,
            },
            before: HealthCounters { nvlink_errors: Some(0), nvlink_links: Some(18), ..Default::default() },
            after: HealthCounters { nvlink_errors: Some(errors), nvlink_links: Some(18), ..Default::default() },
            samples: Vec::new(),
            xids: xid.map(|x| XidEvent { at_unix_ms: 1, xid: x }).into_iter().collect(),
            xid_watch: Watch::Watched,
            power_limit_w: None,
            problems: Vec::new(),
        };
        let tray = |i: u32, t: GpuTelemetry| {
            let node = format!("node0{}", i + 1);
            RankOutcome {
                node: node.clone(),
                rank: i,
                status: NodeStatus::Skipped,
                reason: Some("no NCCL".into()),
                duration_ms: 60_000,
                killed: false,
                report: Some(RankReport {
                    schema_version: 1,
                    kind: crate::burnin::collective::RANK_KIND.into(),
                    hostname: node,
                    rank: i,
                    ranks: 2,
                    gpus: 0,
                    world: 0,
                    verdict: Outcome::Skipped,
                    reason: Some("no NCCL".into()),
                    nccl_version: None,
                    results: Vec::new(),
                    telemetry: vec![t],
                    telemetry_note: None,
                    local: Vec::new(),
                }),
                run_id: None,
            }
        };
        let trays = vec![tray(0, gpu("node01", None, 0)), tray(1, gpu("node02", Some(79), 500))];
        let limits = TelemetryLimits { nvlink_error_budget: 10, pcie_replays_per_minute: 1.0, reason: "spec".into() };
        let mut findings = rank_findings(&trays);
        findings.extend(telemetry_findings(&trays, Some(&limits)));
        let exit_code = exit_code(&trays, &findings);
        let out = CollectiveOutcome {
            ranks: 2,
            exit_code,
            deadline_s: 60,
            trays,
            figures: Vec::new(),
            findings,
            rack_run_id: None,
            record_error: None,
        };
        assert_eq!(out.exit_code, exit::CHECK_FAILED, "{:#?}", out.findings);
        let bad: Vec<&str> = out
            .tray_findings("node02")
            .into_iter()
            .filter(|f| f.outcome == Outcome::Fail)
            .map(|f| f.check.as_str())
            .collect();
        assert_eq!(bad, ["burnin.telemetry.xid", "burnin.telemetry.nvlink_errors"], "{:#?}", out.findings);
        let xid = out.tray_findings("node02").into_iter().find(|f| f.check == "burnin.telemetry.xid").expect("xid");
        assert!(xid.message.starts_with("node02: GPU 1 (serial node02-gpu1)"), "{}", xid.message);
        assert_eq!(xid.component.name.as_deref(), Some("node02 NVIDIA GB200"));
        assert!(out.tray_findings("node01").iter().all(|f| f.outcome != Outcome::Fail), "{:#?}", out.findings);
        // node01 is not node010's prefix: a finding names a tray by its whole name.
        assert!(out.tray_findings("node0").is_empty());
        let gate = out.gate();
        assert_eq!(gate.keys().collect::<Vec<_>>(), ["node02"], "{gate:?}");
        assert_eq!(gate["node02"], "rack collective failed: burnin.telemetry.xid");
    }

    #[test]
    fn a_rank_zero_that_dies_first_stops_the_others_and_is_named() {
        let out = run(true);
        assert_eq!(out.trays[0].status, NodeStatus::Error, "{out:#?}");
        assert!(out.trays[0].reason.as_deref().unwrap_or("").contains("segfault"), "{out:#?}");
        for t in &out.trays[1..] {
            let said = t.report.as_ref().and_then(|r| r.reason.clone()).unwrap_or_default();
            assert!(said.starts_with("abort rank 0 on t1"), "{said}");
        }
        assert_eq!(out.exit_code, exit::CHECK_ERROR);
        assert_eq!(out.gate().keys().collect::<Vec<_>>(), ["t1"], "only the tray that failed is failed");
    }
}
