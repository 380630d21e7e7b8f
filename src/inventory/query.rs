//! Read-side queries for reports: nodes, their runs, component snapshots, findings, changes.

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checks::{Finding, Verdict};
use crate::lifecycle::{LifecycleState, RunKind};
use crate::model::Node;

use super::diff::{diff_components, ComponentChange};
use super::finding_rows::finding_from_row;
use super::record::{NodeId, RunId};
use super::{ComponentRecord, Inventory, InventoryError};

/// A node as the inventory knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    pub id: NodeId,
    /// What the node is called: its rack manifest name, else its hostname, else its serial.
    /// Two nodes may share one (two machines that answer to the same hostname).
    pub name: String,
    /// The hostname the node last reported.
    pub hostname: Option<String>,
    /// The machine in the node's place (`model::MachineIdentity::key`), when known.
    pub machine: Option<String>,
    pub system_uuid: Option<String>,
    pub board_serial: Option<String>,
    /// NVML chassis serial and tray index (NVL72 trays).
    pub chassis_serial: Option<String>,
    pub tray_index: Option<u32>,
    pub first_seen: String,
    pub last_seen: String,
    pub rack: Option<String>,
    pub platform: Option<String>,
    /// DMI system serial.
    pub serial: Option<String>,
    pub state: LifecycleState,
}

impl NodeRow {
    /// The machine in the node's place as a technician reads it, when known.
    pub fn machine_label(&self) -> Option<String> {
        crate::model::MachineIdentity {
            system_uuid: self.system_uuid.clone(),
            system_serial: self.serial.clone(),
            board_serial: self.board_serial.clone(),
            chassis_serial: self.chassis_serial.clone(),
            tray_index: self.tray_index,
        }
        .describe()
    }
}

/// One recorded run, without its node JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: RunId,
    pub node_id: NodeId,
    /// `inspect`, `validate`, `burnin`; kept as text so a database written by
    /// a newer kiln with more kinds still reads.
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
    pub kiln_version: String,
    pub platform: Option<String>,
    pub verdict: Option<Verdict>,
    pub exit_code: i32,
    pub actor: String,
}

/// What changed in a node's parts between two of its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunChanges {
    pub previous_run: RunId,
    pub run: RunId,
    pub changes: Vec<ComponentChange>,
}

/// Where a serial number was seen: which node, which run, which part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SerialSighting {
    /// The node's name.
    pub node: String,
    pub run_id: RunId,
    pub finished_at: String,
    pub component: ComponentRecord,
}

/// Decode a column holding a serde enum's text (`pass`, `critical`), naming
/// the column when the value is unknown.
pub(super) fn enum_column<T: DeserializeOwned>(row: &Row<'_>, column: usize) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_value(serde_json::Value::String(text))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}

fn json_object_column(row: &Row<'_>, column: usize) -> rusqlite::Result<serde_json::Map<String, serde_json::Value>> {
    match row.get::<_, Option<String>>(column)? {
        None => Ok(serde_json::Map::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))),
    }
}

const NODE_COLUMNS: &str = "n.id, n.name, n.first_seen, n.last_seen, n.rack, n.platform, n.serial, n.state, \
                            n.state_reason, n.hostname, n.machine, n.system_uuid, n.board_serial, \
                            n.chassis_serial, n.tray_index";
/// How many columns `NODE_COLUMNS` has.
const NODE_WIDTH: usize = 15;

fn node_row(row: &Row<'_>) -> rusqlite::Result<NodeRow> {
    let state = LifecycleState::from_parts(&row.get::<_, String>(7)?, row.get(8)?)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, Type::Text, Box::new(e)))?;
    Ok(NodeRow {
        id: NodeId(row.get(0)?),
        name: row.get(1)?,
        hostname: row.get(9)?,
        machine: row.get(10)?,
        system_uuid: row.get(11)?,
        board_serial: row.get(12)?,
        chassis_serial: row.get(13)?,
        tray_index: row.get(14)?,
        first_seen: row.get(2)?,
        last_seen: row.get(3)?,
        rack: row.get(4)?,
        platform: row.get(5)?,
        serial: row.get(6)?,
        state,
    })
}

const RUN_COLUMNS: &str =
    "r.id, r.node_id, r.kind, r.started_at, r.finished_at, r.kiln_version, r.platform, r.verdict, r.exit_code, r.actor";

/// Reads a run from `RUN_COLUMNS` starting at column `at`.
fn run_row(row: &Row<'_>, at: usize) -> rusqlite::Result<RunRow> {
    let verdict = match row.get::<_, Option<String>>(at + 7)? {
        None => None,
        Some(_) => Some(enum_column(row, at + 7)?),
    };
    Ok(RunRow {
        id: RunId(row.get(at)?),
        node_id: NodeId(row.get(at + 1)?),
        kind: row.get(at + 2)?,
        started_at: row.get(at + 3)?,
        finished_at: row.get(at + 4)?,
        kiln_version: row.get(at + 5)?,
        platform: row.get(at + 6)?,
        verdict,
        exit_code: row.get(at + 8)?,
        actor: row.get(at + 9)?,
    })
}

pub(super) const COMPONENT_COLUMNS: &str =
    "c.kind, c.slot, c.address, c.vendor, c.model, c.serial, c.firmware, c.extra";

pub(super) fn component_row(row: &Row<'_>, at: usize) -> rusqlite::Result<ComponentRecord> {
    Ok(ComponentRecord {
        kind: row.get(at)?,
        slot: row.get(at + 1)?,
        address: row.get(at + 2)?,
        vendor: row.get(at + 3)?,
        model: row.get(at + 4)?,
        serial: row.get(at + 5)?,
        firmware: row.get(at + 6)?,
        extra: json_object_column(row, at + 7)?,
    })
}

/// Runs newest first: by start time, then by id for runs that started in
/// the same millisecond.
const NEWEST_FIRST: &str = "ORDER BY r.started_at DESC, r.id DESC";

/// Runs that read the node itself: not BMC firmware readings or firmware checks, whose
/// component lists hold only firmware (see `inventory::firmware`, `inventory::firmware_check`),
/// nor a tray's rank in a rack collective, which holds none (`inventory::collective`).
const NODE_RUN: &str = "r.kind NOT IN ('bmc_firmware', 'firmware', 'collective')";

impl Inventory {
    pub(super) fn query_rows<T>(
        &self,
        what: impl Fn() -> String,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, InventoryError> {
        let failed = |source| InventoryError::Query { what: what(), source };
        let mut stmt = self.conn.prepare_cached(sql).map_err(failed)?;
        let rows = stmt.query_map(params, map).map_err(failed)?;
        rows.collect::<Result<Vec<T>, _>>().map_err(failed)
    }

    /// Every node, by name (then by id: two machines may share a name).
    pub fn nodes(&self) -> Result<Vec<NodeRow>, InventoryError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes n ORDER BY n.name, n.id");
        self.query_rows(|| "nodes".to_string(), &sql, [], node_row)
    }

    /// One node by name, else by its machine (a system or board serial, a system UUID);
    /// `None` when the inventory has never seen it, an error when two nodes answer to the name.
    pub fn node(&self, name: &str) -> Result<Option<NodeRow>, InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("node {name}"), source };
        let Some(id) = super::machine::node_named(&self.conn, name).map_err(|e| e.into_inventory(failed))? else {
            return Ok(None);
        };
        self.node_by_id(NodeId(id))
    }

    /// One node by its row id.
    pub fn node_by_id(&self, id: NodeId) -> Result<Option<NodeRow>, InventoryError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes n WHERE n.id = ?1");
        let failed = |source| InventoryError::Query { what: format!("node {}", id.0), source };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(failed)?;
        stmt.query_row([id.0], node_row).optional().map_err(failed)
    }

    /// A node's runs, newest first.
    pub fn runs(&self, node: NodeId) -> Result<Vec<RunRow>, InventoryError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.node_id = ?1 {NEWEST_FIRST}");
        self.query_rows(|| format!("runs of node {}", node.0), &sql, [node.0], |row| run_row(row, 0))
    }

    /// A node's newest run of the node itself (inspect, validate, burn-in;
    /// not a BMC firmware reading).
    pub fn latest_run(&self, node: NodeId) -> Result<Option<RunRow>, InventoryError> {
        self.latest_run_as_of(node, None)
    }

    /// `latest_run` among the runs started at or before `as_of` (a timestamp as stored).
    pub fn latest_run_as_of(&self, node: NodeId, as_of: Option<&str>) -> Result<Option<RunRow>, InventoryError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.node_id = ?1 AND {NODE_RUN} AND (?2 IS NULL OR r.started_at <= ?2)
             {NEWEST_FIRST} LIMIT 1"
        );
        let mut rows = self.query_rows(
            || format!("latest run of node {}", node.0),
            &sql,
            rusqlite::params![node.0, as_of],
            |row| run_row(row, 0),
        )?;
        Ok(rows.pop())
    }

    /// One run by id, `None` when there is none.
    pub fn run(&self, run: RunId) -> Result<Option<RunRow>, InventoryError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = ?1");
        let mut rows = self.query_rows(|| format!("run {}", run.0), &sql, [run.0], |row| run_row(row, 0))?;
        Ok(rows.pop())
    }

    /// Every node with its newest node run (`None` for a node enrolled but
    /// never run), by name, in one query.
    pub fn latest_runs(&self) -> Result<Vec<(NodeRow, Option<RunRow>)>, InventoryError> {
        let sql = format!(
            "SELECT {NODE_COLUMNS}, {RUN_COLUMNS} FROM nodes n
             LEFT JOIN runs r ON r.id = (SELECT r.id FROM runs r WHERE r.node_id = n.id AND {NODE_RUN}
                                         {NEWEST_FIRST} LIMIT 1)
             ORDER BY n.name, n.id"
        );
        self.query_rows(
            || "latest run of every node".to_string(),
            &sql,
            [],
            |row| {
                let node = node_row(row)?;
                let run = match row.get::<_, Option<i64>>(NODE_WIDTH)? {
                    Some(_) => Some(run_row(row, NODE_WIDTH)?),
                    None => None,
                };
                Ok((node, run))
            },
        )
    }

    /// A node's newest run of `kind`.
    pub fn latest_run_of_kind(&self, node: NodeId, kind: RunKind) -> Result<Option<RunRow>, InventoryError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.node_id = ?1 AND r.kind = ?2 {NEWEST_FIRST} LIMIT 1");
        let mut rows = self.query_rows(
            || format!("latest {kind} run of node {}", node.0),
            &sql,
            rusqlite::params![node.0, kind.as_str()],
            |row| run_row(row, 0),
        )?;
        Ok(rows.pop())
    }

    /// The newest run of each kind that judged the node (has a verdict),
    /// newest first: the latest validate and the latest burn-in, so a later
    /// burn-in does not hide an earlier validate's failures.
    pub fn latest_judged_runs(&self, node: NodeId) -> Result<Vec<RunRow>, InventoryError> {
        self.latest_judged_runs_as_of(node, None)
    }

    /// `latest_judged_runs` among the runs started at or before `as_of`.
    pub fn latest_judged_runs_as_of(&self, node: NodeId, as_of: Option<&str>) -> Result<Vec<RunRow>, InventoryError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r
             WHERE r.node_id = ?1 AND r.verdict IS NOT NULL
               AND r.id = (SELECT k.id FROM runs k WHERE k.node_id = r.node_id AND k.kind = r.kind
                           AND k.verdict IS NOT NULL AND (?2 IS NULL OR k.started_at <= ?2)
                           ORDER BY k.started_at DESC, k.id DESC LIMIT 1)
             {NEWEST_FIRST}"
        );
        self.query_rows(
            || format!("latest judged runs of node {}", node.0),
            &sql,
            rusqlite::params![node.0, as_of],
            |row| run_row(row, 0),
        )
    }

    /// The node run of the same node recorded just before `run`.
    pub fn previous_run(&self, run: &RunRow) -> Result<Option<RunRow>, InventoryError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r
             WHERE r.node_id = ?1 AND (r.started_at < ?2 OR (r.started_at = ?2 AND r.id < ?3)) AND {NODE_RUN}
             {NEWEST_FIRST} LIMIT 1"
        );
        let params = rusqlite::params![run.node_id.0, run.started_at, run.id.0];
        let mut rows =
            self.query_rows(|| format!("run before run {}", run.id.0), &sql, params, |row| run_row(row, 0))?;
        Ok(rows.pop())
    }

    /// The component snapshot recorded with a run, in recorded order.
    pub fn run_components(&self, run: RunId) -> Result<Vec<ComponentRecord>, InventoryError> {
        let sql = format!("SELECT {COMPONENT_COLUMNS} FROM components c WHERE c.run_id = ?1 ORDER BY c.id");
        self.query_rows(|| format!("components of run {}", run.0), &sql, [run.0], |row| component_row(row, 0))
    }

    /// The findings recorded with a run, in recorded order.
    pub fn run_findings(&self, run: RunId) -> Result<Vec<Finding>, InventoryError> {
        let sql = "SELECT \"check\", outcome, severity, component_kind, component_address, component_gpu_index,
                          component_serial, component_slot, component_name, expected, actual, message, action
                   FROM findings WHERE run_id = ?1 ORDER BY id";
        self.query_rows(|| format!("findings of run {}", run.0), sql, [run.0], finding_from_row)
    }

    /// The whole node as it was inspected for a run: what was in tray 7 then.
    pub fn run_node(&self, run: RunId) -> Result<Node, InventoryError> {
        let mut texts = self.query_rows(
            || format!("node of run {}", run.0),
            &format!(
                "SELECT {} FROM runs r LEFT JOIN node_models m ON m.id = r.model_id WHERE r.id = ?1",
                super::models::RUN_MODEL
            ),
            [run.0],
            |row| row.get::<_, String>(0),
        )?;
        let text = texts.pop().ok_or_else(|| InventoryError::Query {
            what: format!("node of run {}", run.0),
            source: rusqlite::Error::QueryReturnedNoRows,
        })?;
        serde_json::from_str(&text).map_err(|source| InventoryError::DecodeNode { run_id: run.0, source })
    }

    /// What changed in a node's parts between its newest run and the one
    /// before; `None` when it has fewer than two runs.
    pub fn changes_since_previous_run(&self, node: NodeId) -> Result<Option<RunChanges>, InventoryError> {
        let Some(latest) = self.latest_run(node)? else { return Ok(None) };
        self.changes_before(&latest)
    }

    /// What changed in a node's parts between `run` and the node run before it.
    pub fn changes_before(&self, latest: &RunRow) -> Result<Option<RunChanges>, InventoryError> {
        let latest = latest.clone();
        let Some(previous) = self.previous_run(&latest)? else { return Ok(None) };
        let before = self.run_components(previous.id)?;
        let after = self.run_components(latest.id)?;
        Ok(Some(RunChanges { previous_run: previous.id, run: latest.id, changes: diff_components(&before, &after) }))
    }

    /// Every recorded part with this serial, newest first: where a GPU or
    /// disk has been, and where it is now.
    pub fn find_serial(&self, serial: &str) -> Result<Vec<SerialSighting>, InventoryError> {
        let sql = format!(
            "SELECT n.name, r.id, r.finished_at, {COMPONENT_COLUMNS}
             FROM components c JOIN runs r ON r.id = c.run_id JOIN nodes n ON n.id = c.node_id
             WHERE c.serial = ?1 {NEWEST_FIRST}"
        );
        self.query_rows(
            || format!("parts with serial {serial}"),
            &sql,
            [serial],
            |row| {
                Ok(SerialSighting {
                    node: row.get(0)?,
                    run_id: RunId(row.get(1)?),
                    finished_at: row.get(2)?,
                    component: component_row(row, 3)?,
                })
            },
        )
    }
}
