//! One node's section of the HTML report: findings with actions, changes since the previous
//! run, burn-in charts, components with serials and firmware, and recent lifecycle events.

use std::collections::HashSet;
use std::fmt::Write;

use super::burnin_section::{run_verdict, BurninSection};
use super::burnin_view::{BurninView, TelemetrySample};
use super::html::{anchor, badge};
use super::rack_model::RackNodeReport;
use super::svg::{bars, esc, heatmap, line_chart, Bar, Series};
use super::NodeReport;
use crate::checks::Outcome;
use crate::inventory::Change;

fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Fail => 0,
        Outcome::Error => 1,
        Outcome::Skipped => 2,
        Outcome::Pass => 3,
    }
}

fn findings(r: &NodeReport, out: &mut String) {
    let mut rows: Vec<_> = r.findings.not_passing.iter().collect();
    rows.sort_by_key(|s| rank(s.finding.outcome));
    let runs: Vec<String> = r
        .findings
        .runs
        .iter()
        .map(|run| format!("{} run {} ({})", run.kind, run.id.0, run_verdict(run, r.burnin.as_ref())))
        .collect();
    let _ = write!(
        out,
        r#"<p class="muted">{} checks passed · from {}</p>"#,
        r.findings.passed,
        esc(&if runs.is_empty() { "no judged run".to_string() } else { runs.join(", ") })
    );
    if rows.is_empty() {
        return;
    }
    out.push_str("<table><tr><th></th><th>check</th><th>part</th><th>what was seen</th><th>action</th></tr>");
    for s in rows {
        let f = &s.finding;
        let o = f.outcome.as_str();
        let mut seen = f.message.clone();
        if let (Some(e), Some(a)) = (&f.expected, &f.actual) {
            seen.push_str(&format!(" (expected {e}, actual {a})"));
        }
        let mut part = f.component.label();
        if let Some(serial) = &f.component.serial {
            part.push_str(&format!(" · SN {serial}"));
        }
        let _ = write!(
            out,
            r#"<tr class="{o}"><td class="o-{o}">{o}</td><td class="mono">{}</td><td class="mono">{}</td><td>{}</td><td class="action">{}</td></tr>"#,
            esc(&f.check),
            esc(&part),
            esc(&seen),
            esc(f.action.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>");
}

fn changes(r: &NodeReport, out: &mut String) {
    match &r.changes {
        None => out.push_str(r#"<p class="muted">Only one run recorded: nothing to compare.</p>"#),
        Some(c) if c.changes.is_empty() => {
            let _ = write!(
                out,
                r#"<p class="muted">No part or firmware changed between run {} and run {}.</p>"#,
                c.previous_run.0, c.run.0
            );
        }
        Some(c) => {
            let _ = write!(
                out,
                r#"<p class="muted">Run {} against run {}:</p><ul class="changes">"#,
                c.run.0, c.previous_run.0
            );
            for ch in &c.changes {
                let class = if matches!(ch.change, Change::SerialChanged { .. }) { " class=\"swap\"" } else { "" };
                let _ = write!(out, "<li{class}>{}</li>", esc(&ch.to_string()));
            }
            out.push_str("</ul>");
        }
    }
}

fn components(r: &NodeReport, out: &mut String) {
    let failing: HashSet<&str> = r
        .findings
        .not_passing
        .iter()
        .filter(|s| s.finding.outcome == Outcome::Fail)
        .filter_map(|s| s.finding.component.address.as_deref())
        .collect();
    let _ = write!(out, "<details><summary>Components ({})</summary><table><tr><th>part</th><th>model</th><th>serial</th><th>firmware</th></tr>", r.components.len());
    for c in &r.components {
        let class = if c.address.as_deref().is_some_and(|a| failing.contains(a)) { " class=\"fail\"" } else { "" };
        let _ = write!(
            out,
            r#"<tr{class}><td class="mono">{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{}</td></tr>"#,
            esc(&c.label()),
            esc(c.model.as_deref().unwrap_or("-")),
            esc(c.serial.as_deref().unwrap_or("-")),
            esc(c.firmware.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("</table></details>");
}

/// The burn-in charts, or a line saying there is none. `section`, the same
/// run as the per-node report has it, says whether the run was incomplete.
pub fn burnin_charts(view: &BurninView, section: Option<&BurninSection>, out: &mut String) {
    if view.is_empty() {
        out.push_str(r#"<p class="muted">No burn-in recorded.</p>"#);
        return;
    }
    if let (Some(run), Some(v)) = (view.run, view.verdict) {
        let mut verdict = v.as_str().to_string();
        if let Some(b) = section.filter(|b| b.run_id == run && b.incomplete) {
            verdict.push_str(&format!(" (incomplete: {})", b.not_run.join("; ")));
        }
        let _ = write!(out, r#"<p class="muted">burn-in run {}: {}</p>"#, run.0, esc(&verdict));
    }
    out.push_str(r#"<div class="charts">"#);
    let series = |pick: fn(&TelemetrySample) -> Option<f64>| -> Vec<Series> {
        view.gpus
            .iter()
            .map(|g| Series {
                label: format!("GPU{}", g.gpu),
                points: g.samples.iter().filter_map(|s| pick(s).map(|v| (s.t_s, v))).collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let gemm_min = view.figures.iter().find(|f| f.name == "gemm_tflops").and_then(|f| f.threshold);
    for (title, unit, pick, threshold) in [
        (
            "GEMM throughput per GPU",
            "TFLOP/s",
            (|s: &TelemetrySample| s.tflops) as fn(&TelemetrySample) -> Option<f64>,
            gemm_min,
        ),
        ("GPU temperature", "°C", |s| s.temperature_c, None),
        ("GPU power", "W", |s| s.power_w, None),
    ] {
        let s = series(pick);
        if !s.is_empty() {
            out.push_str(&line_chart(title, unit, &s, threshold));
        }
    }
    if let Some(p) = &view.p2p {
        let labels: Vec<String> = p.gpus.iter().map(|g| format!("GPU{g}")).collect();
        out.push_str(&heatmap("GPU to GPU bandwidth (P2P)", &labels, &p.gbps, p.threshold_gbps));
    }
    if !view.host_links.is_empty() {
        let items: Vec<Bar> = view
            .host_links
            .iter()
            .map(|h| Bar { label: format!("GPU{} {}", h.gpu, h.direction), value: h.gbps, threshold: h.threshold_gbps })
            .collect();
        out.push_str(&bars("Host to GPU links", "GB/s", &items));
    }
    out.push_str("</div>");
}

fn history(n: &RackNodeReport, out: &mut String) {
    if n.events.is_empty() {
        return;
    }
    out.push_str("<details><summary>Recent lifecycle events</summary><table><tr><th>at</th><th>to</th><th>by</th><th>cause</th></tr>");
    for e in &n.events {
        let _ = write!(
            out,
            r#"<tr><td class="mono">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&e.at),
            badge(e.to.name()),
            esc(&e.actor),
            esc(&e.cause)
        );
    }
    out.push_str("</table></details>");
}

/// One node's card.
pub fn node_section(n: &RackNodeReport, out: &mut String) {
    let _ = write!(
        out,
        r#"<section class="card node" id="{}"><h2>{} {}"#,
        anchor(&n.name),
        badge(n.state_name()),
        esc(&n.name)
    );
    let Some(r) = &n.record else {
        let _ = write!(out, "<small>{}</small></h2><p class=\"muted\">Not in the inventory: no run recorded for this node yet.</p></section>", esc(&n.position()));
        return;
    };
    let mut small = vec![n.position()];
    small.extend(r.platform.clone());
    if let Some(s) = &r.serial {
        small.push(format!("SN {s}"));
    }
    let _ = write!(out, "<small>{}</small></h2>", esc(&small.join(" · ")));
    if let Some(reason) = r.state.reason().filter(|r| !r.is_empty()) {
        let _ = write!(out, r#"<p class="reason">{}</p>"#, esc(reason));
    }
    if let (true, Some(locate)) = (n.is_failing(), &n.locate) {
        let _ = write!(out, r#"<p class="locate">Find the tray: <code>{}</code></p>"#, esc(locate));
    }
    out.push_str(r#"<div class="grid2"><div><h3>Findings</h3>"#);
    findings(r, out);
    out.push_str("</div><div><h3>Changed since the previous run</h3>");
    changes(r, out);
    out.push_str("</div></div><h3>Burn-in</h3>");
    burnin_charts(&n.burnin, r.burnin.as_ref(), out);
    if let Some(c) = &r.collective {
        super::collective_section::collective_html(c, out);
    }
    components(r, out);
    history(n, out);
    out.push_str("</section>");
}
