//! The rack report in Prometheus text exposition format (version 0.0.4), for node_exporter's
//! textfile collector: lifecycle state, latest verdicts per run kind and per check, finding
//! counts, parts changed, burn-in figures, and rack consistency. Metric names in docs/reports.md.

use std::collections::BTreeMap;
use std::fmt::Write;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::html_style::STATES;
use super::rack_model::RackReport;
use crate::checks::Outcome;

/// Escape a label value: backslash, double quote and line feed.
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A number as Prometheus writes it (`NaN`, `+Inf`, `-Inf` for the special values).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// One metric family: its help, type and samples, written together as the
/// format requires.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Family { name, help, samples: Vec::new() }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, v: f64) {
        self.samples.push((labels, v));
    }

    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, v) in &self.samples {
            let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label_value(v))).collect();
            let _ = writeln!(out, "{}{{{}}} {}", self.name, body.join(","), value(*v));
        }
    }
}

fn seconds(ts: &str) -> Option<f64> {
    OffsetDateTime::parse(ts, &Rfc3339).ok().map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

const OUTCOMES: [Outcome; 4] = [Outcome::Pass, Outcome::Fail, Outcome::Skipped, Outcome::Error];

fn worst(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Pass => 0,
        Outcome::Skipped => 1,
        Outcome::Error => 2,
        Outcome::Fail => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

pub fn render_prometheus(report: &RackReport) -> String {
    let mut state =
        Family::new("kiln_node_state", "Lifecycle state of the node: 1 for the state it is in, 0 for the others.");
    let mut verdict = Family::new(
        "kiln_run_verdict",
        "Verdict of the node's latest judged run of each kind: 1 for the verdict, 0 for the others.",
    );
    let mut run_id = Family::new("kiln_run_id", "Inventory id of the node's latest judged run of each kind.");
    let mut run_time = Family::new(
        "kiln_run_finished_timestamp_seconds",
        "When the node's latest judged run of each kind finished (Unix time).",
    );
    let mut check = Family::new(
        "kiln_check_outcome",
        "Outcome of each check in the node's latest judged runs (worst over the check's findings): 1 for the outcome, 0 for the others.",
    );
    let mut findings = Family::new("kiln_findings", "Findings of the node's latest judged runs by outcome.");
    let mut changes = Family::new(
        "kiln_component_changes",
        "Parts swapped, added, removed or reflashed between the node's last two runs.",
    );
    let mut figure = Family::new("kiln_burnin_figure", "Burn-in result of the node's latest burn-in.");
    let mut incomplete = Family::new(
        "kiln_burnin_incomplete",
        "1 when a requested test of the node's latest burn-in did not run (its verdict covers only what ran).",
    );
    let mut threshold = Family::new("kiln_burnin_figure_threshold", "Threshold the burn-in result is judged against.");
    let mut outlier = Family::new(
        "kiln_burnin_outlier_deviation_percent",
        "How far the node's worst value of a burn-in figure is from the rack median, in percent (only outliers).",
    );
    let mut parts = Family::new("kiln_rma_parts", "Failed parts of the node to send back.");
    let mut rack_fail =
        Family::new("kiln_rack_consistency_failures", "Failing rack-wide consistency findings by check.");
    let mut generated =
        Family::new("kiln_report_generated_timestamp_seconds", "When this report was generated (Unix time).");

    let rack_id = report.rack.as_ref().map(|r| r.id.clone());
    for n in &report.nodes {
        let rack = n.rack.clone().or_else(|| rack_id.clone()).unwrap_or_default();
        let base = || vec![("rack", rack.clone()), ("node", n.name.clone())];
        let current = n.state_name();
        for s in STATES {
            let mut l = base();
            l.push(("state", s.to_string()));
            state.add(l, if s == current { 1.0 } else { 0.0 });
        }
        let count = n.record.as_ref().map_or(0, |r| r.findings.not_passing.len());
        let _ = count;
        let Some(r) = &n.record else { continue };
        for run in &r.findings.runs {
            let v = run.verdict.map(|v| v.as_str()).unwrap_or("none");
            for candidate in ["pass", "fail", "error"] {
                let mut l = base();
                l.extend([("kind", run.kind.clone()), ("verdict", candidate.to_string())]);
                verdict.add(l, if candidate == v { 1.0 } else { 0.0 });
            }
            let mut l = base();
            l.push(("kind", run.kind.clone()));
            run_id.add(l.clone(), run.id.0 as f64);
            if let Some(t) = seconds(&run.finished_at) {
                run_time.add(l, t);
            }
        }
        // Passing findings are not stored per check in the report, so a check
        // appears here when one of its findings did not pass.
        let mut per_check: BTreeMap<(String, String), Outcome> = BTreeMap::new();
        let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
        for s in &r.findings.not_passing {
            let key = (s.run_kind.clone(), s.finding.check.clone());
            let o = per_check.get(&key).copied().map_or(s.finding.outcome, |prev| worst(prev, s.finding.outcome));
            per_check.insert(key, o);
            *counts.entry(s.finding.outcome).or_default() += 1;
        }
        for ((kind, id), o) in per_check {
            for candidate in OUTCOMES {
                let mut l = base();
                l.extend([("kind", kind.clone()), ("check", id.clone()), ("outcome", candidate.as_str().to_string())]);
                check.add(l, if candidate == o { 1.0 } else { 0.0 });
            }
        }
        counts.insert(Outcome::Pass, r.findings.passed);
        for o in OUTCOMES {
            let mut l = base();
            l.push(("outcome", o.as_str().to_string()));
            findings.add(l, counts.get(&o).copied().unwrap_or(0) as f64);
        }
        if let Some(c) = &r.changes {
            changes.add(base(), c.changes.len() as f64);
        }
        if n.burnin.run.is_some() {
            incomplete.add(base(), if n.burnin.incomplete { 1.0 } else { 0.0 });
        }
        for f in &n.burnin.figures {
            let mut l = base();
            l.extend([("figure", f.name.clone()), ("unit", f.unit.clone())]);
            if let Some(g) = f.gpu {
                l.push(("gpu", g.to_string()));
            }
            if let Some(p) = f.peer_gpu {
                l.push(("peer_gpu", p.to_string()));
            }
            figure.add(l.clone(), f.value);
            if let Some(t) = f.threshold {
                threshold.add(l, t);
            }
        }
        parts.add(base(), report.parts.iter().filter(|p| p.node == n.name).count() as f64);
    }
    for o in &report.outliers {
        let rack = rack_id.clone().unwrap_or_default();
        outlier.add(vec![("rack", rack), ("node", o.node.clone()), ("figure", o.figure.clone())], o.deviation_pct);
    }
    let mut by_check: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &report.consistency {
        let e = by_check.entry(&f.check).or_default();
        if matches!(f.outcome, Outcome::Fail | Outcome::Error) {
            *e += 1;
        }
    }
    for (id, count) in by_check {
        rack_fail.add(vec![("rack", rack_id.clone().unwrap_or_default()), ("check", id.to_string())], count as f64);
    }
    if let Some(t) = seconds(&report.generated_at) {
        generated.add(vec![("rack", rack_id.clone().unwrap_or_default())], t);
    }
    let mut out = String::new();
    for f in [
        &state,
        &verdict,
        &run_id,
        &run_time,
        &check,
        &findings,
        &changes,
        &figure,
        &incomplete,
        &threshold,
        &outlier,
        &parts,
        &rack_fail,
        &generated,
    ] {
        f.write(&mut out);
    }
    out
}
