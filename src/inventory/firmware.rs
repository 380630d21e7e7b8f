//! BMC firmware readings: the firmware inventory a node's BMC lists, recorded as a run of its own kind.
//!
//! The reading is a run of kind `bmc_firmware` whose components are the
//! firmware items (kind `firmware`). It is kept apart from the node runs
//! (inspect, validate, burn-in): it judges nothing, moves no lifecycle state,
//! and the queries that compare a node's runs (`latest_run`, `previous_run`)
//! skip it, so that a BMC reading never shows as "every part removed".

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

/// The node JSON stored with a firmware reading: the name only, and GPUs
/// marked as not inspected, since the node itself was not read.
pub(super) fn placeholder_node(hostname: &str) -> Node {
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
        gpus: GpuInventory::NotInspected { reason: "a BMC firmware reading: the node itself was not inspected".into() },
        problems: Vec::new(),
    }
}

impl Inventory {
    /// Record a BMC firmware reading (node, run, components) in one transaction.
    pub fn record_bmc_firmware(&mut self, r: &FirmwareReading<'_>) -> Result<RunId, InventoryError> {
        let failed = |source| InventoryError::RecordFirmware { hostname: r.node.to_string(), source };
        let encode = |what, source| InventoryError::Encode { hostname: r.node.to_string(), what, source };
        let node_json = serde_json::to_string(&placeholder_node(r.node)).map_err(|e| encode("node", e))?;
        let extras = r
            .components
            .iter()
            .map(|c| if c.extra.is_empty() { Ok(None) } else { serde_json::to_string(&c.extra).map(Some) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| encode("components", e))?;
        let started = format_timestamp(r.started_at);
        let finished = format_timestamp(r.finished_at);

        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let existing = match r.rack {
            Some(_) => super::machine::node_in_rack(&tx, r.node, r.rack).map_err(failed)?,
            None => super::machine::node_named(&tx, r.node).map_err(|e| e.into_inventory(failed))?,
        };
        let node_id = match existing {
            Some(id) => {
                tx.execute(
                    "UPDATE nodes SET last_seen = max(last_seen, ?2), rack = coalesce(?3, rack) WHERE id = ?1",
                    params![id, finished, r.rack],
                )
                .map_err(failed)?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO nodes (name, first_seen, last_seen, rack, state) VALUES (?1, ?2, ?3, ?4, 'enrolled')",
                    params![r.node, started, finished, r.rack],
                )
                .map_err(failed)?;
                let id = tx.last_insert_rowid();
                let event = EventRow {
                    node_id: id,
                    at: &started,
                    from: None,
                    to: &LifecycleState::Enrolled,
                    actor: r.actor,
                    cause: "first recorded by a BMC firmware reading",
                    run_id: None,
                };
                append_event(&tx, &event).map_err(failed)?;
                id
            }
        };
        tx.execute(
            "INSERT INTO runs (node_id, kind, started_at, finished_at, kiln_version, platform, verdict, exit_code,
                               node_json, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, ?6, ?7, ?8)",
            params![
                node_id,
                BMC_FIRMWARE_RUN,
                started,
                finished,
                env!("CARGO_PKG_VERSION"),
                r.exit_code,
                node_json,
                r.actor
            ],
        )
        .map_err(failed)?;
        let run_id = tx.last_insert_rowid();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO components (run_id, node_id, kind, slot, address, vendor, model, serial, firmware,
                                             extra)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(failed)?;
            for (c, extra) in r.components.iter().zip(&extras) {
                insert
                    .execute(params![
                        run_id, node_id, c.kind, c.slot, c.address, c.vendor, c.model, c.serial, c.firmware, extra
                    ])
                    .map_err(failed)?;
            }
        }
        tx.commit().map_err(failed)?;
        tracing::debug!(node = r.node, run = run_id, items = r.components.len(), "recorded BMC firmware");
        Ok(RunId(run_id))
    }

    /// A node's newest BMC firmware reading, if any.
    pub fn latest_bmc_firmware(&self, node: super::NodeId) -> Result<Option<super::RunRow>, InventoryError> {
        Ok(self.runs(node)?.into_iter().find(|r| r.kind == BMC_FIRMWARE_RUN))
    }
}
