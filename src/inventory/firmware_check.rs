//! Firmware compliance checks: a node's firmware judged against a recipe, recorded as a run of
//! kind `firmware` with its findings and verdict.
//!
//! The run's components are the versions read (kind `firmware`, the inventory member or in-band
//! place as slot, the component's name as model, the version as firmware), so two checks of a
//! node compare like any two snapshots; every version that changed since the node's previous
//! firmware check is written to its lifecycle history as a note in the same transaction, which
//! keeps firmware changes in the node's part history. The run has a verdict, so hand-off
//! (`handoff::decide`, through `latest_judged_runs`) keeps a non-compliant node out of service;
//! like a BMC firmware reading it is kept out of the node-run comparisons (`latest_run`).

use super::record::{insert_run_row, RunRow};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::diff::{diff_components, Change};
use super::finding_rows::insert_run_findings;
use super::firmware::{component_extras, find_or_enroll, insert_components, NodeSeen};
use super::lifecycle::{append_event, read_state, set_state, EventRow};
use super::timestamp::format_timestamp;
use super::{ComponentRecord, Inventory, InventoryError, RunId};
use crate::checks::{Finding, Verdict};
use crate::lifecycle::{check_transition, LifecycleState, Move};
use crate::model::Node;

/// The `runs.kind` of a firmware compliance check.
pub const FIRMWARE_CHECK_RUN: &str = "firmware";

/// One firmware check to record.
#[derive(Debug, Clone)]
pub struct FirmwareCheckRecord<'a> {
    pub node: &'a str,
    pub rack: Option<&'a str>,
    /// The platform the recipe is for, when it names one (the run's `platform`).
    pub platform: Option<&'a str>,
    /// The node model the in-band versions came from, when one was recorded; else a
    /// placeholder naming only the node.
    pub inspected: Option<&'a Node>,
    /// Every version read, kind `firmware`.
    pub components: &'a [ComponentRecord],
    pub findings: &'a [Finding],
    pub verdict: Verdict,
    pub exit_code: i32,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub actor: &'a str,
    /// A lifecycle move that goes with the run (an update's failed step: `failed`), with its cause.
    pub move_to: Option<(LifecycleState, String)>,
}

impl Inventory {
    /// Record a firmware check in one transaction: the node (enrolled if unknown), the run with
    /// its components and findings, a note per firmware version changed since the previous
    /// check, and the lifecycle move if one is asked.
    pub fn record_firmware_check(&mut self, r: &FirmwareCheckRecord<'_>) -> Result<RunId, InventoryError> {
        let failed = |source| InventoryError::RecordFirmware { hostname: r.node.to_string(), source };
        let encode = |what, source| InventoryError::Encode { hostname: r.node.to_string(), what, source };
        let placeholder;
        let node = match r.inspected {
            Some(n) => n,
            None => {
                placeholder = super::firmware::placeholder_node(r.node, super::firmware::BMC_READING);
                &placeholder
            }
        };
        let node_json = serde_json::to_string(node).map_err(|e| encode("node", e))?;
        let extras = component_extras(r.components).map_err(|e| encode("components", e))?;
        let started = format_timestamp(r.started_at);
        let finished = format_timestamp(r.finished_at);

        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let seen = NodeSeen { name: r.node, started: &started, finished: &finished, rack: r.rack, actor: r.actor };
        let node_id =
            find_or_enroll(&tx, &seen, "first recorded by a firmware check").map_err(|e| e.into_inventory(failed))?;
        let previous: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM runs WHERE node_id = ?1 AND kind = ?2 ORDER BY started_at DESC, id DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![node_id, FIRMWARE_CHECK_RUN], |row| row.get(0)).optional())
            .map_err(failed)?;
        let before = match previous {
            Some(run) => self_components(&tx, run).map_err(failed)?,
            None => Vec::new(),
        };
        let model = super::models::store_model(&tx, &node_json).map_err(failed)?;
        let row = RunRow {
            node_id,
            kind: FIRMWARE_CHECK_RUN,
            started: &started,
            finished: &finished,
            platform: r.platform,
            verdict: Some(r.verdict.as_str()),
            exit_code: r.exit_code,
            model_id: model,
            actor: r.actor,
        };
        let run_id = insert_run_row(&tx, &row).map_err(failed)?;
        insert_components(&tx, run_id, node_id, r.components, &extras).map_err(failed)?;
        insert_run_findings(&tx, run_id, r.findings).map_err(failed)?;
        let mut state = read_state(&tx, node_id).map_err(failed)?;
        if previous.is_some() {
            for change in diff_components(&before, r.components) {
                if let Change::FirmwareChanged { .. } = change.change {
                    let cause = format!("firmware changed: {change}");
                    let event = EventRow {
                        node_id,
                        at: &finished,
                        from: Some(&state),
                        to: &state,
                        actor: r.actor,
                        cause: &cause,
                        run_id: Some(run_id),
                    };
                    append_event(&tx, &event).map_err(failed)?;
                }
            }
        }
        if let Some((to, cause)) = &r.move_to {
            let moved = check_transition(&state, to).map_err(|source| InventoryError::IllegalTransition {
                to: source.to.clone(),
                hostname: r.node.to_string(),
                source: Box::new(source),
            })?;
            if moved == Move::Changed {
                set_state(&tx, node_id, to).map_err(failed)?;
                let event = EventRow {
                    node_id,
                    at: &finished,
                    from: Some(&state),
                    to,
                    actor: r.actor,
                    cause,
                    run_id: Some(run_id),
                };
                append_event(&tx, &event).map_err(failed)?;
                state = to.clone();
            }
        }
        tx.commit().map_err(failed)?;
        tracing::debug!(node = r.node, run = run_id, state = state.name(), "recorded firmware check");
        Ok(RunId(run_id))
    }

    /// A node's newest firmware check, if any.
    pub fn latest_firmware_check(&self, node: super::NodeId) -> Result<Option<super::RunRow>, InventoryError> {
        Ok(self.runs(node)?.into_iter().find(|r| r.kind == FIRMWARE_CHECK_RUN))
    }
}

/// The components of a run, read inside the recording transaction.
fn self_components(tx: &rusqlite::Transaction<'_>, run: i64) -> rusqlite::Result<Vec<ComponentRecord>> {
    let mut stmt = tx.prepare_cached(
        "SELECT kind, slot, address, vendor, model, serial, firmware FROM components WHERE run_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([run], |row| {
        Ok(ComponentRecord {
            kind: row.get(0)?,
            slot: row.get(1)?,
            address: row.get(2)?,
            vendor: row.get(3)?,
            model: row.get(4)?,
            serial: row.get(5)?,
            firmware: row.get(6)?,
            extra: serde_json::Map::new(),
        })
    })?;
    rows.collect()
}
