//! The report as CSV: one row per component, finding or change, told apart by the `record` column.

use super::{NodeReport, Report};

/// The header row. Columns a record does not use are empty.
pub const CSV_COLUMNS: [&str; 22] = [
    "record", "hostname", "run_id", "run_kind", "kind", "place", "slot", "address", "vendor", "model", "serial",
    "firmware", "check", "outcome", "severity", "expected", "actual", "message", "action", "change", "from", "to",
];

/// RFC 4180 quoting: a field with a comma, quote or line break is quoted,
/// with its quotes doubled. Lines end in `\n` rather than RFC 4180's `\r\n`,
/// which every CSV reader we know accepts.
pub(crate) fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// A row under construction: cells set by column name.
struct Row([String; CSV_COLUMNS.len()]);

impl Row {
    fn new(record: &str, hostname: &str) -> Self {
        let mut row = Row(Default::default());
        row.set("record", record).set("hostname", hostname);
        row
    }

    fn set(&mut self, column: &str, value: &str) -> &mut Self {
        let i = CSV_COLUMNS.iter().position(|c| *c == column);
        debug_assert!(i.is_some(), "no CSV column {column}");
        if let Some(i) = i {
            self.0[i] = value.to_string();
        }
        self
    }

    fn opt(&mut self, column: &str, value: Option<&str>) -> &mut Self {
        self.set(column, value.unwrap_or(""))
    }

    fn line(&self) -> String {
        let mut line = self.0.iter().map(|v| field(v)).collect::<Vec<_>>().join(",");
        line.push('\n');
        line
    }
}

fn node_rows(node: &NodeReport, out: &mut String) {
    let host = node.hostname.as_str();
    if let Some(run) = &node.last_run {
        let run_id = run.id.0.to_string();
        for c in &node.components {
            let mut row = Row::new("component", host);
            row.set("run_id", &run_id).set("run_kind", &run.kind).set("kind", &c.kind);
            row.set("place", &c.label()).opt("slot", c.slot.as_deref()).opt("address", c.address.as_deref());
            row.opt("vendor", c.vendor.as_deref()).opt("model", c.model.as_deref());
            row.opt("serial", c.serial.as_deref()).opt("firmware", c.firmware.as_deref());
            out.push_str(&row.line());
        }
    }
    for s in &node.findings.not_passing {
        let f = &s.finding;
        let c = &f.component;
        let mut row = Row::new("finding", host);
        row.set("run_id", &s.run_id.0.to_string()).set("run_kind", &s.run_kind).set("kind", &c.kind);
        row.set("place", &c.label());
        row.opt("slot", c.slot.as_deref()).opt("address", c.address.as_deref()).opt("model", c.name.as_deref());
        row.opt("serial", c.serial.as_deref()).set("check", &f.check).set("outcome", f.outcome.as_str());
        row.set("severity", f.severity.as_str()).opt("expected", f.expected.as_deref());
        row.opt("actual", f.actual.as_deref()).set("message", &f.message).opt("action", f.action.as_deref());
        out.push_str(&row.line());
    }
    if let Some(changes) = &node.changes {
        use crate::inventory::Change;
        for change in &changes.changes {
            let mut row = Row::new("change", host);
            row.set("run_id", &changes.run.0.to_string()).set("kind", &change.kind);
            row.opt("run_kind", node.last_run.as_ref().map(|r| r.kind.as_str()));
            row.set("place", &change.label);
            match &change.change {
                Change::Added { model, serial } => {
                    row.set("change", "added").opt("model", model.as_deref()).opt("to", serial.as_deref());
                }
                Change::Removed { model, serial } => {
                    row.set("change", "removed").opt("model", model.as_deref()).opt("from", serial.as_deref());
                }
                Change::SerialChanged { from, to } => {
                    row.set("change", "serial_changed").set("from", from).set("to", to);
                }
                Change::FirmwareChanged { from, to } => {
                    row.set("change", "firmware_changed").set("from", from).set("to", to);
                }
                Change::ModelChanged { from, to } => {
                    row.set("change", "model_changed").set("from", from).set("to", to);
                }
            }
            out.push_str(&row.line());
        }
    }
}

/// Header, then per node its components, findings that did not pass, and changes.
pub fn render_csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for node in &report.nodes {
        node_rows(node, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"x16\""), "\"say \"\"x16\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
