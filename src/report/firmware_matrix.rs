//! The rack's firmware as a matrix: one row per recipe component, one column per tray, each cell
//! the versions the tray's newest firmware check read and how they stand against the pin.

use serde::Serialize;

use super::columns::{pad, width};
use crate::checks::{Finding, Outcome};
use crate::inventory::{Inventory, InventoryError};

/// One cell: what a tray runs of one component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirmwareCell {
    /// The distinct versions reported (four GPUs on one version: one).
    pub versions: Vec<String>,
    /// The pinned version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The worst outcome of its instances: `fail` (out of date), `error` (unreadable), `pass`.
    pub outcome: Outcome,
    pub instances: usize,
}

impl FirmwareCell {
    /// `96.00.A6.00.01`, `GH200-24.01-1 (older)`, `unreadable`, for tables.
    pub fn text(&self) -> String {
        let versions = if self.versions.is_empty() { "-".to_string() } else { self.versions.join(" / ") };
        match self.outcome {
            Outcome::Pass => versions,
            Outcome::Fail => format!("{versions} !"),
            Outcome::Error => format!("{versions} ?"),
            Outcome::Skipped => versions,
        }
    }
}

/// One column: a tray and the firmware check it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirmwareColumn {
    pub node: String,
    pub position: String,
    /// The firmware check run, `None` for a tray never checked.
    pub run_id: Option<i64>,
    pub checked_at: Option<String>,
    /// Inventory members the recipe does not know.
    pub not_in_recipe: usize,
}

/// Component x tray.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirmwareMatrix {
    /// Check ids, `firmware.<component>`, in the order first met.
    pub components: Vec<String>,
    pub trays: Vec<FirmwareColumn>,
    /// `cells[component][tray]`; `None` where the tray's check has no such component.
    pub cells: Vec<Vec<Option<FirmwareCell>>>,
}

impl FirmwareMatrix {
    /// The matrix over `nodes` (name, position) from their newest firmware checks; `None` when
    /// no node has one.
    pub fn build(
        inventory: &Inventory,
        nodes: &[(String, String, String)],
    ) -> Result<Option<FirmwareMatrix>, InventoryError> {
        let mut trays = Vec::with_capacity(nodes.len());
        let mut per_tray: Vec<Vec<Finding>> = Vec::with_capacity(nodes.len());
        // Each tray: its name, its position, and how the inventory names it (`RACK/NAME`).
        for (name, position, key) in nodes {
            let run = match inventory.node(key)? {
                Some(row) => inventory.latest_firmware_check(row.id)?,
                None => None,
            };
            let findings = match &run {
                Some(r) => inventory.run_findings(r.id)?,
                None => Vec::new(),
            };
            trays.push(FirmwareColumn {
                node: name.clone(),
                position: position.clone(),
                run_id: run.as_ref().map(|r| r.id.0),
                checked_at: run.as_ref().map(|r| r.finished_at.clone()),
                not_in_recipe: findings.iter().filter(|f| f.check == "firmware.not_in_recipe").count(),
            });
            per_tray.push(findings);
        }
        if trays.iter().all(|t| t.run_id.is_none()) {
            return Ok(None);
        }
        let mut components: Vec<String> = Vec::new();
        for f in per_tray.iter().flatten() {
            if is_component(&f.check) && !components.contains(&f.check) {
                components.push(f.check.clone());
            }
        }
        let cells = components
            .iter()
            .map(|c| per_tray.iter().map(|findings| cell(findings.iter().filter(|f| &f.check == c))).collect())
            .collect();
        Ok(Some(FirmwareMatrix { components, trays, cells }))
    }

    /// The matrix as text: a header of trays, a line per component.
    pub fn render_text(&self) -> String {
        let mut header = vec!["component".to_string()];
        header.extend(self.trays.iter().map(|t| if t.position == "-" { t.node.clone() } else { t.position.clone() }));
        let mut rows = vec![header];
        for (c, cells) in self.components.iter().zip(&self.cells) {
            let mut row = vec![c.trim_start_matches("firmware.").to_string()];
            row.extend(cells.iter().map(|cell| cell.as_ref().map_or("-".to_string(), FirmwareCell::text)));
            rows.push(row);
        }
        let columns = rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns).map(|i| width(rows.iter().map(|r| r[i].as_str()), 1)).collect();
        let mut out = String::from("firmware (newest check per tray; ! out of date, ? unreadable)\n");
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// A pinned component's check (not the "not in recipe" or "inventory" ones).
fn is_component(check: &str) -> bool {
    check.starts_with("firmware.") && check != "firmware.not_in_recipe" && check != "firmware.inventory"
}

fn cell<'a>(findings: impl Iterator<Item = &'a Finding>) -> Option<FirmwareCell> {
    let mut cell: Option<FirmwareCell> = None;
    for f in findings {
        let c = cell.get_or_insert_with(|| FirmwareCell {
            versions: Vec::new(),
            pinned: f.expected.clone(),
            outcome: Outcome::Pass,
            instances: 0,
        });
        c.instances += 1;
        if let Some(v) = &f.actual {
            if !c.versions.contains(v) {
                c.versions.push(v.clone());
            }
        }
        c.outcome = worst(c.outcome, f.outcome);
    }
    cell
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Fail => 3,
        Outcome::Error => 2,
        Outcome::Skipped => 1,
        Outcome::Pass => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
