//! Which node a run belongs to, by machine identity or by its place's name, and the machine
//! events (which machine arrived in a place, and from where) that recording a run leaves.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::model::MachineIdentity;

use super::record::{NodeId, RunId, RunRecord};
use super::{Inventory, InventoryError};

/// The node row a run is recorded under, and the machine events recording it makes.
pub(crate) struct Place {
    pub node_id: i64,
    pub created: bool,
    pub machine_moves: MachineMoves,
}

/// Machine events waiting for the run's id.
#[derive(Default)]
pub(crate) struct MachineMoves {
    events: Vec<Pending>,
}

struct Pending {
    node_id: i64,
    event: &'static str,
    machine: String,
    previous: Option<String>,
    other_node_id: Option<i64>,
    message: String,
}

impl MachineMoves {
    pub(crate) fn write(&self, conn: &Connection, run_id: i64, at: &str) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO machine_events (node_id, at, run_id, event, machine, previous, other_node_id, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for e in &self.events {
            insert.execute(params![
                e.node_id,
                at,
                run_id,
                e.event,
                e.machine,
                e.previous,
                e.other_node_id,
                e.message
            ])?;
        }
        Ok(())
    }
}

/// One entry of the history of which machine stood in a node's place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineEvent {
    pub id: i64,
    pub node_id: NodeId,
    pub at: String,
    pub run_id: Option<RunId>,
    /// `arrived`: a machine is in this place now.
    pub event: String,
    /// The machine key after the event (`uuid:...`, `serial:...`).
    pub machine: String,
    /// The machine key before it; `None` for the first machine seen in the place.
    pub previous: Option<String>,
    /// Another place that held the same machine when it arrived: where it came from.
    pub other_node: Option<String>,
    pub message: String,
}

/// How a place is named in messages: `node07 in rack r1`, or the name alone.
fn place_label(conn: &Connection, node_id: i64) -> rusqlite::Result<String> {
    conn.prepare_cached("SELECT name, rack FROM nodes WHERE id = ?1")?.query_row([node_id], |r| {
        let name: String = r.get(0)?;
        let rack: Option<String> = r.get(1)?;
        Ok(match rack {
            Some(rack) => format!("{name} in rack {rack}"),
            None => name,
        })
    })
}

/// The machine a node's row identifies now, as a technician reads it.
fn recorded_machine(conn: &Connection, node_id: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT system_uuid, serial, board_serial, chassis_serial, tray_index FROM nodes WHERE id = ?1",
    )?
    .query_row([node_id], |r| {
        let id = MachineIdentity {
            system_uuid: r.get(0)?,
            system_serial: r.get(1)?,
            board_serial: r.get(2)?,
            chassis_serial: r.get(3)?,
            tray_index: r.get(4)?,
        };
        Ok(id.describe())
    })
}

fn insert_node(conn: &Connection, name: &str, started: &str, finished: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("INSERT INTO nodes (name, first_seen, last_seen, state) VALUES (?1, ?2, ?3, 'enrolled')")?
        .execute(params![name, started, finished])?;
    Ok(conn.last_insert_rowid())
}

/// Finds (or makes) the node `run` is recorded under, inside the run's transaction:
/// - a run with a place name (a rack node) goes to the node of that name, preferring the one
///   in the run's rack; a machine other than the one recorded there is a machine event that
///   names the machine before and, when the machine was seen in another place, that place;
/// - a run without one goes to the node of its machine (`MachineIdentity::key`; the place
///   that saw it last, when a moved machine's old place has not reported since); a model with
///   no machine identity goes to the node of its hostname that has no identity either, so a
///   machine with an identity never joins one without.
pub(crate) fn place_of_run(
    tx: &Connection,
    run: &RunRecord<'_>,
    identity: &MachineIdentity,
    started: &str,
    finished: &str,
) -> rusqlite::Result<Place> {
    let key = identity.key();
    let reported = Some(run.node.hostname.trim()).filter(|h| !h.is_empty());
    let found: Option<i64> = match (run.name, &key) {
        (Some(name), _) => node_in_rack(tx, name, run.rack)?,
        (None, Some(k)) => tx
            .prepare_cached("SELECT id FROM nodes WHERE machine = ?1 ORDER BY last_seen DESC, id DESC LIMIT 1")?
            .query_row([k], |r| r.get(0))
            .optional()?,
        (None, None) => match reported {
            Some(h) => tx
                .prepare_cached(
                    "SELECT id FROM nodes WHERE name = ?1 AND machine IS NULL AND system_uuid IS NULL
                         AND serial IS NULL AND board_serial IS NULL
                     ORDER BY last_seen DESC, id DESC LIMIT 1",
                )?
                .query_row([h], |r| r.get(0))
                .optional()?,
            None => None,
        },
    };
    let (node_id, created) = match found {
        Some(id) => (id, false),
        None => {
            let name = run.name.or(reported).map(str::to_string).or_else(|| identity.describe()).unwrap_or_default();
            (insert_node(tx, &name, started, finished)?, true)
        }
    };
    tx.prepare_cached(
        "UPDATE nodes SET first_seen = min(first_seen, ?2), last_seen = max(last_seen, ?3),
             rack = coalesce(?4, rack), platform = coalesce(?5, platform), hostname = coalesce(?6, hostname)
         WHERE id = ?1",
    )?
    .execute(params![node_id, started, finished, run.rack, run.platform, reported])?;
    // A rack node renamed by its manifest keeps its name; a node known by its hostname
    // follows the hostname.
    if run.name.is_none() {
        if let Some(h) = reported {
            tx.prepare_cached("UPDATE nodes SET name = ?2 WHERE id = ?1 AND rack IS NULL AND name IS NOT ?2")?
                .execute(params![node_id, h])?;
        }
    }

    let mut moves = MachineMoves::default();
    if let Some(key) = key {
        let current: Option<String> =
            tx.prepare_cached("SELECT machine FROM nodes WHERE id = ?1")?.query_row([node_id], |r| r.get(0))?;
        if current.as_deref() != Some(key.as_str()) {
            let here = place_label(tx, node_id)?;
            let now = identity.describe().unwrap_or_else(|| key.clone());
            let before = match &current {
                Some(_) => recorded_machine(tx, node_id)?,
                None => None,
            };
            // Where the machine was before: the last other place it arrived in, whatever
            // that place holds now (in a swap, the other place may have been recorded first).
            let other: Option<i64> = tx
                .prepare_cached(
                    "SELECT node_id FROM machine_events WHERE machine = ?1 AND node_id <> ?2 ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![key, node_id], |r| r.get(0))
                .optional()?;
            let mut message = match &before {
                Some(was) => format!("{here} now holds machine {now}, was {was}"),
                None => format!("{here} holds machine {now}"),
            };
            if let Some(o) = other {
                message.push_str(&format!("; it was in {} before", place_label(tx, o)?));
            }
            moves.events.push(Pending {
                node_id,
                event: "arrived",
                machine: key.clone(),
                previous: current,
                other_node_id: other,
                message,
            });
        }
        tx.prepare_cached(
            "UPDATE nodes SET machine = ?2, system_uuid = ?3, serial = ?4, board_serial = ?5, chassis_serial = ?6,
                 tray_index = ?7
             WHERE id = ?1",
        )?
        .execute(params![
            node_id,
            key,
            identity.system_uuid,
            identity.system_serial,
            identity.board_serial,
            identity.chassis_serial,
            identity.tray_index
        ])?;
    }
    Ok(Place { node_id, created, machine_moves: moves })
}

/// The node of a place: `name` in `rack` (or, never placed in a rack, recorded under that name
/// by the node path, which the rack then adopts); a node of that name in another rack is another
/// place. Without a rack, the newest node of that name.
pub(crate) fn node_in_rack(conn: &Connection, name: &str, rack: Option<&str>) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT id FROM nodes WHERE name = ?1 AND (?2 IS NULL OR rack IS NULL OR rack = ?2)
         ORDER BY (rack IS ?2) DESC, last_seen DESC, id DESC LIMIT 1",
    )?
    .query_row(params![name, rack], |r| r.get(0))
    .optional()
}

/// Why a name did not give one node.
pub(crate) enum NameError {
    Sql(rusqlite::Error),
    Ambiguous(InventoryError),
}

impl From<rusqlite::Error> for NameError {
    fn from(e: rusqlite::Error) -> Self {
        NameError::Sql(e)
    }
}

impl NameError {
    /// As an inventory error, a database failure through `failed`.
    pub(crate) fn into_inventory(self, failed: impl FnOnce(rusqlite::Error) -> InventoryError) -> InventoryError {
        match self {
            NameError::Sql(e) => failed(e),
            NameError::Ambiguous(e) => e,
        }
    }
}

/// The node a person or a manifest names: by its name; else `RACK/NAME`, a rack's place
/// (`node_in_rack`); else by its machine (a system or board serial, a system UUID, or a machine
/// key). Two nodes of that name are an error that lists them by machine and rack, so the caller
/// can name the one meant.
pub(crate) fn node_named(conn: &Connection, name: &str) -> Result<Option<i64>, NameError> {
    if let Some((rack, place)) = name.split_once('/') {
        let exact: Option<i64> =
            conn.prepare_cached("SELECT id FROM nodes WHERE name = ?1")?.query_row([name], |r| r.get(0)).optional()?;
        if exact.is_none() {
            return Ok(node_in_rack(conn, place, Some(rack))?);
        }
    }
    let ids = |sql: &str| -> rusqlite::Result<Vec<(i64, Option<String>)>> {
        conn.prepare_cached(sql)?.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    };
    let mut found = ids("SELECT id, rack FROM nodes WHERE name = ?1 ORDER BY id")?;
    if found.is_empty() {
        found = ids("SELECT id, rack FROM nodes
             WHERE machine = ?1 OR serial = ?1 OR board_serial = ?1 OR system_uuid = lower(?1) ORDER BY id")?;
    }
    match found.as_slice() {
        [] => Ok(None),
        [(id, _)] => Ok(Some(*id)),
        many => {
            let mut listed = Vec::new();
            for (id, rack) in many {
                let machine = recorded_machine(conn, *id)?.unwrap_or_else(|| "no machine identity".into());
                let rack = rack.as_ref().map(|r| format!(" in rack {r}")).unwrap_or_default();
                listed.push(format!("{machine}{rack}"));
            }
            Err(NameError::Ambiguous(InventoryError::AmbiguousNode { name: name.to_string(), matches: listed }))
            // (RACK/NAME names a rack's place when names repeat across racks.)
        }
    }
}

impl Inventory {
    /// The machine history of a node's place, oldest first.
    pub fn machine_events(&self, node: NodeId) -> Result<Vec<MachineEvent>, InventoryError> {
        self.query_rows(
            || format!("machine events of node {}", node.0),
            "SELECT e.id, e.node_id, e.at, e.run_id, e.event, e.machine, e.previous, o.name, e.message
             FROM machine_events e LEFT JOIN nodes o ON o.id = e.other_node_id
             WHERE e.node_id = ?1 ORDER BY e.id",
            [node.0],
            event_row,
        )
    }

    /// The machine events a run's recording made (in every place it touched), in order.
    pub fn machine_events_of_run(&self, run: RunId) -> Result<Vec<MachineEvent>, InventoryError> {
        self.query_rows(
            || format!("machine events of run {}", run.0),
            "SELECT e.id, e.node_id, e.at, e.run_id, e.event, e.machine, e.previous, o.name, e.message
             FROM machine_events e LEFT JOIN nodes o ON o.id = e.other_node_id
             WHERE e.run_id = ?1 ORDER BY e.id",
            [run.0],
            event_row,
        )
    }
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MachineEvent> {
    Ok(MachineEvent {
        id: r.get(0)?,
        node_id: NodeId(r.get(1)?),
        at: r.get(2)?,
        run_id: r.get::<_, Option<i64>>(3)?.map(RunId),
        event: r.get(4)?,
        machine: r.get(5)?,
        previous: r.get(6)?,
        other_node: r.get(7)?,
        message: r.get(8)?,
    })
}
