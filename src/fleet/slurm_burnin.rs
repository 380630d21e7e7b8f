//! `kiln rack burnin --via slurm`: each node's burn-in as one exclusive Slurm job, followed to its
//! end and recorded exactly as the SSH path records it; a restarted controller picks up the jobs
//! it (or a controller before it) submitted instead of submitting again.
//!
//! Per node: the binary is checked (and pushed) over SSH as the fan-out does, with the job
//! directory made beside it; the job is submitted and its id recorded at once; the job runs the
//! node command behind the same checksum guard and leaves kiln's JSON and exit code in the job
//! directory; once Slurm says the job ended, the controller reads them over SSH, judges them as
//! the fan-out judges a node command, and records them through `record_outcome`.

use super::follow_lock::{FollowLock, FollowLockError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use super::fanout::{judge, FanoutOptions, Plan};
use super::outcome::{BinaryState, FailureKind, NodeOutcome, NodeStatus, RackOutcome, Step};
use super::pool::map_bounded;
use super::push::run_current;
use super::record::{already_passed, apply, record_outcome, RecordResult};
use super::slurm_jobs::{
    has_ended, job_dir_for, job_files, job_script, ran_to_end, JobRequest, JobStatus, SlurmJobError, SlurmJobs,
    JOB_DIR_EXIT,
};
use super::transport::{shell_quote, CommandOutput, Connector, RemoteExit, TransportError};
use crate::exit;
use crate::inventory::{now, Inventory, InventoryError, SlurmJobEnd, SlurmJobRow};
use crate::rack::RackNode;

/// The guard's exit when the node's binary is not the one meant for it.
const GUARD_EXIT: i32 = 97;
/// Who the inventory says acted.
const ACTOR: &str = "kiln rack burnin";

/// One burn-in of (part of) a rack through Slurm.
#[derive(Debug, Clone, Copy)]
pub struct SlurmBurnin<'a> {
    pub rack: &'a str,
    pub nodes: &'a [&'a RackNode],
    /// The node command (`Plan::for_step(Step::Burnin, ..)`).
    pub plan: &'a Plan,
    /// The binary, and the bounds of the SSH side (parallel, per-command limit).
    pub opts: &'a FanoutOptions,
    pub force: bool,
    pub partition: Option<&'a str>,
    pub account: Option<&'a str>,
    /// sbatch's `--time`.
    pub time: &'a str,
    /// How often the jobs are looked at.
    pub poll: Duration,
    /// How long Slurm may fail to answer while jobs are followed before the
    /// controller gives up (the jobs go on; a rerun follows them).
    pub patience: Duration,
    /// The inventory's file: the nodes' follow locks live beside it (`follow_lock`), taken once
    /// Slurm knows every node and held to the end. `None`: no lock (an inventory in memory).
    pub db: Option<&'a std::path::Path>,
}

/// What the controller saw, for progress.
#[derive(Debug, Clone, Copy)]
pub enum SlurmEvent<'a> {
    Submitted { node: &'a str, job: u64 },
    PickedUp { node: &'a str, job: u64 },
    State { node: &'a str, job: u64, status: &'a JobStatus },
    Done(&'a NodeOutcome),
}

/// One node's job, as `--json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub node: String,
    pub job_id: u64,
    pub job_name: String,
    pub submitted_at: String,
    /// Slurm's last word on the job (`COMPLETED`, `FAILED`, `CANCELLED`,
    /// `TIMEOUT`, ...), `lost` when Slurm forgot it and it left no result,
    /// or `submitted` when it was not seen to end.
    pub state: String,
    /// kiln's exit code on the node, when the job ran it to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Submitted before this run (by a controller that stopped), followed here.
    pub picked_up: bool,
}

/// The rack outcome (`kind: kiln.rack`) with the jobs beside it.
#[derive(Debug, Clone, Serialize)]
pub struct SlurmBurninOutcome {
    #[serde(flatten)]
    pub outcome: RackOutcome,
    pub slurm_jobs: Vec<JobReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum SlurmBurninError {
    #[error("Slurm does not answer, nothing was submitted")]
    Unreachable(#[source] SlurmJobError),
    #[error(
        "Slurm does not know {}: the manifest's node names must be Slurm node names (sinfo -N); nothing was submitted",
        nodes.join(", ")
    )]
    UnknownNodes { nodes: Vec<String> },
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Another controller follows some of these nodes' jobs.
    #[error(transparent)]
    Following(#[from] FollowLockError),
    #[error(
        "submitting {node}'s burn-in failed{}",
        if submitted.is_empty() { String::new() } else {
            format!("; the jobs submitted before it go on ({}): run the same command again to follow them", submitted.join(", "))
        }
    )]
    Submit {
        node: String,
        submitted: Vec<String>,
        #[source]
        source: SlurmJobError,
    },
    #[error(
        "Slurm stopped answering for {}s while jobs were open ({}); they go on: run the same command again to collect them",
        waited.as_secs(), open.join(", ")
    )]
    LostContact {
        waited: Duration,
        open: Vec<String>,
        #[source]
        source: SlurmJobError,
    },
}

impl SlurmBurninError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SlurmBurninError::UnknownNodes { .. } => exit::BAD_INPUT,
            SlurmBurninError::Inventory(_) => exit::DATABASE,
            SlurmBurninError::Following(FollowLockError::Busy { .. }) => exit::BUSY,
            SlurmBurninError::Following(FollowLockError::Io { .. }) => exit::INTERNAL,
            SlurmBurninError::Unreachable(_)
            | SlurmBurninError::Submit { .. }
            | SlurmBurninError::LostContact { .. } => exit::PEER,
        }
    }
}

/// `kiln-burnin-<rack>-<node>`: how a job is found again by name.
pub fn job_name(rack: &str, node: &str) -> String {
    format!("kiln-burnin-{rack}-{node}")
}

/// A job being followed.
struct Tracked {
    row: SlurmJobRow,
    picked_up: bool,
    last: Option<JobStatus>,
    started: OffsetDateTime,
    t0: Instant,
}

fn blank(node: &str, status: NodeStatus, started: OffsetDateTime, t0: Instant) -> NodeOutcome {
    NodeOutcome {
        node: node.to_string(),
        step: Step::Burnin,
        status,
        started,
        finished: OffsetDateTime::now_utc(),
        duration_ms: t0.elapsed().as_millis() as u64,
        remote_exit: None,
        verdict: None,
        failure: None,
        reason: None,
        binary: None,
        report: None,
        recorded: None,
    }
}

fn peer_error(node: &str, kind: FailureKind, reason: String, started: OffsetDateTime, t0: Instant) -> NodeOutcome {
    let mut o = blank(node, NodeStatus::PeerError, started, t0);
    o.failure = Some(kind);
    o.reason = Some(reason);
    o
}

/// Runs the burn-in of `b.nodes` as Slurm jobs and records it. `Err` when
/// nothing could be started (Slurm unreachable, nodes it does not know) or
/// Slurm stopped answering; what was recorded before stays recorded.
pub fn run_slurm_burnin(
    b: &SlurmBurnin<'_>,
    slurm: &dyn SlurmJobs,
    connector: &dyn Connector,
    inv: &mut Inventory,
    progress: &(dyn Fn(SlurmEvent<'_>) + Sync),
) -> Result<SlurmBurninOutcome, SlurmBurninError> {
    let started = now();
    let known = slurm.known_nodes().map_err(SlurmBurninError::Unreachable)?;
    let unknown: Vec<String> = b.nodes.iter().filter(|n| !known.contains(&n.name)).map(|n| n.name.clone()).collect();
    if !unknown.is_empty() {
        return Err(SlurmBurninError::UnknownNodes { nodes: unknown });
    }
    // Held to the end: a second controller of these nodes would record every job twice.
    let names: Vec<&str> = b.nodes.iter().map(|n| n.name.as_str()).collect();
    let _following = b.db.map(|db| FollowLock::acquire(db, b.rack, &names)).transpose()?;
    let by_name: BTreeMap<&str, &RackNode> = b.nodes.iter().map(|n| (n.name.as_str(), *n)).collect();
    let job_dir = job_dir_for(&b.opts.binary.remote_path);

    // Jobs already submitted: recorded and not seen to end, or (submitted by a
    // controller stopped before it could record them) found in Slurm by name.
    let mut tracked: Vec<Tracked> = Vec::new();
    for row in inv.open_slurm_jobs(b.rack)? {
        if by_name.contains_key(row.node.as_str()) && !tracked.iter().any(|t| t.row.node == row.node) {
            progress(SlurmEvent::PickedUp { node: &row.node, job: row.job_id });
            tracked.push(Tracked { row, picked_up: true, last: None, started: now(), t0: Instant::now() });
        }
    }
    let untracked: Vec<String> = b
        .nodes
        .iter()
        .filter(|n| !tracked.iter().any(|t| t.row.node == n.name))
        .map(|n| job_name(b.rack, &n.name))
        .collect();
    for (id, name, status) in slurm.active_by_name(&untracked).map_err(SlurmBurninError::Unreachable)? {
        let Some(node) = b.nodes.iter().find(|n| job_name(b.rack, &n.name) == name) else { continue };
        if tracked.iter().any(|t| t.row.node == node.name) {
            continue;
        }
        let note = format!("burn-in picked up as Slurm job {id} ({name}), submitted before and not recorded");
        let row = inv.record_slurm_job(b.rack, &node.name, id, &name, ACTOR, &note)?;
        progress(SlurmEvent::PickedUp { node: &node.name, job: id });
        tracked.push(Tracked { row, picked_up: true, last: Some(status), started: now(), t0: Instant::now() });
    }

    let mut outcomes: BTreeMap<String, NodeOutcome> = BTreeMap::new();
    let mut to_submit: Vec<&RackNode> = Vec::new();
    for node in b.nodes {
        if tracked.iter().any(|t| t.row.node == node.name) {
            continue;
        }
        let passed =
            if b.force { None } else { already_passed(inv, &super::record::place(b.rack, &node.name), Step::Burnin)? };
        match passed {
            Some(reason) => {
                let mut o = blank(&node.name, NodeStatus::Skipped, now(), Instant::now());
                o.reason = Some(reason);
                outcomes.insert(node.name.clone(), o);
            }
            None => to_submit.push(node),
        }
    }

    // The binary, checked (and pushed) over SSH as the fan-out does, and the job directory.
    let prepared = map_bounded(&to_submit, b.opts.parallel, |node| prepare(node, connector, b.opts, &job_dir));
    let mut submitted: Vec<String> = Vec::new();
    for (node, prepared) in to_submit.iter().zip(prepared) {
        let binary = match prepared {
            Ok(binary) => binary,
            Err(o) => {
                finish(inv, b.rack, *o, &mut outcomes, progress);
                continue;
            }
        };
        let name = job_name(b.rack, &node.name);
        let argv = b.plan.argv(node, &b.opts.binary.remote_path);
        let script =
            job_script(b.rack, &node.name, &job_dir, &b.opts.binary.remote_path, &b.opts.binary.expected(), &argv);
        let request = JobRequest {
            node: node.name.clone(),
            name: name.clone(),
            partition: b.partition.map(str::to_string),
            account: b.account.map(str::to_string),
            time: b.time.to_string(),
            script,
        };
        let id = slurm.submit(&request).map_err(|source| SlurmBurninError::Submit {
            node: node.name.clone(),
            submitted: submitted.clone(),
            source,
        })?;
        let note = format!("burn-in submitted as Slurm job {id} ({name}; kiln on the node {})", binary_word(binary));
        let row = inv.record_slurm_job(b.rack, &node.name, id, &name, ACTOR, &note)?;
        submitted.push(format!("{} job {id}", node.name));
        progress(SlurmEvent::Submitted { node: &node.name, job: id });
        tracked.push(Tracked { row, picked_up: false, last: None, started: now(), t0: Instant::now() });
    }

    let reports = follow(b, slurm, connector, inv, &job_dir, tracked, &mut outcomes, progress)?;
    let ordered: Vec<NodeOutcome> = b.nodes.iter().filter_map(|n| outcomes.remove(&n.name)).collect();
    let outcome = record_rack(inv, b.rack, started, ordered);
    Ok(SlurmBurninOutcome { outcome, slurm_jobs: reports })
}

/// The word the JSON uses for what happened to the node's kiln.
fn binary_word(b: BinaryState) -> &'static str {
    match b {
        BinaryState::Current => "current",
        BinaryState::Pushed => "pushed",
        BinaryState::Missing => "missing",
        BinaryState::Differs => "differs",
    }
}

/// Makes the node's kiln the one meant for it (the fan-out's guarded push)
/// and creates the job directory, in one remote command.
fn prepare(
    node: &RackNode,
    connector: &dyn Connector,
    opts: &FanoutOptions,
    job_dir: &str,
) -> Result<BinaryState, Box<NodeOutcome>> {
    let (started, t0) = (now(), Instant::now());
    let failed = |e: TransportError| Box::new(peer_error(&node.name, e.kind(), e.to_string(), started, t0));
    let mut t = connector.connect(node).map_err(failed)?;
    let argv = vec!["mkdir".to_string(), "-p".into(), "--".into(), job_dir.to_string()];
    let (binary, out) =
        run_current(t.as_mut(), &opts.binary, &argv, opts.command_timeout).map_err(|(e, _)| failed(e))?;
    if out.exit != RemoteExit::Code(0) {
        let why = out.stderr_tail().unwrap_or_else(|| format!("{:?}", out.exit));
        let mut o = blank(&node.name, NodeStatus::Error, started, t0);
        o.failure = Some(FailureKind::Remote);
        o.reason = Some(format!("could not create the job directory {job_dir} on the node: {why}"));
        o.binary = Some(binary);
        return Err(Box::new(o));
    }
    Ok(binary)
}

/// Records `o` as the SSH path does and keeps it.
fn finish(
    inv: &mut Inventory,
    rack: &str,
    mut o: NodeOutcome,
    outcomes: &mut BTreeMap<String, NodeOutcome>,
    progress: &(dyn Fn(SlurmEvent<'_>) + Sync),
) -> RecordResult {
    let result = record_outcome(inv, rack, &o);
    apply(&mut o, result.clone());
    progress(SlurmEvent::Done(&o));
    outcomes.insert(o.node.clone(), o);
    result
}

/// Follows the jobs until each has ended, collecting and recording each as
/// it ends.
#[allow(clippy::too_many_arguments)]
fn follow(
    b: &SlurmBurnin<'_>,
    slurm: &dyn SlurmJobs,
    connector: &dyn Connector,
    inv: &mut Inventory,
    job_dir: &str,
    mut active: Vec<Tracked>,
    outcomes: &mut BTreeMap<String, NodeOutcome>,
    progress: &(dyn Fn(SlurmEvent<'_>) + Sync),
) -> Result<Vec<JobReport>, SlurmBurninError> {
    let mut reports = Vec::new();
    let mut answered = Instant::now();
    while !active.is_empty() {
        let ids: Vec<u64> = active.iter().map(|t| t.row.job_id).collect();
        let states = match slurm.status(&ids) {
            Ok(s) => {
                answered = Instant::now();
                s
            }
            Err(source) if answered.elapsed() >= b.patience => {
                let open = active.iter().map(|t| format!("{} job {}", t.row.node, t.row.job_id)).collect();
                return Err(SlurmBurninError::LostContact { waited: answered.elapsed(), open, source });
            }
            Err(e) => {
                tracing::warn!(error = %e, "Slurm did not answer; trying again");
                std::thread::sleep(b.poll);
                continue;
            }
        };
        let mut ended: Vec<(Tracked, Option<JobStatus>)> = Vec::new();
        let mut still = Vec::new();
        for mut t in active {
            match states.get(&t.row.job_id) {
                Some(s) if !has_ended(&s.state) => {
                    if t.last.as_ref() != Some(s) {
                        progress(SlurmEvent::State { node: &t.row.node, job: t.row.job_id, status: s });
                        t.last = Some(s.clone());
                    }
                    still.push(t);
                }
                other => {
                    let s = other.cloned();
                    ended.push((t, s));
                }
            }
        }
        active = still;
        let nodes: BTreeMap<&str, &RackNode> = b.nodes.iter().map(|n| (n.name.as_str(), *n)).collect();
        let collected = map_bounded(&ended, b.opts.parallel, |(t, status)| match nodes.get(t.row.node.as_str()) {
            Some(node) => collect(node, t, status.as_ref(), connector, b.opts, job_dir),
            None => Collected::Unread(blank(&t.row.node, NodeStatus::Error, t.started, t.t0)),
        });
        for ((t, status), c) in ended.into_iter().zip(collected) {
            let (o, state, exit_code, close) = match c {
                Collected::Ran { outcome, state, exit_code } => (outcome, state, Some(exit_code), true),
                Collected::Ended { outcome, state } => (outcome, state, None, true),
                // The job ended but its result could not be read: it stays open for a rerun.
                Collected::Unread(outcome) => {
                    (outcome, status.as_ref().map_or("unknown".to_string(), |s| s.state.clone()), None, false)
                }
            };
            let result = finish(inv, b.rack, o, outcomes, progress);
            let run_id = match &result {
                RecordResult::Recorded(r) => r.run_id,
                _ => None,
            };
            let o = outcomes.get(&t.row.node);
            if close {
                let reason = o.and_then(|o| o.reason.clone());
                let cause = match (run_id, exit_code) {
                    (Some(run), Some(code)) => {
                        format!("Slurm job {} {state}: kiln exited {code}, recorded as run {run}", t.row.job_id)
                    }
                    _ => format!(
                        "Slurm job {} {state}: no burn-in recorded{}",
                        t.row.job_id,
                        reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                };
                let end = SlurmJobEnd { state: &state, exit_code, run_id, reason: reason.as_deref() };
                inv.close_slurm_job(t.row.id, &end, ACTOR, &cause)?;
            }
            reports.push(JobReport {
                node: t.row.node.clone(),
                job_id: t.row.job_id,
                job_name: t.row.job_name.clone(),
                submitted_at: t.row.submitted_at.clone(),
                state: if close { state } else { t.row.state.clone() },
                exit_code,
                picked_up: t.picked_up,
            });
        }
        if !active.is_empty() {
            std::thread::sleep(b.poll);
        }
    }
    let order: Vec<&str> = b.nodes.iter().map(|n| n.name.as_str()).collect();
    reports.sort_by_key(|r| order.iter().position(|n| *n == r.node));
    Ok(reports)
}

/// What an ended job came to.
enum Collected {
    /// kiln ran to its end on the node: its JSON judged as the fan-out judges it.
    Ran { outcome: NodeOutcome, state: String, exit_code: i32 },
    /// The job ended without a result (cancelled, timed out, lost, no files).
    Ended { outcome: NodeOutcome, state: String },
    /// The job ended but the node could not be asked for its result.
    Unread(NodeOutcome),
}

/// Reads an ended job's files from the node over SSH and judges them.
fn collect(
    node: &RackNode,
    t: &Tracked,
    status: Option<&JobStatus>,
    connector: &dyn Connector,
    opts: &FanoutOptions,
    job_dir: &str,
) -> Collected {
    let job = t.row.job_id;
    let files = job_files(job_dir, job);
    let said = |s: &JobStatus| s.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
    if let Some(s) = status.filter(|s| !ran_to_end(&s.state)) {
        let reason = format!("Slurm job {job} ended {}{}", s.state, said(s));
        let kind = FailureKind::SlurmJob;
        return Collected::Ended {
            outcome: peer_error(&node.name, kind, reason, t.started, t.t0),
            state: s.state.clone(),
        };
    }
    let unread = |e: TransportError| {
        let reason = format!("Slurm job {job} ended, but its result could not be read from the node: {e}");
        Collected::Unread(peer_error(&node.name, e.kind(), reason, t.started, t.t0))
    };
    let mut transport = match connector.connect(node) {
        Ok(tr) => tr,
        Err(e) => return unread(e),
    };
    let script = format!(
        "f={f}; if [ -r \"$f.exit\" ]; then cat -- \"$f.exit\"; else echo none; fi; \
         tail -c 65536 -- \"$f.err\" >&2 2>/dev/null; true",
        f = shell_quote(&files)
    );
    let head = match transport.run(&["sh".into(), "-c".into(), script], opts.command_timeout) {
        Ok(out) => out,
        Err(e) => return unread(e),
    };
    let code = String::from_utf8_lossy(&head.stdout).trim().parse::<i32>().ok();
    let state = status.map_or_else(
        || match code {
            Some(0) => "COMPLETED".to_string(),
            Some(_) => "FAILED".to_string(),
            None => "lost".to_string(),
        },
        |s| s.state.clone(),
    );
    let Some(code) = code else {
        let why = match status {
            Some(s) => format!("Slurm job {job} ended {} but left no result in {job_dir} on the node", s.state),
            None => format!("Slurm no longer knows job {job} and it left no result in {job_dir} on the node"),
        };
        let tail = head.stderr_tail().map(|t| format!(": {t}")).unwrap_or_default();
        let mut o = blank(&node.name, NodeStatus::Error, t.started, t.t0);
        o.failure = Some(FailureKind::SlurmJob);
        o.reason = Some(format!("{why}{tail}"));
        return Collected::Ended { outcome: o, state };
    };
    if code == JOB_DIR_EXIT || code == GUARD_EXIT {
        let reason = if code == GUARD_EXIT {
            format!(
                "Slurm job {job}: kiln at {} on the node is not the binary checked when the job was submitted; \
                 run again to push it",
                opts.binary.remote_path
            )
        } else {
            format!("Slurm job {job}: could not create {job_dir} on the node")
        };
        let kind = if code == GUARD_EXIT { FailureKind::Transfer } else { FailureKind::Remote };
        return Collected::Ran {
            outcome: peer_error(&node.name, kind, reason, t.started, t.t0),
            state,
            exit_code: code,
        };
    }
    let json = match transport.run(&["cat".into(), "--".into(), format!("{files}.json")], opts.command_timeout) {
        Ok(out) => out.stdout,
        Err(e) => return unread(e),
    };
    let out = CommandOutput { stdout: json, stderr: head.stderr, exit: RemoteExit::Code(code) };
    let mut o = judge(blank(&node.name, NodeStatus::Error, t.started, t.t0), &out);
    if o.status != NodeStatus::Pass {
        o.reason = o.reason.map(|r| format!("Slurm job {job}: {r}"));
    }
    o.finished = OffsetDateTime::now_utc();
    o.duration_ms = t.t0.elapsed().as_millis() as u64;
    Collected::Ran { outcome: o, state, exit_code: code }
}

/// The rack run, recorded as `run_rack_step` records it (burn-in has no rack
/// findings), and each node's state as the run left it.
fn record_rack(inv: &mut Inventory, rack: &str, started: OffsetDateTime, nodes: Vec<NodeOutcome>) -> RackOutcome {
    let mut outcome = RackOutcome::new(rack, Step::Burnin, nodes, Vec::new());
    super::rack_run::record_rack_outcome(inv, &mut outcome, started, ACTOR, &BTreeMap::new());
    outcome
}
