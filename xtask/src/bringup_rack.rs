//! `cargo xtask bringup --rack FILE`: the rack pipeline end to end with a given kiln binary:
//! `kiln rack validate`, then `kiln rack burnin` on the nodes that passed, then one status table.
//!
//! Both steps record in the inventory, so a rerun skips what already passed
//! (the rack commands do that themselves). The exit code says whether every
//! node passed both steps.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::Value;

/// kiln's exit codes that the pipeline reads (docs/exit-codes.md).
const EXIT_OK: i32 = 0;
const EXIT_USAGE: i32 = 2;
const EXIT_SKIPPED: i32 = 7;

#[derive(Debug, Clone)]
pub struct RackBringup {
    /// The kiln binary that runs the rack (and is pushed to the nodes).
    pub kiln: PathBuf,
    pub rack: PathBuf,
    pub db: PathBuf,
    /// Nodes in flight at once (`--parallel`).
    pub parallel: usize,
    /// Passed to the node's `kiln burnin` as `--duration`.
    pub burnin_duration: String,
    /// Extra arguments for `kiln rack ...` (timeouts), before the node arguments.
    pub rack_args: Vec<String>,
}

/// One node's row in the final table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRow {
    pub validate: String,
    /// `-` when burn-in did not run on the node.
    pub burnin: String,
    /// The lifecycle state the inventory holds after the last step.
    pub state: String,
    pub reason: String,
}

/// What the pipeline came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub validate_exit: i32,
    /// `None` when burn-in did not run: nothing passed validate, or this
    /// kiln has no `burnin` command (see `burnin_skipped`).
    pub burnin_exit: Option<i32>,
    /// Why burn-in was skipped as a whole, when it was.
    pub burnin_skipped: Option<String>,
    pub nodes: BTreeMap<String, NodeRow>,
    /// 0 only when every node passed validate and burn-in.
    pub exit_code: i32,
}

impl Outcome {
    /// The status table: one row per node, then the verdict.
    pub fn table(&self) -> String {
        let header = ["NODE", "VALIDATE", "BURNIN", "STATE", "REASON"];
        let rows: Vec<[String; 5]> = self
            .nodes
            .iter()
            .map(|(n, r)| [n.clone(), r.validate.clone(), r.burnin.clone(), r.state.clone(), r.reason.clone()])
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let all = std::iter::once(header.map(str::to_string)).chain(rows);
        for row in all {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Runs one `kiln rack <step> --json`; its progress and errors go to our
/// stderr, its JSON is returned with the exit code.
fn rack_step(b: &RackBringup, step: &str, nodes: &[String], node_args: &[String]) -> Result<(i32, Option<Value>)> {
    let mut cmd = Command::new(&b.kiln);
    cmd.args(["rack", step, "--json", "--parallel", &b.parallel.to_string(), "--rack"])
        .arg(&b.rack)
        .arg("--db")
        .arg(&b.db)
        .args(&b.rack_args);
    if !nodes.is_empty() {
        cmd.arg("--nodes").arg(nodes.join(","));
    }
    if !node_args.is_empty() {
        cmd.arg("--").args(node_args);
    }
    eprintln!(
        "== kiln rack {step}{}",
        if nodes.is_empty() { String::new() } else { format!(" ({})", nodes.join(",")) }
    );
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output().with_context(|| format!("run {cmd:?}"))?;
    let code = out.status.code().unwrap_or(128);
    Ok((code, serde_json::from_slice(&out.stdout).ok()))
}

/// Whether this kiln has a `burnin` command (clap answers an unknown
/// subcommand with exit 2 and "unrecognized subcommand").
fn has_burnin(kiln: &Path) -> Result<bool> {
    let out = Command::new(kiln)
        .args(["burnin", "--help"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} burnin --help", kiln.display()))?;
    let unknown = out.status.code() == Some(EXIT_USAGE)
        && String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand");
    Ok(!unknown)
}

fn field(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("-").to_string()
}

/// Fills the rows from one rack step's JSON (`set` picks the column).
fn absorb(rows: &mut BTreeMap<String, NodeRow>, json: &Value, set: fn(&mut NodeRow, String)) {
    for n in json["nodes"].as_array().into_iter().flatten() {
        let row = rows.entry(field(n, "node")).or_default();
        set(row, field(n, "status"));
        if let Some(state) = n["recorded"]["state"].as_str() {
            row.state = match n["recorded"]["state_reason"].as_str() {
                Some(r) => format!("{state} ({r})"),
                None => state.to_string(),
            };
        }
        if let Some(reason) = n["reason"].as_str() {
            row.reason = reason.to_string();
        }
    }
}

/// A node that passed a step or was skipped because it had already passed.
fn passed(n: &Value) -> bool {
    n["status"] == "pass" || (n["status"] == "skipped" && n.get("remote_exit").is_none())
}

/// Runs the pipeline and prints nothing but the steps' own progress; the
/// caller prints `Outcome::table`.
pub fn run(b: &RackBringup) -> Result<Outcome> {
    let (validate_exit, validate) = rack_step(b, "validate", &[], &[])?;
    let validate = validate.with_context(|| format!("kiln rack validate printed no JSON (exit {validate_exit})"))?;
    let mut nodes: BTreeMap<String, NodeRow> = BTreeMap::new();
    absorb(&mut nodes, &validate, |r, s| {
        r.validate = s;
        r.burnin = "-".into();
    });
    let ready: Vec<String> =
        validate["nodes"].as_array().into_iter().flatten().filter(|n| passed(n)).map(|n| field(n, "node")).collect();

    let mut burnin_exit = None;
    let mut burnin_skipped = None;
    if ready.is_empty() {
        burnin_skipped = Some("no node passed validate".to_string());
    } else if !has_burnin(&b.kiln)? {
        burnin_skipped =
            Some(format!("{} has no `burnin` command; nodes are validated, not burned in", b.kiln.display()));
    } else {
        let args = ["--duration".to_string(), b.burnin_duration.clone()];
        let (code, json) = rack_step(b, "burnin", &ready, &args)?;
        let json = json.with_context(|| format!("kiln rack burnin printed no JSON (exit {code})"))?;
        absorb(&mut nodes, &json, |r, s| r.burnin = s);
        burnin_exit = Some(code);
    }
    let all_validated = validate_exit == EXIT_OK && ready.len() == nodes.len();
    let exit_code = match burnin_exit {
        _ if !all_validated => validate_exit.max(1),
        Some(code) => code,
        // Validated but not burned in: not a pass (docs/exit-codes.md).
        None => EXIT_SKIPPED,
    };
    Ok(Outcome { validate_exit, burnin_exit, burnin_skipped, nodes, exit_code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_take_status_state_and_reason() {
        let json: Value = serde_json::from_str(
            r#"{"nodes": [
                {"node": "node01", "status": "pass", "recorded": {"state": "validated"}},
                {"node": "node02", "status": "skipped", "reason": "already passed at T; --force to rerun",
                 "recorded": {"state": "burned_in"}},
                {"node": "node03", "status": "fail", "reason": "pcie.width gpu2: x8",
                 "recorded": {"state": "failed", "state_reason": "validate failed: pcie.width"}},
                {"node": "node04", "status": "skipped", "remote_exit": 7}
            ]}"#,
        )
        .expect("json");
        let mut rows = BTreeMap::new();
        absorb(&mut rows, &json, |r, s| r.validate = s);
        assert_eq!(rows["node03"].state, "failed (validate failed: pcie.width)");
        assert_eq!(rows["node03"].reason, "pcie.width gpu2: x8");
        let ready: Vec<&str> = json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| passed(n))
            .map(|n| n["node"].as_str().expect("name"))
            .collect();
        assert_eq!(ready, ["node01", "node02"], "a node the node command skipped (exit 7) did not pass");
        let table =
            Outcome { validate_exit: 1, burnin_exit: None, burnin_skipped: None, nodes: rows, exit_code: 1 }.table();
        assert!(table.starts_with("NODE    VALIDATE  BURNIN  STATE"), "{table}");
        assert!(table.contains("node03  fail"), "{table}");
    }
}
