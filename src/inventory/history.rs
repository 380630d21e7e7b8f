//! Questions about the past: where a part has been (`part_history`), a node's state as of a time,
//! and the whole inventory as it stands (`export`).

use rusqlite::params;
use serde::Serialize;

use crate::lifecycle::LifecycleState;

use super::query::{component_row, COMPONENT_COLUMNS};
use super::record::{NodeId, RunId};
use super::{components_of, ComponentRecord, Inventory, InventoryError, NodeRow, RunRow};

/// One stay of a part: a place (a node, and the part's label there) it was recorded in, from the
/// first run that saw it there to the last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartStay {
    /// The node's name, its rack, and the machine in that place when the part was seen.
    pub node: String,
    pub node_id: NodeId,
    pub rack: Option<String>,
    /// The part's place as kiln names it (`gpu3 slot 4 0000:61:00.0`), its kind and model.
    pub label: String,
    pub kind: String,
    pub model: Option<String>,
    /// When the first and the last run of this stay finished, and how many runs saw it.
    pub from: String,
    pub to: String,
    pub runs: usize,
    pub first_run: RunId,
    pub last_run: RunId,
    /// The first later run of the same node without the part in that place: it was gone by
    /// then. `None` when the node's newest run still has it there (`current`).
    pub gone_by: Option<String>,
    pub current: bool,
}

/// A part of a node being judged whose serial the newest run of another node also holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SerialConflict {
    pub serial: String,
    /// The part here: its kind and label, and the part itself.
    pub kind: String,
    pub label: String,
    pub part: ComponentRecord,
    /// The other place: node name, rack, the part's label there, and the run that saw it.
    pub other_node: String,
    pub other_rack: Option<String>,
    pub other_label: String,
    pub other_run: RunId,
    pub other_seen_at: String,
}

/// The check a part recorded in two places at once fails.
pub const SERIAL_UNIQUE: &str = "inventory.serial_unique";

impl SerialConflict {
    /// The `inventory.serial_unique` finding, naming both places. `here` is the name of the
    /// node the part is in, for findings judged beside other nodes' (a rack's): it leads the
    /// component's name (`tray03 gpu5`), which names the node to the rack gate.
    pub fn finding(&self, here: Option<&str>) -> crate::checks::Finding {
        use crate::checks::{Finding, Outcome, Severity};
        let there = match &self.other_rack {
            Some(r) => format!("{} in rack {r}", self.other_node),
            None => self.other_node.clone(),
        };
        let label = match here {
            Some(node) => format!("{node} {}", self.label),
            None => self.label.clone(),
        };
        let mut component = self.part.finding_component();
        if let Some(node) = here {
            component.name = Some(format!("{node} {}", component.name.as_deref().unwrap_or(&self.kind)));
        }
        Finding::new(
            SERIAL_UNIQUE,
            Outcome::Fail,
            Severity::Critical,
            component,
            format!(
                "{label}: serial {} is also recorded in {there} as {} (run {}, {})",
                self.serial, self.other_label, self.other_run.0, self.other_seen_at
            ),
        )
        .expected("a serial in one place")
        .actual(format!("{label} and {there} {}", self.other_label))
        .action(format!(
            "read the labels of both parts: a part moved from {there} needs {} inspected again; \
             two parts with one serial are a cloned or misprogrammed serial to report to the vendor",
            self.other_node
        ))
    }
}

/// A node as `export` gives it: the node, its newest node run, and that run's parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedNode {
    pub node: NodeRow,
    pub run: Option<RunRow>,
    pub parts: Vec<ComponentRecord>,
}

/// One sighting: a run of a node that recorded the part.
struct Sighting {
    node_id: i64,
    node: String,
    rack: Option<String>,
    run_id: i64,
    finished_at: String,
    part: ComponentRecord,
}

impl Inventory {
    /// Every place a part with this serial has been recorded in, oldest first: each stay with
    /// its time range and whether the part is still there. A part seen in one place, then
    /// another, then the first again has three stays. Empty when the serial was never recorded.
    pub fn part_history(&self, serial: &str) -> Result<Vec<PartStay>, InventoryError> {
        let sql = format!(
            "SELECT n.id, n.name, n.rack, r.id, r.finished_at, {COMPONENT_COLUMNS}
             FROM components c JOIN runs r ON r.id = c.run_id JOIN nodes n ON n.id = c.node_id
             WHERE c.serial = ?1 AND r.kind <> 'bmc_firmware'
             ORDER BY r.started_at, r.id, c.id"
        );
        let sightings = self.query_rows(
            || format!("where part {serial} has been"),
            &sql,
            [serial],
            |row| {
                Ok(Sighting {
                    node_id: row.get(0)?,
                    node: row.get(1)?,
                    rack: row.get(2)?,
                    run_id: row.get(3)?,
                    finished_at: row.get(4)?,
                    part: component_row(row, 5)?,
                })
            },
        )?;
        let mut stays: Vec<PartStay> = Vec::new();
        for s in sightings {
            let label = s.part.label();
            if let Some(last) = stays.last_mut() {
                if last.node_id.0 == s.node_id && last.label == label {
                    if last.last_run.0 != s.run_id {
                        last.runs += 1;
                    }
                    last.to = s.finished_at;
                    last.last_run = RunId(s.run_id);
                    continue;
                }
            }
            stays.push(PartStay {
                node: s.node,
                node_id: NodeId(s.node_id),
                rack: s.rack,
                label,
                kind: s.part.kind.clone(),
                model: s.part.model.clone(),
                from: s.finished_at.clone(),
                to: s.finished_at,
                runs: 1,
                first_run: RunId(s.run_id),
                last_run: RunId(s.run_id),
                gone_by: None,
                current: false,
            });
        }
        for stay in &mut stays {
            // The node's next node run after the stay's last: without the part there, or none.
            let next: Vec<String> = self.query_rows(
                || format!("runs of node {} after run {}", stay.node_id.0, stay.last_run.0),
                "SELECT r.finished_at FROM runs r, runs l
                 WHERE l.id = ?2 AND r.node_id = ?1 AND r.kind NOT IN ('bmc_firmware', 'collective')
                   AND (r.started_at > l.started_at OR (r.started_at = l.started_at AND r.id > l.id))
                 ORDER BY r.started_at, r.id LIMIT 1",
                params![stay.node_id.0, stay.last_run.0],
                |row| row.get(0),
            )?;
            stay.gone_by = next.into_iter().next();
            stay.current = stay.gone_by.is_none();
        }
        Ok(stays)
    }

    /// Every part of `node` whose serial another node's newest node run also records: one
    /// part in two places at once (a cloned serial, or a part moved from a place not inspected
    /// since). The node itself is left out: the nodes of its machine (`MachineIdentity::key`),
    /// or, without one, the identity-less nodes of its hostname. System, board and chassis
    /// serials are the machine's own and are not compared.
    pub fn serials_elsewhere(&self, node: &crate::model::Node) -> Result<Vec<SerialConflict>, InventoryError> {
        self.serials_elsewhere_than(node, None)
    }

    /// `serials_elsewhere` for a node recorded in place `place` (a rack's node): that place is
    /// left out as well, whatever machine it holds.
    pub fn serials_elsewhere_than(
        &self,
        node: &crate::model::Node,
        place: Option<NodeId>,
    ) -> Result<Vec<SerialConflict>, InventoryError> {
        let key = crate::model::MachineIdentity::of(node).key();
        let sql = format!(
            "SELECT n.name, n.rack, r.id, r.finished_at, {COMPONENT_COLUMNS}
             FROM components c JOIN nodes n ON n.id = c.node_id JOIN runs r ON r.id = c.run_id
             WHERE c.serial = ?1
               AND r.id = (SELECT k.id FROM runs k WHERE k.node_id = n.id AND k.kind NOT IN ('bmc_firmware', 'collective')
                           ORDER BY k.started_at DESC, k.id DESC LIMIT 1)
               AND n.id IS NOT ?4
               AND NOT (CASE WHEN ?2 IS NOT NULL THEN n.machine IS ?2
                             ELSE n.machine IS NULL AND n.name = ?3 END)
             ORDER BY n.name, n.id, c.id"
        );
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for part in components_of(node) {
            let Some(serial) = part.serial.clone().filter(|s| !s.trim().is_empty()) else { continue };
            if matches!(part.kind.as_str(), "system" | "board" | "chassis") || !seen.insert(serial.clone()) {
                continue;
            }
            let others = self.query_rows(
                || format!("other places of serial {serial}"),
                &sql,
                params![serial, key, node.hostname, place.map(|p| p.0)],
                |row| Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?, row.get(3)?, component_row(row, 4)?)),
            )?;
            for (other_node, other_rack, run, at, there) in others {
                out.push(SerialConflict {
                    serial: serial.clone(),
                    kind: part.kind.clone(),
                    label: part.label(),
                    part: part.clone(),
                    other_node,
                    other_rack,
                    other_label: there.label(),
                    other_run: RunId(run),
                    other_seen_at: at,
                });
            }
        }
        Ok(out)
    }

    /// A node's lifecycle state as of `at` (a timestamp as stored): the state its last event
    /// at or before then left it in; `None` before it was enrolled.
    pub fn state_as_of(&self, node: NodeId, at: &str) -> Result<Option<LifecycleState>, InventoryError> {
        let mut rows = self.query_rows(
            || format!("lifecycle state of node {} at {at}", node.0),
            "SELECT to_state, to_reason FROM lifecycle_events WHERE node_id = ?1 AND at <= ?2
             ORDER BY at DESC, id DESC LIMIT 1",
            params![node.0, at],
            |row| {
                let name: String = row.get(0)?;
                LifecycleState::from_parts(&name, row.get(1)?)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
            },
        )?;
        Ok(rows.pop())
    }

    /// Every node with the parts of its newest node run, by name: the site as the inventory
    /// knows it.
    pub fn export(&self) -> Result<Vec<ExportedNode>, InventoryError> {
        let mut out = Vec::new();
        for (node, run) in self.latest_runs()? {
            let parts = match &run {
                Some(r) => self.run_components(r.id)?,
                None => Vec::new(),
            };
            out.push(ExportedNode { node, run, parts });
        }
        Ok(out)
    }
}
