//! The answers of `kiln inventory where|diff|export` as documents (JSON, kinds below) and as
//! text and CSV.

use serde::Serialize;

use crate::inventory::{ComponentChange, ComponentRecord, ExportedNode, NodeRow, PartStay, RunRow};
use crate::lifecycle::LifecycleState;

use super::csv::field;
use super::table::columns;

/// Version of the three documents below; bumped on any change a consumer could notice.
pub const QUESTIONS_SCHEMA_VERSION: u32 = 1;
pub const PART_HISTORY_KIND: &str = "kiln.part-history";
pub const INVENTORY_DIFF_KIND: &str = "kiln.inventory-diff";
pub const INVENTORY_EXPORT_KIND: &str = "kiln.inventory-export";

/// `kiln inventory where SERIAL`: every stay of the part, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct PartHistory {
    pub schema_version: u32,
    pub kind: &'static str,
    pub serial: String,
    pub stays: Vec<PartStay>,
}

impl PartHistory {
    pub fn new(serial: &str, stays: Vec<PartStay>) -> Self {
        PartHistory { schema_version: QUESTIONS_SCHEMA_VERSION, kind: PART_HISTORY_KIND, serial: serial.into(), stays }
    }

    /// `part 1650003280121 (gpu, NVIDIA B200): 2 places`, then one line per stay.
    pub fn render_text(&self) -> String {
        let first = self.stays.first();
        let what = first
            .map(|s| match &s.model {
                Some(m) => format!("{}, {m}", s.kind),
                None => s.kind.clone(),
            })
            .unwrap_or_default();
        let places = self.stays.len();
        let mut out = format!("part {} ({what}): {places} stay(s), oldest first\n", self.serial);
        let rows: Vec<Vec<String>> = self
            .stays
            .iter()
            .map(|s| {
                let node = match &s.rack {
                    Some(r) => format!("{} (rack {r})", s.node),
                    None => s.node.clone(),
                };
                let now = match &s.gone_by {
                    None => "still there".to_string(),
                    Some(t) => format!("gone by {t}"),
                };
                vec![s.from.clone(), s.to.clone(), node, s.label.clone(), s.runs.to_string(), now]
            })
            .collect();
        for line in columns(&["FROM", "TO", "NODE", "PLACE", "RUNS", "AFTER"], &rows).lines() {
            out.push_str("  ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A run as the diff names it.
#[derive(Debug, Clone, Serialize)]
pub struct DiffRun {
    pub id: i64,
    pub kind: String,
    pub started_at: String,
    pub finished_at: String,
}

impl From<&RunRow> for DiffRun {
    fn from(r: &RunRow) -> Self {
        DiffRun {
            id: r.id.0,
            kind: r.kind.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
        }
    }
}

/// `kiln inventory diff --node N RUN_A RUN_B`: what changed in the node's parts from A to B.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryDiff {
    pub schema_version: u32,
    pub kind: &'static str,
    pub node: String,
    pub run_a: DiffRun,
    pub run_b: DiffRun,
    pub changes: Vec<ComponentChange>,
}

impl InventoryDiff {
    pub fn new(node: &str, a: &RunRow, b: &RunRow, changes: Vec<ComponentChange>) -> Self {
        InventoryDiff {
            schema_version: QUESTIONS_SCHEMA_VERSION,
            kind: INVENTORY_DIFF_KIND,
            node: node.to_string(),
            run_a: a.into(),
            run_b: b.into(),
            changes,
        }
    }

    pub fn render_text(&self) -> String {
        let mut out = format!(
            "{}: run {} ({} {}) -> run {} ({} {}): {} change(s)\n",
            self.node,
            self.run_a.id,
            self.run_a.kind,
            self.run_a.finished_at,
            self.run_b.id,
            self.run_b.kind,
            self.run_b.finished_at,
            self.changes.len()
        );
        for c in &self.changes {
            out.push_str(&format!("  {c}\n"));
        }
        out
    }
}

/// One node of the export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportNode {
    pub name: String,
    pub hostname: Option<String>,
    pub rack: Option<String>,
    pub platform: Option<String>,
    /// The machine in the node's place (`uuid:...`, `serial:...`) and what identified it.
    pub machine: Option<String>,
    pub system_uuid: Option<String>,
    pub serial: Option<String>,
    pub board_serial: Option<String>,
    pub chassis_serial: Option<String>,
    pub tray_index: Option<u32>,
    pub state: LifecycleState,
    /// The run the parts are from; `None` for a node enrolled and never run.
    pub run: Option<DiffRun>,
    pub parts: Vec<ComponentRecord>,
}

/// `kiln inventory export --format json`: the site as the inventory knows it.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryExport {
    pub schema_version: u32,
    pub kind: &'static str,
    pub generated_at: String,
    pub nodes: Vec<ExportNode>,
}

/// The CSV export's columns: one row per part of each node's newest run (a node without a
/// run: one row with the part columns empty).
pub const EXPORT_CSV_COLUMNS: [&str; 17] = [
    "rack",
    "node",
    "hostname",
    "machine",
    "node_serial",
    "state",
    "run_id",
    "recorded_at",
    "kind",
    "place",
    "slot",
    "address",
    "vendor",
    "model",
    "serial",
    "firmware",
    "extra",
];

impl InventoryExport {
    pub fn new(generated_at: String, nodes: Vec<ExportedNode>) -> Self {
        let nodes = nodes
            .into_iter()
            .map(|ExportedNode { node, run, parts }| {
                let NodeRow {
                    name,
                    hostname,
                    machine,
                    system_uuid,
                    board_serial,
                    chassis_serial,
                    tray_index,
                    rack,
                    platform,
                    serial,
                    state,
                    ..
                } = node;
                ExportNode {
                    name,
                    hostname,
                    rack,
                    platform,
                    machine,
                    system_uuid,
                    serial,
                    board_serial,
                    chassis_serial,
                    tray_index,
                    state,
                    run: run.as_ref().map(DiffRun::from),
                    parts,
                }
            })
            .collect();
        InventoryExport { schema_version: QUESTIONS_SCHEMA_VERSION, kind: INVENTORY_EXPORT_KIND, generated_at, nodes }
    }

    pub fn render_csv(&self) -> String {
        let mut out = EXPORT_CSV_COLUMNS.join(",") + "\n";
        for n in &self.nodes {
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            let node_cells = [
                opt(&n.rack),
                n.name.clone(),
                opt(&n.hostname),
                opt(&n.machine),
                opt(&n.serial),
                n.state.name().to_string(),
                n.run.as_ref().map(|r| r.id.to_string()).unwrap_or_default(),
                n.run.as_ref().map(|r| r.finished_at.clone()).unwrap_or_default(),
            ];
            let mut line = |part: [String; 9]| {
                let cells: Vec<String> = node_cells.iter().chain(part.iter()).map(|c| field(c)).collect();
                out.push_str(&cells.join(","));
                out.push('\n');
            };
            if n.parts.is_empty() {
                line(Default::default());
            }
            for p in &n.parts {
                let extra = if p.extra.is_empty() {
                    String::new()
                } else {
                    serde_json::Value::Object(p.extra.clone()).to_string()
                };
                line([
                    p.kind.clone(),
                    p.label(),
                    opt(&p.slot),
                    opt(&p.address),
                    opt(&p.vendor),
                    opt(&p.model),
                    opt(&p.serial),
                    opt(&p.firmware),
                    extra,
                ]);
            }
        }
        out
    }
}
