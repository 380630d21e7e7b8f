//! The RMA parts list: each failed part with its serial, where it sits, and the failing findings
//! that prove it; as rows for the HTML report and as CSV.

use std::collections::BTreeMap;

use super::rack_model::{RackNodeReport, RmaPart};
use crate::checks::Outcome;
use crate::inventory::ComponentRecord;

/// Finding component kinds that are not a part one can send back.
const NOT_PARTS: &[&str] = &["node", "rack", "platform", "host"];

/// The recorded part a finding's component names: by PCI address, then by
/// serial, then GPU index.
fn recorded<'a>(
    components: &'a [ComponentRecord],
    address: Option<&str>,
    serial: Option<&str>,
    gpu: Option<u32>,
) -> Option<&'a ComponentRecord> {
    let by = |f: &dyn Fn(&ComponentRecord) -> bool| components.iter().find(|c| f(c));
    address
        .and_then(|a| by(&|c| c.address.as_deref() == Some(a)))
        .or_else(|| serial.and_then(|s| by(&|c| c.serial.as_deref() == Some(s))))
        .or_else(|| {
            gpu.and_then(|i| {
                by(&|c| c.kind == "gpu" && c.extra.get("index").and_then(|v| v.as_u64()) == Some(u64::from(i)))
            })
        })
}

/// The failed parts of one node, one entry per part however many findings.
pub fn parts_of(node: &RackNodeReport) -> Vec<RmaPart> {
    let Some(record) = &node.record else { return Vec::new() };
    let mut parts: BTreeMap<String, RmaPart> = BTreeMap::new();
    for stored in record.findings.not_passing.iter().filter(|s| s.finding.outcome == Outcome::Fail) {
        let f = &stored.finding;
        let c = &f.component;
        // Firmware out of date is updated, not sent back.
        if NOT_PARTS.contains(&c.kind.as_str()) || f.check.starts_with("firmware.") {
            continue;
        }
        let rec = recorded(&record.components, c.address.as_deref(), c.serial.as_deref(), c.gpu_index);
        let key = format!(
            "{}|{}|{}|{}",
            c.kind,
            c.address.as_deref().unwrap_or(""),
            c.gpu_index.map(|i| i.to_string()).unwrap_or_default(),
            c.serial.as_deref().unwrap_or("")
        );
        let mut evidence = format!("{}: {}", f.check, f.message);
        match (&f.expected, &f.actual) {
            (Some(e), Some(a)) => evidence.push_str(&format!(" (expected {e}, actual {a})")),
            (None, Some(a)) => evidence.push_str(&format!(" (actual {a})")),
            _ => {}
        }
        let entry = parts.entry(key).or_insert_with(|| RmaPart {
            rack: node.rack.clone(),
            node: node.name.clone(),
            node_position: node.position(),
            kind: c.kind.clone(),
            slot: c.slot.clone().or_else(|| rec.and_then(|r| r.slot.clone())),
            address: c.address.clone().or_else(|| rec.and_then(|r| r.address.clone())),
            gpu_index: c.gpu_index,
            model: c.name.clone().or_else(|| rec.and_then(|r| r.model.clone())),
            serial: c.serial.clone().or_else(|| rec.and_then(|r| r.serial.clone())),
            firmware: rec.and_then(|r| r.firmware.clone()),
            run_id: stored.run_id.0,
            evidence: Vec::new(),
            action: f.action.clone(),
        });
        if !entry.evidence.contains(&evidence) {
            entry.evidence.push(evidence);
        }
        if entry.action.is_none() {
            entry.action = f.action.clone();
        }
    }
    parts.into_values().collect()
}

/// The CSV header of the parts list.
pub const PARTS_CSV_COLUMNS: [&str; 13] = [
    "rack",
    "node",
    "node_position",
    "kind",
    "slot",
    "address",
    "gpu_index",
    "model",
    "serial",
    "firmware",
    "run_id",
    "evidence",
    "action",
];

fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One row per part; several findings of one part are joined with ` | `.
pub fn render_parts_csv(parts: &[RmaPart]) -> String {
    let mut out = PARTS_CSV_COLUMNS.join(",");
    out.push('\n');
    for p in parts {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let row = [
            opt(&p.rack),
            p.node.clone(),
            p.node_position.clone(),
            p.kind.clone(),
            opt(&p.slot),
            opt(&p.address),
            p.gpu_index.map(|i| i.to_string()).unwrap_or_default(),
            opt(&p.model),
            opt(&p.serial),
            opt(&p.firmware),
            p.run_id.to_string(),
            p.evidence.join(" | "),
            opt(&p.action),
        ];
        out.push_str(&row.iter().map(|v| field(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}
