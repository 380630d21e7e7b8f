//! What the inventory makes of a rack step: each node's outcome becomes its run, or a move to
//! `failed` when the node could not be run; and which nodes a rerun may skip.

use serde::Deserialize;

use super::outcome::{MachineChange, NodeOutcome, NodeStatus, Recorded, Step};
use crate::burnin::report::BurninReport;
use crate::checks::{Finding, Verdict};
use crate::error::chain;
use crate::inventory::{format_timestamp, Inventory, InventoryError, RunLifecycle, RunRecord};
use crate::lifecycle::{LifecycleState, RunKind};
use crate::model::Node;
use crate::report::findings::ValidateReport;

/// The run kind a rack step records; `status` records nothing.
pub fn run_kind(step: Step) -> Option<RunKind> {
    match step {
        Step::Inspect => Some(RunKind::Inspect),
        Step::Validate => Some(RunKind::Validate),
        Step::Burnin => Some(RunKind::Burnin),
        Step::Status => None,
    }
}

/// The lifecycle state a passed step leaves a node in, as a position in
/// bring-up order (see `LifecycleState::step`).
fn step_position(kind: RunKind) -> u8 {
    match kind {
        RunKind::Inspect => 1,
        RunKind::Validate => 2,
        RunKind::Burnin => 3,
    }
}

/// Why `node` need not run `step` again, or `None` when it must: its newest
/// run of that kind passed (exit 0; verdict pass, or none for inspect) and
/// its lifecycle state is at or after the state that step leads to. A node
/// failed or quarantined since, or sent back to an earlier step, runs again.
pub fn already_passed(inv: &Inventory, node: &str, step: Step) -> Result<Option<String>, InventoryError> {
    let Some(kind) = run_kind(step) else { return Ok(None) };
    let Some(row) = inv.node(node)? else { return Ok(None) };
    let Some(run) = inv.latest_run_of_kind(row.id, kind)? else { return Ok(None) };
    let verdict_ok = match kind {
        RunKind::Inspect => matches!(run.verdict, None | Some(Verdict::Pass)),
        RunKind::Validate | RunKind::Burnin => run.verdict == Some(Verdict::Pass),
    };
    let state_ok = row.state.step().is_some_and(|s| s >= step_position(kind));
    if run.exit_code == 0 && verdict_ok && state_ok {
        Ok(Some(format!("already passed at {}; --force to rerun", run.finished_at)))
    } else {
        Ok(None)
    }
}

/// How the inventory names a rack's place: `RACK/NAME` (manifest names repeat across racks).
pub fn place(rack: &str, name: &str) -> String {
    format!("{rack}/{name}")
}

/// What a node command's JSON gives the inventory.
struct Parsed {
    node: Node,
    platform: Option<String>,
    verdict: Option<Verdict>,
    findings: Vec<Finding>,
    /// The burn-in report, whose results and telemetry are recorded with the run.
    burnin: Option<BurninReport>,
}

/// Reads the node command's JSON for `step`. A burn-in report carries no
/// node model: it is recorded against the node as last recorded (the
/// validate run just before it, in a bring-up).
fn parse(inv: &Inventory, name: &str, step: Step, report: &serde_json::Value) -> Result<Parsed, String> {
    match step {
        Step::Inspect => {
            let node = Node::deserialize(report).map_err(|e| format!("the inspect JSON is not a node: {e}"))?;
            Ok(Parsed { node, platform: None, verdict: None, findings: Vec::new(), burnin: None })
        }
        Step::Validate => {
            let r =
                ValidateReport::deserialize(report).map_err(|e| format!("the validate JSON is not a report: {e}"))?;
            let node = r
                .inspected
                .ok_or("the validate JSON carries no inspected node (kiln on the node predates --with-node)")?;
            Ok(Parsed {
                node,
                platform: Some(r.platform),
                verdict: Some(r.verdict),
                findings: r.findings,
                burnin: None,
            })
        }
        Step::Burnin => {
            let b = BurninReport::deserialize(report).map_err(|e| format!("the burn-in JSON is not a report: {e}"))?;
            let node =
                last_inspected(inv, name).map_err(|e| format!("read the node's last recorded model: {e}"))?.ok_or(
                    "the inventory has no model of the node to record the burn-in against; run `kiln rack inspect`",
                )?;
            Ok(Parsed {
                node,
                platform: Some(b.platform.clone()),
                verdict: Some(b.verdict),
                findings: b.findings.clone(),
                burnin: Some(b),
            })
        }
        Step::Status => Err("status records nothing".into()),
    }
}

/// The node as its newest node run recorded it.
fn last_inspected(inv: &Inventory, name: &str) -> Result<Option<Node>, InventoryError> {
    let Some(row) = inv.node(name)? else { return Ok(None) };
    match inv.latest_run(row.id)? {
        Some(run) => inv.run_node(run.id).map(Some),
        None => Ok(None),
    }
}

/// How recording one outcome ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    /// Written: the run and the node's new state, or nothing to write (a
    /// node skipped because its step had already passed).
    Recorded(Recorded),
    /// The node answered with JSON this kiln cannot record: the outcome
    /// becomes an `error` with this reason; the node's state is left alone.
    Unreadable(String),
    /// The database refused the write.
    Database(String),
}

/// Records one node's outcome of `step` in rack `rack`, in one transaction
/// per write:
/// - a node command that ran to its end (pass, fail, error, exit 7 with
///   JSON) is recorded as a run with its findings, the lifecycle moved by its
///   outcome (`RunLifecycle::FromOutcome`);
/// - a node that could not be run (unreachable, host key, timeout, lost
///   connection) or whose kiln died (killed, crashed, no JSON) is enrolled if
///   unknown and moved to `failed` with the reason (a quarantined node stays
///   quarantined);
/// - a node skipped because its step already passed, or whose kiln refused
///   the command as asked (exit 2 or 4), writes nothing.
///
/// The inventory keys rack nodes by their manifest name: the node's JSON is
/// recorded under that name, whatever hostname the node reported.
pub fn record_outcome(inv: &mut Inventory, rack: &str, o: &NodeOutcome) -> RecordResult {
    let Some(kind) = run_kind(o.step) else { return RecordResult::Recorded(Recorded::default()) };
    let actor = format!("kiln rack {}", o.step.as_str());
    let ran = o.failure.is_none() && o.report.is_some();
    let result = if ran {
        let Some(report) = o.report.as_ref() else { return RecordResult::Recorded(Recorded::default()) };
        let parsed = match parse(inv, &place(rack, &o.node), o.step, report) {
            Ok(p) => p,
            Err(why) => return RecordResult::Unreadable(format!("kiln on the node answered, but {why}")),
        };
        let reported = parsed.node.hostname.clone();
        // A burn-in that could not run a requested test did not burn the node
        // in: it is kept, but moves nothing (as `kiln burnin --db` does).
        let incomplete = parsed.burnin.as_ref().is_some_and(|b| b.incomplete);
        let run = RunRecord {
            kind,
            node: &parsed.node,
            name: Some(&o.node),
            platform: parsed.platform.as_deref(),
            rack: Some(rack),
            findings: &parsed.findings,
            verdict: parsed.verdict,
            exit_code: run_exit(o.remote_exit, parsed.verdict),
            started_at: o.started,
            finished_at: o.finished,
            actor: &actor,
            lifecycle: if incomplete { RunLifecycle::Leave } else { RunLifecycle::FromOutcome },
        };
        let written = match &parsed.burnin {
            Some(b) => inv.record_burnin_run(&run, b),
            None => inv.record_run(&run),
        };
        written.and_then(|id| {
            let machine_change = inv
                .machine_events_of_run(id)?
                .into_iter()
                .find_map(|e| e.previous.map(|was| MachineChange { was, now: e.machine, message: e.message }));
            Ok(Recorded {
                run_id: Some(id.0),
                reported_hostname: (reported != o.node && !reported.is_empty()).then_some(reported),
                machine_change,
                ..Recorded::default()
            })
        })
    } else if o.status == NodeStatus::PeerError || (o.status == NodeStatus::Error && !operator_error(o)) {
        fail_node(inv, rack, o, &actor)
    } else {
        // Skipped because the step already passed, or refused for how it was
        // asked: nothing happened to the node to record.
        Ok(Recorded::default())
    };
    match result.and_then(|mut r| {
        let state = inv.state(&place(rack, &o.node))?;
        r.state = Some(state.name().to_string());
        r.state_reason = state.reason().map(str::to_string);
        Ok(r)
    }) {
        Ok(r) => RecordResult::Recorded(r),
        Err(e) => RecordResult::Database(chain(&e)),
    }
}

/// The exit code a recorded run keeps: the node command's, or, when the controller's own
/// judgement (the rack's bill of materials) turned a passed report into a failed or errored
/// one, the code that verdict gives, as `kiln validate --bom` on the node would have exited.
fn run_exit(remote: Option<i32>, verdict: Option<Verdict>) -> i32 {
    match (remote, verdict) {
        (Some(crate::exit::OK), Some(Verdict::Fail)) => crate::exit::CHECK_FAILED,
        (Some(crate::exit::OK), Some(Verdict::Error)) => crate::exit::CHECK_ERROR,
        (Some(code), _) => code,
        (None, _) => crate::exit::INTERNAL,
    }
}

/// kiln on the node refused the command as asked (usage, bad input such as
/// an unknown `--platform`): the operator's mistake, not the node's fault.
fn operator_error(o: &NodeOutcome) -> bool {
    matches!(o.remote_exit, Some(crate::exit::USAGE | crate::exit::BAD_INPUT))
}

/// Moves a node that could not be run to `failed`, enrolling it first.
fn fail_node(inv: &mut Inventory, rack: &str, o: &NodeOutcome, actor: &str) -> Result<Recorded, InventoryError> {
    inv.enroll(&o.node, Some(rack), actor)?;
    let what = o.failure.map_or("error", |f| f.as_str());
    let reason =
        format!("{} could not run ({what}): {}", o.step.as_str(), o.reason.as_deref().unwrap_or("no reason given"));
    let cause = format!("{actor} at {}", format_timestamp(o.finished));
    match inv.transition(&place(rack, &o.node), &LifecycleState::Failed { reason }, actor, &cause) {
        Ok(_) => Ok(Recorded::default()),
        // A quarantined node stays held: a person's hold outranks a run.
        Err(InventoryError::IllegalTransition { .. }) => Ok(Recorded::default()),
        Err(e) => Err(e),
    }
}

/// Applies what recording made of an outcome to the outcome itself.
pub fn apply(o: &mut NodeOutcome, result: RecordResult) {
    match result {
        RecordResult::Recorded(r) => o.recorded = Some(r),
        RecordResult::Unreadable(why) => {
            o.status = NodeStatus::Error;
            o.failure = Some(super::outcome::FailureKind::Remote);
            o.reason = Some(why);
        }
        RecordResult::Database(e) => o.recorded = Some(Recorded { error: Some(e), ..Recorded::default() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FailureKind;
    use crate::hw::fixture::sample::hgx_b200_node;
    use crate::inventory::now;

    fn outcome(step: Step, status: NodeStatus) -> NodeOutcome {
        NodeOutcome {
            node: "node07".into(),
            step,
            status,
            started: now(),
            finished: now(),
            duration_ms: 1,
            remote_exit: None,
            verdict: None,
            failure: None,
            reason: None,
            binary: None,
            report: None,
            recorded: None,
        }
    }

    fn open() -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().expect("tempdir");
        let inv = Inventory::open(dir.path().join("kiln.db")).expect("open");
        (dir, inv)
    }

    fn burnin(report: serde_json::Value) -> NodeOutcome {
        NodeOutcome { remote_exit: Some(0), report: Some(report), ..outcome(Step::Burnin, NodeStatus::Pass) }
    }

    #[test]
    fn a_burnin_is_recorded_against_the_last_recorded_model() {
        let (_dir, mut inv) = open();
        let doc = serde_json::json!({
            "kind": "kiln.burnin", "schema_version": 1, "kiln_version": "0.1.0", "hostname": "hgx-b200-01",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:05Z", "duration_s": 5.0,
            "tests_requested": ["host"], "gemm_dtype": "bf16", "platform": "hgx-b200",
            "platform_source": "detected", "gpu_access": {"status": "not_requested"},
            "results": [], "telemetry": [], "findings": [], "verdict": "pass", "incomplete": false
        });
        // No node in the document and none recorded: nothing to record it against.
        match record_outcome(&mut inv, "r1", &burnin(doc.clone())) {
            RecordResult::Unreadable(why) => assert!(why.contains("no model of the node"), "{why}"),
            other => panic!("expected unreadable, got {other:?}"),
        }
        assert!(inv.node("node07").expect("query").is_none(), "nothing written");

        let validated = NodeOutcome {
            report: Some(serde_json::json!({
                "schema_version": 1, "kind": "kiln.validate", "node": "hgx-b200-01", "platform": "hgx-b200",
                "platform_origin": "built-in", "platform_selection": "detected", "verdict": "pass",
                "summary": {"pass": 0, "fail": 0, "skipped": 0, "error": 0}, "findings": [],
                "inspected": hgx_b200_node("hgx-b200-01"),
            })),
            remote_exit: Some(0),
            ..outcome(Step::Validate, NodeStatus::Pass)
        };
        let RecordResult::Recorded(r) = record_outcome(&mut inv, "r1", &validated) else { panic!("recorded") };
        assert_eq!((r.state.as_deref(), r.reported_hostname.as_deref()), (Some("validated"), Some("hgx-b200-01")));
        // A burn-in that could not run a requested test (exit 7) is kept but moves nothing.
        let mut incomplete = doc.clone();
        incomplete["incomplete"] = serde_json::json!(true);
        let skipped = NodeOutcome { remote_exit: Some(7), ..burnin(incomplete) };
        let RecordResult::Recorded(r) = record_outcome(&mut inv, "r1", &skipped) else { panic!("recorded") };
        assert_eq!(r.state.as_deref(), Some("validated"));
        let RecordResult::Recorded(r) = record_outcome(&mut inv, "r1", &burnin(doc)) else { panic!("recorded") };
        assert_eq!(r.state.as_deref(), Some("burned_in"));
        let rows: i64 =
            inv.conn.query_row("SELECT COUNT(*) FROM burnin_runs", [], |row| row.get(0)).expect("count burn-in rows");
        assert_eq!(rows, 2, "the burn-in report itself is recorded with each run");
        let id = inv.node("node07").expect("query").expect("node").id;
        let run = inv.latest_run_of_kind(id, RunKind::Burnin).expect("query").expect("burn-in run");
        assert_eq!(inv.run_node(run.id).expect("node").gpus.gpus().len(), 8, "the validated node's model");
        assert_eq!(run.platform.as_deref(), Some("hgx-b200"));
        assert_eq!(
            already_passed(&inv, "node07", Step::Burnin).expect("query").map(|r| r.starts_with("already passed at")),
            Some(true)
        );
        assert!(already_passed(&inv, "node07", Step::Validate).expect("query").is_some());
        assert_eq!(already_passed(&inv, "node07", Step::Status).expect("query"), None);
    }

    #[test]
    fn a_node_that_could_not_run_fails_unless_held_or_refused_as_asked() {
        let (_dir, mut inv) = open();
        let lost = NodeOutcome {
            failure: Some(FailureKind::Timeout),
            reason: Some("node07: command timed out after 900 s".into()),
            ..outcome(Step::Validate, NodeStatus::PeerError)
        };
        let RecordResult::Recorded(r) = record_outcome(&mut inv, "r1", &lost) else { panic!("recorded") };
        assert_eq!(r.state.as_deref(), Some("failed"));
        assert_eq!(
            r.state_reason.as_deref(),
            Some("validate could not run (timeout): node07: command timed out after 900 s")
        );
        assert_eq!(inv.node("node07").expect("query").expect("node").rack.as_deref(), Some("r1"));

        let held = LifecycleState::Quarantined { reason: "smoke".into() };
        inv.transition("node07", &held, "tech", "hold").expect("quarantine");
        let RecordResult::Recorded(r) = record_outcome(&mut inv, "r1", &lost) else { panic!("recorded") };
        assert_eq!(r.state.as_deref(), Some("quarantined"), "a person's hold outranks a run");

        inv.transition("node07", &LifecycleState::Enrolled, "lead", "released").expect("release");
        let refused = NodeOutcome {
            remote_exit: Some(crate::exit::BAD_INPUT),
            failure: Some(FailureKind::Remote),
            reason: Some("kiln on the node exited 4 (bad input)".into()),
            ..outcome(Step::Validate, NodeStatus::Error)
        };
        let RecordResult::Recorded(r) = record_outcome(&mut inv, "r1", &refused) else { panic!("recorded") };
        assert_eq!(r.state.as_deref(), Some("enrolled"), "an unknown --platform is not the node's fault");
    }

    #[test]
    fn a_validate_report_without_its_node_is_unreadable() {
        let (_dir, mut inv) = open();
        let old = NodeOutcome {
            report: Some(serde_json::json!({
                "schema_version": 1, "kind": "kiln.validate", "node": "n", "platform": "hgx-b200",
                "platform_origin": "built-in", "platform_selection": "detected", "verdict": "pass",
                "summary": {"pass": 0, "fail": 0, "skipped": 0, "error": 0}, "findings": []
            })),
            remote_exit: Some(0),
            ..outcome(Step::Validate, NodeStatus::Pass)
        };
        let result = record_outcome(&mut inv, "r1", &old);
        let RecordResult::Unreadable(why) = result.clone() else { panic!("unreadable: {result:?}") };
        assert!(why.contains("predates --with-node"), "{why}");
        let mut o = old;
        apply(&mut o, result);
        assert_eq!((o.status, o.failure), (NodeStatus::Error, Some(FailureKind::Remote)));
        assert!(inv.node("node07").expect("query").is_none());
    }
}
