//! The report as text tables for a terminal: one block per node.

use std::fmt::Write;

use crate::inventory::RunRow;

use super::{NodeReport, Report};

/// Lay out rows under headers, columns padded to their widest cell; the last
/// column is not padded, so lines carry no trailing spaces.
fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

/// `validate run 3: fail, 2025-03-01T08:01:00.000Z (exit 1, by tech-ana)`
fn describe_run(run: &RunRow) -> String {
    let verdict = run.verdict.map_or("no verdict", |v| v.as_str());
    format!("{} run {}: {verdict}, {} (exit {}, by {})", run.kind, run.id.0, run.finished_at, run.exit_code, run.actor)
}

fn node_block(node: &NodeReport, out: &mut String) {
    let mut header = node.hostname.clone();
    for (label, value) in [("rack", &node.rack), ("platform", &node.platform), ("serial", &node.serial)] {
        if let Some(v) = value {
            let _ = write!(header, "  {label} {v}");
        }
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "  state: {}", node.state);
    match &node.last_run {
        Some(run) => {
            let _ = writeln!(out, "  last run: {}", describe_run(run));
        }
        None => {
            let _ = writeln!(out, "  last run: none (enrolled {})", node.first_seen);
        }
    }

    if let Some(run) = &node.last_run {
        let _ = writeln!(out, "\n  Components (run {}):", run.id.0);
        let rows: Vec<Vec<String>> = node
            .components
            .iter()
            .map(|c| {
                vec![
                    c.kind.clone(),
                    or_dash(c.place()),
                    or_dash(c.model.as_deref()),
                    or_dash(c.serial.as_deref()),
                    or_dash(c.firmware.as_deref()),
                ]
            })
            .collect();
        indent(&columns(&["KIND", "PLACE", "MODEL", "SERIAL", "FIRMWARE"], &rows), out);
    }

    let f = &node.findings;
    if !f.runs.is_empty() {
        let runs: Vec<String> = f.runs.iter().map(|r| format!("{} run {}", r.kind, r.id.0)).collect();
        let _ = writeln!(
            out,
            "\n  Findings ({}): {} not passing, {} passed",
            runs.join(", "),
            f.not_passing.len(),
            f.passed
        );
        if !f.not_passing.is_empty() {
            let mut rows = Vec::new();
            for s in &f.not_passing {
                let x = &s.finding;
                rows.push(vec![
                    x.outcome.as_str().to_string(),
                    x.severity.as_str().to_string(),
                    x.check.clone(),
                    x.component.label(),
                    or_dash(x.expected.as_deref()),
                    or_dash(x.actual.as_deref()),
                    x.message.clone(),
                ]);
                if let Some(action) = &x.action {
                    let mut row = vec![String::new(); 6];
                    row.push(format!("action: {action}"));
                    rows.push(row);
                }
            }
            let headers = ["OUTCOME", "SEVERITY", "CHECK", "COMPONENT", "EXPECTED", "ACTUAL", "MESSAGE"];
            indent(&columns(&headers, &rows), out);
        }
    }

    if let Some(changes) = &node.changes {
        if changes.changes.is_empty() {
            let _ = writeln!(out, "\n  No changes since run {}.", changes.previous_run.0);
        } else {
            let _ = writeln!(out, "\n  Changes since run {}:", changes.previous_run.0);
            for change in &changes.changes {
                let _ = writeln!(out, "    {change}");
            }
        }
    }
}

fn indent(text: &str, out: &mut String) {
    for line in text.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

/// One block per node, separated by blank lines.
pub fn render_table(report: &Report) -> String {
    if report.nodes.is_empty() {
        return "No nodes recorded.\n".to_string();
    }
    let mut out = String::new();
    for (i, node) in report.nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        node_block(node, &mut out);
    }
    out
}
