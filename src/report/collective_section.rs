//! The per-node report's collective section: the node's newest rank in a rack collective, how
//! it ended, its figures per op and size, and what its GPUs' telemetry showed.

use serde::{Deserialize, Serialize};

use crate::burnin::collective::human;
use crate::checks::Verdict;
use crate::inventory::{CollectiveTrayRow, RunId, COLLECTIVE_RUN};

/// The node's newest collective rank, as the per-node report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveSection {
    /// The tray's run of kind `collective`, and the rack run it was part of.
    pub run_id: RunId,
    pub rack_run_id: i64,
    pub rank: u32,
    /// `pass`, `fail`, `error`, `skipped`, `peer_error`.
    pub status: String,
    pub reason: Option<String>,
    /// The tray's own verdict; `None` for a rank skipped or stopped because another failed.
    pub verdict: Option<Verdict>,
    pub started_at: String,
    pub rows: Vec<CollectiveRow>,
    /// GPUs whose telemetry was recorded, how many samples, and the peaks among them.
    pub gpus_sampled: usize,
    pub samples: usize,
    pub peak_power_w: Option<f64>,
    pub peak_temperature_c: Option<i64>,
    /// Why the rank sampled nothing, when it said.
    pub telemetry_note: Option<String>,
}

/// One op and size the rank measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveRow {
    /// `all_reduce`, `all_gather`.
    pub op: String,
    pub bytes: Option<f64>,
    pub time_us: Option<f64>,
    pub algbw_gbps: Option<f64>,
    pub busbw_gbps: Option<f64>,
    pub wrong_words: Option<f64>,
}

/// The section of one recorded rank.
pub fn collective_section(t: &CollectiveTrayRow) -> CollectiveSection {
    let prefix = format!("{COLLECTIVE_RUN}.");
    let rows = t
        .results
        .iter()
        .filter_map(|r| {
            let op = r.test.strip_prefix(&prefix)?;
            let figure = |name: &str| r.figures.iter().find(|f| f.name == name).map(|f| f.value);
            // The tray's own GPUs alone (`collective.tray.<op>`), beside the domain's sizes.
            let op = match op.strip_prefix("tray.") {
                Some(alone) => format!("{alone} (this tray alone)"),
                None => op.to_string(),
            };
            Some(CollectiveRow {
                op,
                bytes: figure("bytes"),
                time_us: figure("time"),
                algbw_gbps: figure("algbw"),
                busbw_gbps: figure("busbw"),
                wrong_words: figure("wrong_words"),
            })
        })
        .collect();
    let mut gpus: Vec<u32> = t.samples.iter().map(|s| s.gpu_index).collect();
    gpus.dedup();
    let peak_power_w = t.samples.iter().filter_map(|s| s.power_w).reduce(f64::max);
    let peak_temperature_c = t.samples.iter().filter_map(|s| s.temperature_c).max();
    CollectiveSection {
        run_id: t.run_id,
        rack_run_id: t.rack_run_id.0,
        rank: t.rank,
        status: t.status.clone(),
        reason: t.reason.clone(),
        verdict: t.verdict,
        started_at: t.started_at.clone(),
        rows,
        gpus_sampled: gpus.len(),
        samples: t.samples.len(),
        peak_power_w,
        peak_temperature_c,
        telemetry_note: t.telemetry_note.clone(),
    }
}

/// The section as the text report shows it, indented under its node.
pub fn collective_block(c: &CollectiveSection, out: &mut String) {
    use std::fmt::Write;
    let status = match &c.reason {
        Some(why) => format!("{}: {why}", c.status),
        None => c.status.clone(),
    };
    let _ = writeln!(
        out,
        "\n  Collective (rack run {}, rank {}, run {}, {}): {status}",
        c.rack_run_id, c.rank, c.run_id.0, c.started_at
    );
    if !c.rows.is_empty() {
        let show = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
        let rows: Vec<Vec<String>> = c
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.op.clone(),
                    show(r.bytes, &|b| human(b as u64)),
                    show(r.busbw_gbps, &|v| format!("{v:.1}")),
                    show(r.algbw_gbps, &|v| format!("{v:.1}")),
                    show(r.time_us, &|v| format!("{v:.1}")),
                    show(r.wrong_words, &|v| format!("{v:.0}")),
                ]
            })
            .collect();
        let table = super::table::columns(&["OP", "SIZE", "BUSBW GB/S", "ALGBW GB/S", "TIME US", "WRONG"], &rows);
        for line in table.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let telemetry = match (&c.telemetry_note, c.samples) {
        (_, n) if n > 0 => {
            let mut line = format!("{} GPUs, {n} samples", c.gpus_sampled);
            if let Some(p) = c.peak_power_w {
                let _ = write!(line, ", peak {p:.0} W");
            }
            if let Some(t) = c.peak_temperature_c {
                let _ = write!(line, ", peak {t} C");
            }
            line
        }
        (Some(note), _) => note.clone(),
        (None, _) => "no sample recorded".to_string(),
    };
    let _ = writeln!(out, "    telemetry: {telemetry}");
}

/// The section in a node's HTML card: how the rank ended, its figures, its telemetry.
pub fn collective_html(c: &CollectiveSection, out: &mut String) {
    use super::svg::esc;
    use std::fmt::Write;
    let status = match &c.reason {
        Some(why) => format!("{}: {why}", c.status),
        None => c.status.clone(),
    };
    let _ = write!(
        out,
        "<h3>Rack collective</h3><p>rack run {}, rank {}, {}: {}</p>",
        c.rack_run_id,
        c.rank,
        esc(&c.started_at),
        esc(&status)
    );
    if !c.rows.is_empty() {
        out.push_str("<table><tr><th>op</th><th>size</th><th>bus GB/s</th><th>alg GB/s</th><th>wrong words</th></tr>");
        let show = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        for r in &c.rows {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.op),
                r.bytes.map_or("-".to_string(), |b| human(b as u64)),
                show(r.busbw_gbps, 1),
                show(r.algbw_gbps, 1),
                show(r.wrong_words, 0)
            );
        }
        out.push_str("</table>");
    }
}

/// The tray's own all-reduce bus bandwidth (its GPUs alone, the largest size), the figure a
/// slow tray shows against its siblings.
pub fn tray_all_reduce_busbw(c: &CollectiveSection) -> Option<f64> {
    c.rows
        .iter()
        .filter(|r| r.op == "all_reduce (this tray alone)")
        .max_by(|a, b| a.bytes.unwrap_or(0.0).total_cmp(&b.bytes.unwrap_or(0.0)))
        .and_then(|r| r.busbw_gbps)
}
