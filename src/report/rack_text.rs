//! The rack report as a terminal table and as CSV: one line per node of the rack.

use super::columns::{pad, width};
use super::rack_model::{RackNodeReport, RackReport};
use crate::checks::Outcome;

pub const RACK_CSV_COLUMNS: [&str; 11] = [
    "rack",
    "node",
    "position",
    "state",
    "reason",
    "platform",
    "serial",
    "last_run",
    "last_run_kind",
    "failed_checks",
    "changes",
];

fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn row(n: &RackNodeReport) -> [String; 11] {
    let r = n.record.as_ref();
    let mut failed: Vec<&str> = Vec::new();
    for s in r.map(|r| r.findings.not_passing.as_slice()).unwrap_or_default() {
        if s.finding.outcome == Outcome::Fail && !failed.contains(&s.finding.check.as_str()) {
            failed.push(&s.finding.check);
        }
    }
    [
        n.rack.clone().unwrap_or_default(),
        n.name.clone(),
        n.position(),
        n.state_name().to_string(),
        r.and_then(|r| r.state.reason().map(str::to_string)).unwrap_or_default(),
        r.and_then(|r| r.platform.clone()).unwrap_or_default(),
        r.and_then(|r| r.serial.clone()).unwrap_or_default(),
        r.and_then(|r| r.last_run.as_ref()).map(|run| run.id.0.to_string()).unwrap_or_default(),
        r.and_then(|r| r.last_run.as_ref()).map(|run| run.kind.clone()).unwrap_or_default(),
        failed.join(" "),
        r.and_then(|r| r.changes.as_ref()).map(|c| c.changes.len().to_string()).unwrap_or_default(),
    ]
}

pub fn render_rack_csv(report: &RackReport) -> String {
    let mut out = RACK_CSV_COLUMNS.join(",");
    out.push('\n');
    for n in &report.nodes {
        out.push_str(&row(n).iter().map(|v| field(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// Columns padded to their widest cell; then the rack findings that fail.
pub fn render_rack_table(report: &RackReport) -> String {
    let headers = ["position", "node", "state", "failed checks", "reason"];
    let rows: Vec<[String; 5]> = report
        .nodes
        .iter()
        .map(|n| {
            let r = row(n);
            [r[2].clone(), r[1].clone(), r[3].clone(), r[9].clone(), r[4].clone()]
        })
        .collect();
    let widths: Vec<usize> =
        headers.iter().enumerate().map(|(i, h)| width(rows.iter().map(|r| r[i].as_str()), h.len())).collect();
    let mut out = String::new();
    if let Some(rack) = &report.rack {
        out.push_str(&format!("rack {}\n", rack.id));
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(header.as_slice()).chain(rows.iter().map(|r| r.as_slice())) {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for f in report.consistency.iter().filter(|f| matches!(f.outcome, Outcome::Fail | Outcome::Error)) {
        out.push_str(&format!("rack {} {}: {}\n", f.outcome.as_str(), f.check, f.message));
    }
    for o in &report.outliers {
        out.push_str(&format!(
            "outlier {} {}: {} {} against rack median {} ({:+.1} %)\n",
            o.node, o.figure, o.value, o.unit, o.median, o.deviation_pct
        ));
    }
    if let Some(m) = &report.firmware {
        out.push('\n');
        out.push_str(&m.render_text());
    }
    if !report.parts.is_empty() {
        out.push_str(&format!(
            "{} part(s) to return: kiln report --rack FILE --format csv --parts\n",
            report.parts.len()
        ));
    }
    out
}
