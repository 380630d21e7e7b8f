//! The summary table printed at the end of a rack step: one row per node; for many racks one table
//! with a rack column, grouped by rack.

use super::outcome::{NodeOutcome, RackOutcome};
use crate::report::columns::{pad, width};

/// Node, step, status, verdict, duration, lifecycle state after recording
/// (`-` when nothing was recorded), reason; columns padded to fit.
pub fn summary_table(outcomes: &[NodeOutcome]) -> String {
    let header = ["NODE", "STEP", "STATUS", "VERDICT", "TIME", "STATE", "REASON"];
    let rows: Vec<Vec<String>> = outcomes.iter().map(row).collect();
    let mut out = render(&header, &rows);
    out.push_str(&counts(outcomes));
    out.push('\n');
    out
}

/// One table for many racks: a RACK column first, the racks' rows in the order given (each
/// rack's in manifest order), then the counts over every node.
pub fn site_table(racks: &[RackOutcome]) -> String {
    let header = ["RACK", "NODE", "STEP", "STATUS", "VERDICT", "TIME", "STATE", "REASON"];
    let rows: Vec<Vec<String>> = racks
        .iter()
        .flat_map(|r| {
            r.nodes.iter().map(|o| {
                let mut cells = vec![r.rack.clone()];
                cells.extend(row(o));
                cells
            })
        })
        .collect();
    let mut out = render(&header, &rows);
    let all: Vec<&NodeOutcome> = racks.iter().flat_map(|r| r.nodes.iter()).collect();
    out.push_str(&format!("{} racks, {}\n", racks.len(), counts_of(&all)));
    out
}

/// "32 nodes: 30 pass, 1 fail, 0 error, 0 skipped, 1 peer_error"
fn counts(outcomes: &[NodeOutcome]) -> String {
    counts_of(&outcomes.iter().collect::<Vec<_>>())
}

fn counts_of(outcomes: &[&NodeOutcome]) -> String {
    let count = |s: &str| outcomes.iter().filter(|o| o.status.as_str() == s).count();
    format!(
        "{} nodes: {} pass, {} fail, {} error, {} skipped, {} peer_error",
        outcomes.len(),
        count("pass"),
        count("fail"),
        count("error"),
        count("skipped"),
        count("peer_error")
    )
}

/// Node, step, status, verdict, time, state, reason.
fn row(o: &NodeOutcome) -> Vec<String> {
    let state = o.recorded.as_ref().and_then(|r| r.state.clone()).unwrap_or_else(|| "-".into());
    let mut reason = o.reason.clone().unwrap_or_default();
    if let Some(e) = o.recorded.as_ref().and_then(|r| r.error.as_ref()) {
        reason = format!("{reason}{}NOT RECORDED: {e}", if reason.is_empty() { "" } else { "; " });
    }
    vec![
        o.node.clone(),
        o.step.as_str().to_string(),
        o.status.as_str().to_string(),
        o.verdict.clone().unwrap_or_else(|| "-".into()),
        format!("{:.1}s", o.duration_ms as f64 / 1000.0),
        state,
        reason,
    ]
}

/// The header and rows, columns padded to fit (the last one not).
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> =
        (0..header.len()).map(|i| width(rows.iter().map(|r| r[i].as_str()), header[i].len())).collect();
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&pad(cell, widths[i]));
                l.push_str("  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
    out
}
