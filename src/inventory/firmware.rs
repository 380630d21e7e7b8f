//! BMC firmware readings: the firmware inventory a node's BMC lists, recorded as a run of its own kind.
//!
//! The reading is a run of kind `bmc_firmware` whose components are the
//! firmware items (kind `firmware`). It is kept apart from the node runs
//! (inspect, validate, burn-in): it judges nothing, moves no lifecycle state,
//! and the queries that compare a node's runs (`latest_run`, `previous_run`)
//! skip it, so that a BMC reading never shows as "every part removed".

use super::record::{insert_run_row, RunRow};
use rusqlite::{params, TransactionBehavior};
use time::OffsetDateTime;

use crate::model::{Cpus, Dmi, GpuInventory, Memory, Node, NODE_SCHEMA_VERSION};

use super::lifecycle::{append_event, EventRow};
use super::timestamp::format_timestamp;
use super::{ComponentRecord, Inventory, InventoryError, RunId};
use crate::lifecycle::LifecycleState;

/// The `runs.kind` of a BMC firmware reading.
pub const BMC_FIRMWARE_RUN: &str = "bmc_firmware";

/// One firmware reading to record.
#[derive(Debug, Clone)]
pub struct FirmwareReading<'a> {
    /// The node's name (manifest name); enrolled when the inventory does not know it.
    pub node: &'a str,
    pub rack: Option<&'a str>,
    /// The firmware items, each of kind `firmware`.
    pub components: &'a [ComponentRecord],
    /// The exit code `kiln bmc firmware` gave (6 when an item could not be read).
    pub exit_code: i32,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub actor: &'a str,
}

/// Why a BMC firmware reading's node model is a placeholder.
pub(super) const BMC_READING: &str = "a BMC firmware reading: the node itself was not inspected";

/// The node JSON stored with a run that did not read the node (a firmware reading, a rank of a
/// collective): the name only, and GPUs marked as not inspected, for `why`.
pub(super) fn placeholder_node(hostname: &str, why: &str) -> Node {
    Node {
        schema_version: NODE_SCHEMA_VERSION,
        hostname: hostname.to_string(),
        kernel: None,
        dmi: Dmi::default(),
        cpus: Cpus::default(),
        memory: Memory::default(),
        disks: Vec::new(),
        net: Vec::new(),
        pci: Vec::new(),
        gpus: GpuInventory::NotInspected { reason: why.to_string() },
        problems: Vec::new(),
        imex: None,
    }
}

impl Inventory {
    /// Record a BMC firmware reading (node, run, components) in one transaction.
    pub fn record_bmc_firmware(&mut self, r: &FirmwareReading<'_>) -> Result<RunId, InventoryError> {
        let failed = |source| InventoryError::RecordFirmware { hostname: r.node.to_string(), source };
        let encode = |what, source| InventoryError::Encode { hostname: r.node.to_string(), what, source };
        let node_json = serde_json::to_string(&placeholder_node(r.node, BMC_READING)).map_err(|e| encode("node", e))?;
        let extras = component_extras(r.components).map_err(|e| encode("components", e))?;
        let started = format_timestamp(r.started_at);
        let finished = format_timestamp(r.finished_at);

        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let seen = NodeSeen { name: r.node, started: &started, finished: &finished, rack: r.rack, actor: r.actor };
        let node_id = find_or_enroll(&tx, &seen, "first recorded by a BMC firmware reading")
            .map_err(|e| e.into_inventory(failed))?;
        let model = super::models::store_model(&tx, &node_json).map_err(failed)?;
        let row = RunRow {
            node_id,
            kind: BMC_FIRMWARE_RUN,
            started: &started,
            finished: &finished,
            platform: None,
            verdict: None,
            exit_code: r.exit_code,
            model_id: model,
            actor: r.actor,
        };
        let run_id = insert_run_row(&tx, &row).map_err(failed)?;
        insert_components(&tx, run_id, node_id, r.components, &extras).map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::debug!(node = r.node, run = run_id, items = r.components.len(), "recorded BMC firmware");
        Ok(RunId(run_id))
    }

    /// A node's newest BMC firmware reading, if any.
    pub fn latest_bmc_firmware(&self, node: super::NodeId) -> Result<Option<super::RunRow>, InventoryError> {
        Ok(self.runs(node)?.into_iter().find(|r| r.kind == BMC_FIRMWARE_RUN))
    }
}

/// A node seen by a reading that did not inspect it: its manifest name, the
/// reading's times, its rack and who asked.
pub(super) struct NodeSeen<'a> {
    pub name: &'a str,
    pub started: &'a str,
    pub finished: &'a str,
    pub rack: Option<&'a str>,
    pub actor: &'a str,
}

/// The node's id, its `last_seen` and rack brought up to date; a node not yet
/// known is enrolled, with `cause` as the reason of its first lifecycle event. A reading in a
/// rack names the rack's place (`node_in_rack`); one without a rack names the node as a person
/// would (`node_named`: its name, `RACK/NAME` or its machine), and a name two nodes answer to is
/// an error listing them.
pub(super) fn find_or_enroll(
    tx: &rusqlite::Transaction<'_>,
    seen: &NodeSeen<'_>,
    cause: &str,
) -> Result<i64, super::machine::NameError> {
    let existing = match seen.rack {
        Some(_) => super::machine::node_in_rack(tx, seen.name, seen.rack)?,
        None => super::machine::node_named(tx, seen.name)?,
    };
    if let Some(id) = existing {
        tx.execute(
            "UPDATE nodes SET last_seen = max(last_seen, ?2), rack = coalesce(?3, rack) WHERE id = ?1",
            params![id, seen.finished, seen.rack],
        )?;
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO nodes (name, first_seen, last_seen, rack, state) VALUES (?1, ?2, ?3, ?4, 'enrolled')",
        params![seen.name, seen.started, seen.finished, seen.rack],
    )?;
    let id = tx.last_insert_rowid();
    let event = EventRow {
        node_id: id,
        at: seen.started,
        from: None,
        to: &LifecycleState::Enrolled,
        actor: seen.actor,
        cause,
        run_id: None,
    };
    append_event(tx, &event)?;
    Ok(id)
}

/// Each component's `extra` as its JSON, or `None` when it has none.
pub(super) fn component_extras(components: &[ComponentRecord]) -> serde_json::Result<Vec<Option<String>>> {
    components
        .iter()
        .map(|c| if c.extra.is_empty() { Ok(None) } else { serde_json::to_string(&c.extra).map(Some) })
        .collect()
}

/// `components` (with `extras` from [`component_extras`]) as rows of run `run_id` of node `node_id`.
pub(super) fn insert_components(
    tx: &rusqlite::Connection,
    run_id: i64,
    node_id: i64,
    components: &[ComponentRecord],
    extras: &[Option<String>],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO components (run_id, node_id, kind, slot, address, vendor, model, serial, firmware, extra)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (c, extra) in components.iter().zip(extras) {
        insert.execute(params![
            run_id, node_id, c.kind, c.slot, c.address, c.vendor, c.model, c.serial, c.firmware, extra
        ])?;
    }
    Ok(())
}
