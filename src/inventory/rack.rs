//! Rack runs: one row per `kiln rack` step over a rack, with the findings only visible across nodes.

use std::collections::BTreeMap;

use rusqlite::{params, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::checks::{Finding, Verdict};
use crate::lifecycle::{check_transition, LifecycleState, Move};

use super::finding_rows::{finding_from_row, insert_finding};
use super::lifecycle::{append_event, read_state, set_state, EventRow};
use super::machine::node_in_rack;
use super::query::enum_column;
use super::timestamp::format_timestamp;
use super::{Inventory, InventoryError};

/// Row id of a recorded rack run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RackRunId(pub i64);

/// One rack step to record. Each node's own run is recorded on its own
/// (`record_run`); this is the step as a whole.
#[derive(Debug, Clone)]
pub struct RackRunRecord<'a> {
    /// The rack manifest's id.
    pub rack: &'a str,
    /// The step: `inspect`, `validate`, `burnin`.
    pub kind: &'a str,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    /// The rack-level findings (firmware drift, NVLink domain).
    pub findings: &'a [Finding],
    /// The exit code of the whole step.
    pub exit_code: i32,
    /// Each node's status in the step (`pass`, `fail`, `error`, `skipped`, `peer_error`).
    pub node_status: &'a BTreeMap<String, String>,
    /// A person's or a tool's name; never a credential.
    pub actor: &'a str,
    /// The nodes failing rack findings name (or hold, for a finding about
    /// their whole NVLink domain), each with its reason (`rack validate
    /// failed: rack.fabric.cluster`): moved to `failed` in the same
    /// transaction as the run. A node the inventory does not know, or that is
    /// quarantined, is left as it is.
    pub gate: &'a BTreeMap<String, String>,
}

/// A recorded rack run, without its findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RackRunRow {
    pub id: RackRunId,
    pub rack: String,
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
    pub kiln_version: String,
    /// The verdict of the rack findings alone.
    pub verdict: Verdict,
    pub exit_code: i32,
    pub node_status: BTreeMap<String, String>,
    pub actor: String,
}

impl Inventory {
    /// Record a rack step and its rack findings in one transaction.
    pub fn record_rack_run(&mut self, run: &RackRunRecord<'_>) -> Result<RackRunId, InventoryError> {
        let failed = |source| InventoryError::RecordRackRun { rack: run.rack.to_string(), source };
        let node_status = serde_json::to_string(run.node_status).map_err(|source| InventoryError::Encode {
            hostname: run.rack.to_string(),
            what: "rack node status",
            source,
        })?;
        let verdict = Verdict::of(run.findings);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        tx.prepare_cached(
            "INSERT INTO rack_runs (rack, kind, started_at, finished_at, kiln_version, verdict, exit_code,
                                    node_status, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                run.rack,
                run.kind,
                format_timestamp(run.started_at),
                format_timestamp(run.finished_at),
                env!("CARGO_PKG_VERSION"),
                verdict.as_str(),
                run.exit_code,
                node_status,
                run.actor,
            ])
        })
        .map_err(failed)?;
        let id = tx.last_insert_rowid();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO rack_findings (rack_run_id, \"check\", outcome, severity, component_label,
                         component_kind, component_address, component_gpu_index, component_serial, component_slot,
                         component_name, expected, actual, message, action)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(failed)?;
            for f in run.findings {
                insert_finding(&mut insert, id, f).map_err(failed)?;
            }
        }
        let mut moved = Vec::new();
        for (node, reason) in run.gate {
            let Some(node_id) = node_in_rack(&tx, node, Some(run.rack)).map_err(failed)? else { continue };
            let from = read_state(&tx, node_id).map_err(failed)?;
            let to = LifecycleState::Failed { reason: reason.clone() };
            // Quarantine is a person's hold: a rack finding does not override it.
            if check_transition(&from, &to) != Ok(Move::Changed) {
                continue;
            }
            set_state(&tx, node_id, &to).map_err(failed)?;
            let at = format_timestamp(run.finished_at);
            let cause = format!("rack {} run {id} failed", run.kind);
            let event = EventRow {
                node_id,
                at: &at,
                from: Some(&from),
                to: &to,
                actor: run.actor,
                cause: &cause,
                run_id: None,
            };
            append_event(&tx, &event).map_err(failed)?;
            moved.push((node.as_str(), from, to));
        }
        tx.commit().map_err(failed)?;
        for (node, from, to) in moved {
            tracing::info!(node, %from, %to, actor = run.actor, "lifecycle state changed by a rack finding");
        }
        tracing::debug!(rack = run.rack, run = id, kind = run.kind, "recorded rack run");
        Ok(RackRunId(id))
    }

    /// A rack's recorded runs, newest first.
    pub fn rack_runs(&self, rack: &str) -> Result<Vec<RackRunRow>, InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("runs of rack {rack}"), source };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, rack, kind, started_at, finished_at, kiln_version, verdict, exit_code, node_status, actor
                 FROM rack_runs WHERE rack = ?1 ORDER BY started_at DESC, id DESC",
            )
            .map_err(failed)?;
        let rows = stmt
            .query_map([rack], |row| {
                let text: String = row.get(8)?;
                let node_status = serde_json::from_str(&text).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e))
                })?;
                Ok(RackRunRow {
                    id: RackRunId(row.get(0)?),
                    rack: row.get(1)?,
                    kind: row.get(2)?,
                    started_at: row.get(3)?,
                    finished_at: row.get(4)?,
                    kiln_version: row.get(5)?,
                    verdict: enum_column(row, 6)?,
                    exit_code: row.get(7)?,
                    node_status,
                    actor: row.get(9)?,
                })
            })
            .map_err(failed)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(failed)
    }

    /// The findings recorded with a rack run, in recorded order.
    pub fn rack_run_findings(&self, run: RackRunId) -> Result<Vec<Finding>, InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("findings of rack run {}", run.0), source };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT \"check\", outcome, severity, component_kind, component_address, component_gpu_index,
                        component_serial, component_slot, component_name, expected, actual, message, action
                 FROM rack_findings WHERE rack_run_id = ?1 ORDER BY id",
            )
            .map_err(failed)?;
        let rows = stmt.query_map([run.0], finding_from_row).map_err(failed)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(failed)
    }
}
