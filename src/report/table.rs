//! The report as text tables for a terminal: one block per node.

use std::fmt::Write;

use crate::inventory::RunRow;

use super::burnin_section::{run_verdict, BurninSection, RowStatus};
use super::{NodeReport, Report};

/// Lay out rows under headers, columns padded to their widest cell; the last
/// column is not padded, so lines carry no trailing spaces.
pub(crate) fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
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

/// `validate run 3: fail, 2025-03-01T08:01:00.000Z (exit 1, by tech-ana)`; an
/// incomplete burn-in says so after its verdict.
fn describe_run(run: &RunRow, burnin: Option<&BurninSection>) -> String {
    let verdict = run_verdict(run, burnin);
    format!("{} run {}: {verdict}, {} (exit {}, by {})", run.kind, run.id.0, run.finished_at, run.exit_code, run.actor)
}

/// A figure as read: whole numbers without decimals, others to two places.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn burnin_block(b: &BurninSection, out: &mut String) {
    let verdict = if b.incomplete {
        format!("{} (incomplete: {})", b.verdict.as_str(), b.not_run.join("; "))
    } else {
        b.verdict.as_str().to_string()
    };
    let _ = writeln!(out, "\n  Burn-in (run {}): {verdict}", b.run_id.0);
    if b.rows.is_empty() {
        let _ = writeln!(out, "    no test result recorded");
        return;
    }
    let rows: Vec<Vec<String>> = b
        .rows
        .iter()
        .map(|r| {
            let gpu = match (r.gpu, r.peer_gpu) {
                (Some(g), Some(p)) => format!("{g} -> {p}"),
                (Some(g), None) => g.to_string(),
                (None, _) => "-".to_string(),
            };
            let status = match (&r.reason, r.status) {
                (Some(why), RowStatus::Skipped | RowStatus::Error) => format!("{}: {why}", r.status.as_str()),
                _ => r.status.as_str().to_string(),
            };
            vec![
                r.test.clone(),
                gpu,
                or_dash(r.figure.as_deref()),
                r.value.map_or("-".to_string(), number),
                or_dash(r.unit.as_deref()),
                r.min.map_or("-".to_string(), number),
                r.expected.map_or("-".to_string(), number),
                status,
            ]
        })
        .collect();
    let headers = ["TEST", "GPU", "FIGURE", "VALUE", "UNIT", "MIN", "EXPECTED", "STATUS"];
    indent(&columns(&headers, &rows), out);
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
            let _ = writeln!(out, "  last run: {}", describe_run(run, node.burnin.as_ref()));
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
                    c.label(),
                    or_dash(c.model.as_deref()),
                    or_dash(c.serial.as_deref()),
                    or_dash(c.firmware.as_deref()),
                ]
            })
            .collect();
        indent(&columns(&["PART", "MODEL", "SERIAL", "FIRMWARE"], &rows), out);
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

    if let Some(b) = &node.burnin {
        burnin_block(b, out);
    }

    if let Some(c) = &node.collective {
        super::collective_section::collective_block(c, out);
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
    if let Some(at) = &report.as_of {
        out.push_str(&format!("As of {at}: each node's newest run started by then.\n\n"));
    }
    for (i, node) in report.nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        node_block(node, &mut out);
    }
    out
}
