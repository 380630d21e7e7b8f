//! `record_run`: a node's run (node, components, findings, lifecycle) written in one transaction.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::checks::{Finding, Verdict};
use crate::lifecycle::{check_transition, state_after_run, LifecycleState, Move, RunKind};
use crate::model::{MachineIdentity, Node};

use super::components::{components_of, ComponentRecord};
use super::finding_rows::insert_run_findings;
use super::lifecycle::{append_event, read_state, set_state, EventRow};
use super::machine::{place_of_run, Place};
use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};

/// Row id of a node in the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub i64);

/// Row id of a recorded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

/// What recording a run does to the node's lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunLifecycle {
    /// Leave the state alone.
    Leave,
    /// Move the node as the run's outcome implies (`lifecycle::state_after_run`).
    FromOutcome,
    /// Move the node to this state; an illegal move refuses the whole run.
    To { state: LifecycleState, cause: String },
}

/// One run to record. `actor` is a person's or a tool's name; never a credential.
#[derive(Debug, Clone)]
pub struct RunRecord<'a> {
    pub kind: RunKind,
    pub node: &'a Node,
    /// The node's place by name, when the caller knows one (a rack manifest's node name): the
    /// run is recorded in that place whichever machine answered, and a different machine there
    /// than before is a machine event. `None`: the machine is the key (`model::MachineIdentity`),
    /// its hostname data.
    pub name: Option<&'a str>,
    /// The platform spec the node was judged against, when one was.
    pub platform: Option<&'a str>,
    /// The rack the node stands in, when the caller knows it.
    pub rack: Option<&'a str>,
    pub findings: &'a [Finding],
    /// `None` for a run that judges nothing (inspect).
    pub verdict: Option<Verdict>,
    pub exit_code: i32,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub actor: &'a str,
    pub lifecycle: RunLifecycle,
}

impl<'a> RunRecord<'a> {
    /// A run that started and finished now, with no findings, no verdict,
    /// exit code 0 and the lifecycle moved by its outcome; set the rest with
    /// struct update syntax.
    pub fn new(kind: RunKind, node: &'a Node, actor: &'a str) -> Self {
        let t = now();
        RunRecord {
            kind,
            node,
            name: None,
            platform: None,
            rack: None,
            findings: &[],
            verdict: None,
            exit_code: 0,
            started_at: t,
            finished_at: t,
            actor,
            lifecycle: RunLifecycle::FromOutcome,
        }
    }
}

/// More writes of a run inside `record_run`'s transaction, given the run's id.
pub(crate) type AlsoWrite<'a> = dyn FnMut(&Connection, RunId) -> rusqlite::Result<()> + 'a;

/// The parts of a run `record_run` has just inserted, inside its transaction, so a test can stop there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordStage {
    Run,
    Components,
    Findings,
}

/// Why a run's transaction stopped: SQLite refused a statement, or the run
/// asked for an illegal lifecycle move.
enum Abort {
    Sql(rusqlite::Error),
    Illegal(crate::lifecycle::IllegalTransition),
}

impl From<rusqlite::Error> for Abort {
    fn from(e: rusqlite::Error) -> Self {
        Abort::Sql(e)
    }
}

impl Inventory {
    /// Record one run: create or update its node, then add the run, a
    /// snapshot of the node's components, its findings and any lifecycle
    /// change, all in one transaction. A crash or error leaves no part of it.
    pub fn record_run(&mut self, run: &RunRecord<'_>) -> Result<RunId, InventoryError> {
        self.record_run_with(run, &mut |_, _| Ok(()))
    }

    /// `record_run`, plus `also` writing more rows of the run (burn-in
    /// results, telemetry) inside the same transaction, after the findings:
    /// if `also` fails, nothing of the run is recorded.
    pub(crate) fn record_run_with(
        &mut self,
        run: &RunRecord<'_>,
        also: &mut AlsoWrite<'_>,
    ) -> Result<RunId, InventoryError> {
        self.record_run_observed(run, also, &mut |_| {})
    }

    pub(crate) fn record_run_observed(
        &mut self,
        run: &RunRecord<'_>,
        also: &mut AlsoWrite<'_>,
        observe: &mut dyn FnMut(RecordStage),
    ) -> Result<RunId, InventoryError> {
        let identity = MachineIdentity::of(run.node);
        let reported = Some(run.node.hostname.trim()).filter(|h| !h.is_empty());
        let hostname = match (run.name, reported, identity.describe()) {
            (Some(name), _, _) => name.to_string(),
            (None, Some(h), _) => h.to_string(),
            (None, None, Some(machine)) => machine,
            (None, None, None) => return Err(InventoryError::NoIdentity { kind: run.kind }),
        };
        let node_json = serde_json::to_string(run.node).map_err(|source| InventoryError::Encode {
            hostname: hostname.clone(),
            what: "node",
            source,
        })?;
        let components = components_of(run.node);
        let extras = components
            .iter()
            .map(|c| if c.extra.is_empty() { Ok(None) } else { serde_json::to_string(&c.extra).map(Some) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| InventoryError::Encode { hostname: hostname.clone(), what: "components", source })?;

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| InventoryError::RecordRun { hostname: hostname.clone(), kind: run.kind, source })?;
        let result = write_run(&tx, run, &identity, &node_json, &components, &extras, also, observe)
            .and_then(|written| tx.commit().map(|()| written).map_err(Abort::Sql));
        match result {
            Ok((id, change)) => {
                tracing::debug!(node = %hostname, run = id.0, kind = %run.kind, "recorded run");
                if let Some((from, to)) = change {
                    tracing::info!(node = %hostname, %from, %to, "lifecycle state changed");
                }
                Ok(id)
            }
            Err(Abort::Sql(source)) => Err(InventoryError::RecordRun { hostname, kind: run.kind, source }),
            Err(Abort::Illegal(source)) => {
                Err(InventoryError::IllegalTransition { to: source.to.clone(), hostname, source: Box::new(source) })
            }
        }
    }
}

/// The statements of one run, inside the caller's transaction. Returns the
/// run's id and the lifecycle change it made, if any.
#[allow(clippy::too_many_arguments)]
fn write_run(
    tx: &Transaction<'_>,
    run: &RunRecord<'_>,
    identity: &MachineIdentity,
    node_json: &str,
    components: &[ComponentRecord],
    extras: &[Option<String>],
    also: &mut AlsoWrite<'_>,
    observe: &mut dyn FnMut(RecordStage),
) -> Result<(RunId, Option<(LifecycleState, LifecycleState)>), Abort> {
    let started = format_timestamp(run.started_at);
    let finished = format_timestamp(run.finished_at);
    let Place { node_id, created, machine_moves } = place_of_run(tx, run, identity, &started, &finished)?;

    let model = super::models::store_model(tx, node_json)?;
    let row = RunRow {
        node_id,
        kind: run.kind.as_str(),
        started: &started,
        finished: &finished,
        platform: run.platform,
        verdict: run.verdict.map(Verdict::as_str),
        exit_code: run.exit_code,
        model_id: model,
        actor: run.actor,
    };
    let run_id = insert_run_row(tx, &row)?;
    machine_moves.write(tx, run_id, &finished)?;
    observe(RecordStage::Run);

    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO components (run_id, node_id, kind, slot, address, vendor, model, serial, firmware, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (c, extra) in components.iter().zip(extras) {
            insert.execute(params![
                run_id, node_id, c.kind, c.slot, c.address, c.vendor, c.model, c.serial, c.firmware, extra
            ])?;
        }
    }
    observe(RecordStage::Components);

    insert_run_findings(tx, run_id, run.findings)?;
    observe(RecordStage::Findings);
    also(tx, RunId(run_id))?;

    let mut current = read_state(tx, node_id)?;
    if created {
        append_event(
            tx,
            &EventRow {
                node_id,
                at: &started,
                from: None,
                to: &LifecycleState::Enrolled,
                actor: run.actor,
                cause: &format!("first recorded by {} run {run_id}", run.kind),
                run_id: Some(run_id),
            },
        )?;
        current = LifecycleState::Enrolled;
    }
    let target = match &run.lifecycle {
        RunLifecycle::Leave => None,
        RunLifecycle::FromOutcome => state_after_run(&current, run.kind, run.verdict, run.findings).map(|to| {
            let outcome = run.verdict.map_or("completed", |v| match v {
                Verdict::Pass => "passed",
                Verdict::Fail => "failed",
                Verdict::Error => "could not complete",
            });
            (to, format!("{} run {run_id} {outcome}", run.kind))
        }),
        RunLifecycle::To { state, cause } => Some((state.clone(), cause.clone())),
    };
    let mut change = None;
    if let Some((to, cause)) = target {
        if check_transition(&current, &to).map_err(Abort::Illegal)? == Move::Changed {
            set_state(tx, node_id, &to)?;
            append_event(
                tx,
                &EventRow {
                    node_id,
                    at: &finished,
                    from: Some(&current),
                    to: &to,
                    actor: run.actor,
                    cause: &cause,
                    run_id: Some(run_id),
                },
            )?;
            change = Some((current, to));
        }
    }
    Ok((RunId(run_id), change))
}

/// One row of `runs`, as every kind of run writes it (the node model is stored once, by id).
pub(super) struct RunRow<'a> {
    pub node_id: i64,
    pub kind: &'a str,
    pub started: &'a str,
    pub finished: &'a str,
    pub platform: Option<&'a str>,
    pub verdict: Option<&'a str>,
    pub exit_code: i32,
    pub model_id: i64,
    pub actor: &'a str,
}

/// Inserts `row` into `runs` inside the caller's transaction; its id.
pub(super) fn insert_run_row(tx: &rusqlite::Connection, row: &RunRow<'_>) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO runs (node_id, kind, started_at, finished_at, kiln_version, platform, verdict, exit_code,
                           node_json, model_id, actor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '', ?9, ?10)",
    )?
    .execute(params![
        row.node_id,
        row.kind,
        row.started,
        row.finished,
        env!("CARGO_PKG_VERSION"),
        row.platform,
        row.verdict,
        row.exit_code,
        row.model_id,
        row.actor,
    ])?;
    Ok(tx.last_insert_rowid())
}
