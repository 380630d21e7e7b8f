//! The `kiln validate` report: its JSON document (schema in
//! `docs/json-schema.md`) and its table for people.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::checks::detect::Selection;
use crate::checks::{Finding, Outcome, Verdict};
use crate::model::{Node, NodeDocument};

/// Version of the validate JSON; bumped on any change a consumer could notice.
pub const VALIDATE_SCHEMA_VERSION: u32 = 1;

/// The `kind` field of the validate JSON.
pub const VALIDATE_KIND: &str = "kiln.validate";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skipped: usize,
    pub error: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Self {
        let n = |o: Outcome| findings.iter().filter(|f| f.outcome == o).count();
        Summary {
            pass: n(Outcome::Pass),
            fail: n(Outcome::Fail),
            skipped: n(Outcome::Skipped),
            error: n(Outcome::Error),
        }
    }
}

/// One node judged against one platform spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateReport {
    pub schema_version: u32,
    /// Always `kiln.validate`.
    pub kind: String,
    /// The node's hostname.
    pub node: String,
    /// The platform spec's name.
    pub platform: String,
    /// Where the spec came from: a file path, or `built-in/<file>`.
    pub platform_origin: String,
    pub platform_selection: Selection,
    pub verdict: Verdict,
    pub summary: Summary,
    /// In the order the rules produced them (see `checks::validate`).
    pub findings: Vec<Finding>,
    /// The node as inspected for this judgement (`kiln validate --with-node`),
    /// so that a controller can record the run and compare nodes without a
    /// second inspection. Absent unless asked for.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "NodeDocument::serialize_option")]
    pub inspected: Option<Node>,
}

impl ValidateReport {
    pub fn new(node: &str, platform: &str, origin: &str, selection: Selection, findings: Vec<Finding>) -> Self {
        ValidateReport {
            schema_version: VALIDATE_SCHEMA_VERSION,
            kind: VALIDATE_KIND.to_string(),
            node: node.to_string(),
            platform: platform.to_string(),
            platform_origin: origin.to_string(),
            platform_selection: selection,
            verdict: Verdict::of(&findings),
            summary: Summary::of(&findings),
            findings,
            inspected: None,
        }
    }

    /// The report with more findings after its own, its verdict and summary counted again.
    pub fn with_findings(mut self, more: Vec<Finding>) -> Self {
        self.findings.extend(more);
        self.verdict = Verdict::of(&self.findings);
        self.summary = Summary::of(&self.findings);
        self
    }
}

/// Order in the table: what needs a technician first.
fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Fail => 0,
        Outcome::Error => 1,
        Outcome::Skipped => 2,
        Outcome::Pass => 3,
    }
}

fn paint(text: &str, outcome: Outcome, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match outcome {
        Outcome::Pass => "32",
        Outcome::Fail => "31;1",
        Outcome::Skipped => "2",
        Outcome::Error => "33;1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The report as a table: a header with the verdict, then fails, errors,
/// skips and passes, each with its component, and for fails and errors the
/// serial/slot and the action on lines below.
pub fn render_table(report: &ValidateReport, color: bool) -> String {
    let mut s = String::new();
    let sel = match report.platform_selection {
        Selection::Named => "named",
        Selection::File => "from file",
        Selection::Detected => "detected",
        Selection::Fallback => "no platform matched; fallback",
    };
    // Every value is escaped for the terminal here, not the whole text: the outcome words are
    // coloured with escape sequences of kiln's own.
    let safe = |t: String| crate::terminal::text(&t).into_owned();
    let _ = writeln!(
        s,
        "{}",
        safe(format!("node {}  platform {} ({sel}: {})", report.node, report.platform, report.platform_origin))
    );
    let verdict = report.verdict.as_str().to_uppercase();
    let verdict_outcome = match report.verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
        Verdict::Error => Outcome::Error,
    };
    let m = &report.summary;
    let _ = writeln!(
        s,
        "verdict {}  ({} pass, {} fail, {} error, {} skipped)\n",
        paint(&verdict, verdict_outcome, color),
        m.pass,
        m.fail,
        m.error,
        m.skipped
    );
    let mut rows: Vec<&Finding> = report.findings.iter().collect();
    rows.sort_by_key(|f| rank(f.outcome));
    let check_w = super::columns::width(rows.iter().map(|f| f.check.as_str()), 0);
    let labels: Vec<String> = rows.iter().map(|f| f.component.label()).collect();
    let comp_w = super::columns::width(labels.iter().map(String::as_str), 0).min(28);
    let indent = " ".repeat(9 + check_w + 2);
    for f in rows {
        let word = format!("{:<7}", f.outcome.as_str());
        let rest = format!(
            "{}  {}  {}",
            super::columns::pad(&f.check, check_w),
            super::columns::pad(&f.component.label(), comp_w),
            f.message
        );
        let _ = writeln!(s, "{}  {}", paint(&word, f.outcome, color), safe(rest));
        if matches!(f.outcome, Outcome::Fail | Outcome::Error) {
            let mut place = Vec::new();
            if let Some(serial) = &f.component.serial {
                place.push(format!("serial {serial}"));
            }
            if let Some(slot) = &f.component.slot {
                place.push(format!("slot {slot}"));
            }
            if !place.is_empty() {
                let _ = writeln!(s, "{indent}{}", safe(place.join(", ")));
            }
            if let Some(action) = &f.action {
                let _ = writeln!(s, "{indent}-> {}", safe(action.clone()));
            }
        }
    }
    s
}

/// The report as pretty JSON.
pub fn render_json(report: &ValidateReport) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testnode::{self, hgx_gpu_address, pci_mut, spec};
    use crate::checks::validate;

    fn report_with_x8() -> ValidateReport {
        let mut node = testnode::hgx_b200();
        pci_mut(&mut node, &hgx_gpu_address(2)).link.as_mut().expect("link").current_width = Some(8);
        let findings = validate(&node, &spec("hgx-b200"));
        ValidateReport::new(&node.hostname, "hgx-b200", "built-in/hgx-b200.toml", Selection::Detected, findings)
    }

    #[test]
    fn table_puts_fails_first_with_their_action() {
        let text = render_table(&report_with_x8(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("verdict FAIL  (") && lines[1].contains(" 1 fail,"), "{}", lines[1]);
        assert!(lines[3].starts_with("fail     pcie.width"), "{}", lines[3]);
        assert!(lines[4].trim_start().starts_with("serial 1652424000018"), "{}", lines[4]);
        assert!(lines[5].trim_start().starts_with("-> GPU at "), "{}", lines[5]);
        assert!(!text.contains('\x1b'), "no colour when not asked");
    }

    #[test]
    fn json_has_the_documented_top_level_fields_and_round_trips() {
        let report = report_with_x8();
        let text = render_json(&report).expect("serializes");
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["kind"], "kiln.validate");
        assert_eq!(v["node"], "hgx-b200-01");
        assert_eq!(v["platform"], "hgx-b200");
        assert_eq!(v["platform_selection"], "detected");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["summary"]["fail"], 1);
        let fail = v["findings"].as_array().expect("array").iter().find(|f| f["outcome"] == "fail").expect("a fail");
        assert_eq!(fail["check"], "pcie.width");
        assert_eq!(fail["component"]["gpu_index"], 2);
        assert_eq!(fail["expected"], "x16");
        assert_eq!(fail["actual"], "x8");
        let back: ValidateReport = serde_json::from_str(&text).expect("round trips");
        assert_eq!(back, report);
    }
}
