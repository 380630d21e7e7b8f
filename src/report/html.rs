//! The rack report as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched.

use std::fmt::Write;

use super::burnin_section::run_verdict;
use super::firmware_matrix::FirmwareMatrix;
use super::html_node::node_section;
use super::html_style::{state_colors, CSS, STATES};
use super::rack_model::{RackNodeReport, RackReport};
use super::svg::esc;
use crate::checks::Outcome;

/// `#node-a07-n01`: an anchor id from a node name (names are letters, digits, `-_.`).
pub fn anchor(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    format!("node-{safe}")
}

pub fn badge(state: &str) -> String {
    let (bg, fg) = state_colors(state);
    format!(r#"<span class="badge" style="background:{bg};color:{fg}">{}</span>"#, esc(&state.replace('_', " ")))
}

/// The number in a slot name (`U12` is 12), for ordering units top to bottom.
fn position_number(n: &RackNodeReport) -> Option<u32> {
    if let Some(t) = n.tray {
        return Some(t);
    }
    let digits: String = n.slot.as_deref()?.chars().filter(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The rack as a column of units, highest position on top (rack units count
/// from the floor), each coloured by its node's state and linking to it.
fn rack_drawing(report: &RackReport, out: &mut String) {
    let mut nodes: Vec<&RackNodeReport> = report.nodes.iter().collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(position_number(n).map_or(0, |p| p + 1)));
    out.push_str(r#"<div class="rackframe">"#);
    for n in nodes {
        let state = n.state_name();
        let (bg, fg) = state_colors(state);
        let unknown = if state == "unknown" { " unknown" } else { "" };
        let _ = write!(
            out,
            r##"<a class="unit{unknown}" href="#{}" style="background:{bg};color:{fg}"><span class="pos">{}</span><span class="name">{}</span><span class="st">{}</span></a>"##,
            anchor(&n.name),
            esc(&n.position()),
            esc(&n.name),
            esc(&state.replace('_', " "))
        );
    }
    out.push_str("</div><div class=\"legend\">");
    for s in STATES {
        let (bg, _) = state_colors(s);
        let _ = write!(out, r#"<span><i style="background:{bg}"></i>{}</span>"#, s.replace('_', " "));
    }
    out.push_str("</div>");
}

fn overview(report: &RackReport, out: &mut String) {
    out.push_str(
        "<table><tr><th>position</th><th>node</th><th>state</th><th>why</th><th>last run</th><th>changes</th></tr>",
    );
    for n in &report.nodes {
        let (why, run, changes) = match &n.record {
            None => ("not in the inventory: no run recorded".to_string(), "-".to_string(), "-".to_string()),
            Some(r) => {
                let failing: Vec<&str> = r
                    .findings
                    .not_passing
                    .iter()
                    .filter(|s| s.finding.outcome == Outcome::Fail)
                    .map(|s| s.finding.check.as_str())
                    .collect();
                let mut why = r.state.reason().unwrap_or_default().to_string();
                if why.is_empty() && !failing.is_empty() {
                    why = format!("failing: {}", failing.join(", "));
                }
                let run = r.last_run.as_ref().map_or("-".to_string(), |run| {
                    format!("{} {} ({})", run.kind, run.id.0, run_verdict(run, r.burnin.as_ref()))
                });
                let changes = match &r.changes {
                    Some(c) if !c.changes.is_empty() => format!("{} since run {}", c.changes.len(), c.previous_run.0),
                    Some(_) => "none".into(),
                    None => "-".into(),
                };
                (why, run, changes)
            }
        };
        let mut why = esc(&why);
        if let (true, Some(locate)) = (n.is_failing(), &n.locate) {
            let _ = write!(why, r#"<br><code class="locate">{}</code>"#, esc(locate));
        }
        let _ = write!(
            out,
            r##"<tr><td class="mono">{}</td><td><a href="#{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"##,
            esc(&n.position()),
            anchor(&n.name),
            esc(&n.name),
            badge(n.state_name()),
            why,
            esc(&run),
            esc(&changes)
        );
    }
    out.push_str("</table>");
}

fn parts(report: &RackReport, out: &mut String) {
    if report.parts.is_empty() {
        out.push_str(r#"<p class="muted">No failed part recorded.</p>"#);
        return;
    }
    out.push_str("<table><tr><th>node</th><th>position</th><th>part</th><th>slot / address</th><th>model</th><th>serial</th><th>firmware</th><th>evidence</th><th>action</th></tr>");
    for p in &report.parts {
        let part = match p.gpu_index {
            Some(i) => format!("{} {i}", p.kind),
            None => p.kind.clone(),
        };
        let place = [p.slot.as_deref(), p.address.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        let _ = write!(
            out,
            r##"<tr class="fail"><td><a href="#{}">{}</a></td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{}</td><td>{}</td><td class="action">{}</td></tr>"##,
            anchor(&p.node),
            esc(&p.node),
            esc(&p.node_position),
            esc(&part),
            esc(&place),
            esc(p.model.as_deref().unwrap_or("-")),
            esc(p.serial.as_deref().unwrap_or("not read")),
            esc(p.firmware.as_deref().unwrap_or("-")),
            p.evidence.iter().map(|e| esc(e)).collect::<Vec<_>>().join("<br>"),
            esc(p.action.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("</table>");
}

fn consistency(report: &RackReport, out: &mut String) {
    let bad: Vec<_> =
        report.consistency.iter().filter(|f| matches!(f.outcome, Outcome::Fail | Outcome::Error)).collect();
    let passed = report.consistency.iter().filter(|f| f.outcome == Outcome::Pass).count();
    if bad.is_empty() {
        let _ = write!(
            out,
            r#"<p>Firmware, part counts and NVLink domain agree across the rack ({passed} checks passed).</p>"#
        );
    } else {
        out.push_str("<table><tr><th>outcome</th><th>check</th><th>what differs</th><th>expected</th><th>actual</th><th>action</th></tr>");
        for f in bad {
            let _ = write!(
                out,
                r#"<tr class="{o}"><td class="o-{o}">{o}</td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{}</td><td class="action">{}</td></tr>"#,
                esc(&f.check),
                esc(&f.message),
                esc(f.expected.as_deref().unwrap_or("-")),
                esc(f.actual.as_deref().unwrap_or("-")),
                esc(f.action.as_deref().unwrap_or("-")),
                o = f.outcome.as_str()
            );
        }
        out.push_str("</table>");
    }
    if !report.outliers.is_empty() {
        out.push_str("<h3>Burn-in figures far from the rack median</h3><table><tr><th>node</th><th>figure</th><th>value</th><th>rack median</th><th>deviation</th></tr>");
        for o in &report.outliers {
            let _ = write!(
                out,
                r##"<tr class="fail"><td><a href="#{}">{}</a></td><td class="mono">{}</td><td>{} {}</td><td>{} {}</td><td class="o-fail">{:+.1} %</td></tr>"##,
                anchor(&o.node),
                esc(&o.node),
                esc(&o.figure),
                super::svg::num(o.value),
                esc(&o.unit),
                super::svg::num(o.median),
                esc(&o.unit),
                o.deviation_pct
            );
        }
        out.push_str("</table>");
    }
}

/// Component x tray: each cell the versions the tray's newest firmware check read, coloured by
/// how they stand against the recipe's pin (shown on hover and in the row's last column).
fn firmware(m: &FirmwareMatrix, out: &mut String) {
    out.push_str("<table class=\"fwmatrix\"><tr><th>component</th>");
    for t in &m.trays {
        let _ = write!(
            out,
            r##"<th><a href="#{}">{}</a><br><small>{}</small></th>"##,
            anchor(&t.node),
            esc(&t.position),
            esc(&t.node)
        );
    }
    out.push_str("<th>pinned</th></tr>");
    for (c, cells) in m.components.iter().zip(&m.cells) {
        let _ = write!(out, r#"<tr><td class="mono">{}</td>"#, esc(c.trim_start_matches("firmware.")));
        let mut pinned = None;
        for cell in cells {
            match cell {
                None => out.push_str(r#"<td class="muted">-</td>"#),
                Some(cell) => {
                    pinned = pinned.or(cell.pinned.clone());
                    let o = cell.outcome.as_str();
                    let versions = if cell.versions.is_empty() { "-".to_string() } else { cell.versions.join(" / ") };
                    let _ = write!(
                        out,
                        r#"<td class="mono o-{o}" title="{o}: {} instance(s)">{}</td>"#,
                        cell.instances,
                        esc(&versions)
                    );
                }
            }
        }
        let _ = write!(out, r#"<td class="mono">{}</td></tr>"#, esc(pinned.as_deref().unwrap_or("-")));
    }
    out.push_str("<tr><td class=\"muted\">not in the recipe</td>");
    for t in &m.trays {
        let text = match t.run_id {
            Some(_) => t.not_in_recipe.to_string(),
            None => "never checked".into(),
        };
        let _ = write!(out, r#"<td class="muted">{}</td>"#, esc(&text));
    }
    out.push_str("<td></td></tr></table>");
}

/// The whole page.
pub fn render_html(report: &RackReport) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = match &report.rack {
        Some(r) => format!("Rack {}", r.id),
        None => "All nodes".to_string(),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>kiln: {}</title><style>{CSS}</style></head><body><header><h1>{}</h1><p class=\"meta\">",
        esc(&title),
        esc(&title)
    );
    let mut meta: Vec<String> = Vec::new();
    if let Some(r) = &report.rack {
        for (k, v) in [
            ("site", r.site.clone()),
            ("row", r.row.clone()),
            ("position", r.position.map(|p| p.to_string())),
            ("platform", r.platform.clone()),
        ] {
            if let Some(v) = v {
                meta.push(format!("{k} {v}"));
            }
        }
    }
    meta.push(format!("{} nodes", report.nodes.len()));
    meta.push(format!("generated {}", report.generated_at));
    out.push_str(&esc(&meta.join(" · ")));
    out.push_str("</p><div>");
    for s in STATES {
        let count = report.nodes.iter().filter(|n| n.state_name() == s).count();
        if count > 0 {
            let (bg, fg) = state_colors(s);
            let _ = write!(
                out,
                r#"<span class="chip" style="background:{bg};color:{fg}">{} {count}</span>"#,
                s.replace('_', " ")
            );
        }
    }
    if !report.parts.is_empty() {
        let _ = write!(out, r#" <span class="alert">{} part(s) to return</span>"#, report.parts.len());
    }
    out.push_str("</div></header><div class=\"top\"><section class=\"card\"><h2>Rack</h2>");
    rack_drawing(report, &mut out);
    out.push_str("</section><section class=\"card\"><h2>Nodes</h2>");
    overview(report, &mut out);
    out.push_str("</section></div><section class=\"card\"><h2>Parts to return (RMA)</h2>");
    parts(report, &mut out);
    out.push_str("</section><section class=\"card\"><h2>Rack consistency</h2>");
    consistency(report, &mut out);
    out.push_str("</section>");
    if let Some(m) = &report.firmware {
        out.push_str("<section class=\"card\"><h2>Firmware</h2>");
        firmware(m, &mut out);
        out.push_str("</section>");
    }
    for n in &report.nodes {
        node_section(n, &mut out);
    }
    let _ = writeln!(
        out,
        "<footer>kiln {} · rack report schema {} · one file, no scripts</footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        report.schema_version
    );
    out
}
