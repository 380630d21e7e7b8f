//! The summary table printed at the end of a rack step: one row per node.

use super::outcome::NodeOutcome;
use crate::report::columns::{pad, width};

/// Node, step, status, verdict, duration, lifecycle state after recording
/// (`-` when nothing was recorded), reason; columns padded to fit.
pub fn summary_table(outcomes: &[NodeOutcome]) -> String {
    let header = ["NODE", "STEP", "STATUS", "VERDICT", "TIME", "STATE", "REASON"];
    let rows: Vec<[String; 7]> = outcomes
        .iter()
        .map(|o| {
            let state = o.recorded.as_ref().and_then(|r| r.state.clone()).unwrap_or_else(|| "-".into());
            let mut reason = o.reason.clone().unwrap_or_default();
            if let Some(e) = o.recorded.as_ref().and_then(|r| r.error.as_ref()) {
                reason = format!("{reason}{}NOT RECORDED: {e}", if reason.is_empty() { "" } else { "; " });
            }
            [
                o.node.clone(),
                o.step.as_str().to_string(),
                o.status.as_str().to_string(),
                o.verdict.clone().unwrap_or_else(|| "-".into()),
                format!("{:.1}s", o.duration_ms as f64 / 1000.0),
                state,
                reason,
            ]
        })
        .collect();
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
    line(&header.map(str::to_string));
    for row in &rows {
        line(row);
    }
    let count = |s: &str| outcomes.iter().filter(|o| o.status.as_str() == s).count();
    out.push_str(&format!(
        "{} nodes: {} pass, {} fail, {} error, {} skipped, {} peer_error\n",
        outcomes.len(),
        count("pass"),
        count("fail"),
        count("error"),
        count("skipped"),
        count("peer_error")
    ));
    out
}
