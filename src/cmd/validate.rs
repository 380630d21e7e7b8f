//! `kiln validate`: choose the platform spec, judge the node, print the
//! findings, and exit with the verdict's code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::checks::bom::Bom;
use crate::checks::detect::Selection;
use crate::checks::select::{self, SpecChoice};
use crate::checks::spec_load::LoadedSpec;
use crate::checks::{validate, Verdict};
use crate::cli::ValidateArgs;
use crate::cmd::{node, CmdResult, Outcome};
use crate::exit;
use crate::inventory::{now, RunRecord};
use crate::lifecycle::RunKind;
use crate::model::Node;
use crate::report::findings::{render_json, render_table, ValidateReport};

pub use crate::checks::select::SelectError;

/// The spec to judge a node against: `--spec FILE`, else `--platform NAME`,
/// else detection, from the built-in specs or `--checks-dir`. The third
/// value names other specs that matched as well as the chosen one.
pub fn select_spec(node: &Node, args: &ValidateArgs) -> Result<(LoadedSpec, Selection, Vec<String>), SelectError> {
    let choice = SpecChoice {
        spec_file: args.spec.as_deref(),
        platform: args.platform.as_deref(),
        checks_dir: args.checks_dir.as_deref(),
    };
    let found = select::select(node, &choice)?;
    Ok((found.spec, found.selection, found.also_matched))
}

/// Judges a node and returns the report, for callers that record it (the
/// inventory, the rack path) as well as print it. With `--bom`, the bill of
/// materials' findings follow the spec's.
pub fn judge(node: &Node, args: &ValidateArgs) -> CmdResult<ValidateReport> {
    let bom = match &args.bom {
        Some(path) => Some(Bom::load(path)?),
        None => None,
    };
    let (spec, selection, also) = select_spec(node, args)?;
    if !also.is_empty() {
        tracing::warn!(chosen = %spec.platform.name, also = %also.join(", "), "several platform specs match this node");
    }
    let mut findings = validate(node, &spec.platform);
    if let Some(bom) = &bom {
        findings.extend(bom.judge(node, &node.hostname, &spec.platform.name));
    }
    Ok(ValidateReport::new(
        &node.hostname,
        &spec.platform.name,
        &spec.origin.display().to_string(),
        selection,
        findings,
    ))
}

/// The exit code of a verdict.
pub fn exit_code(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Pass => exit::OK,
        Verdict::Fail => exit::CHECK_FAILED,
        Verdict::Error => exit::CHECK_ERROR,
    }
}

/// Judges `node` and prints the report to `out` (JSON with `--json`, else a
/// table, coloured when `color`). Bad specs and unknown platform names are
/// bad input.
pub fn run_with_node(node: &Node, args: &ValidateArgs, out: &mut dyn Write, color: bool) -> CmdResult {
    let report = judge(node, args)?;
    print_report(&report, args.json, out, color)?;
    Ok(Outcome::exit(exit_code(report.verdict)))
}

/// `kiln validate` from the command line.
pub fn run(args: &ValidateArgs) -> CmdResult {
    let started = now();
    let node = match &args.node {
        Some(file) => read_node(file)?,
        None => node::inspect(args.source.root.as_deref())?,
    };
    let stdout = std::io::stdout();
    let color = !args.json && stdout.is_terminal();
    let mut report = judge(&node, args)?;
    if let Some(db) = &args.db.db {
        report = report.with_findings(serial_findings(db, &node)?);
    }
    if args.with_node {
        report.inspected = Some(node.clone());
    }
    print_report(&report, args.json, &mut crate::terminal::stdout(), color)?;
    let code = exit_code(report.verdict);
    if let Some(db) = &args.db.db {
        let run = RunRecord {
            platform: Some(&report.platform),
            findings: &report.findings,
            verdict: Some(report.verdict),
            exit_code: code,
            started_at: started,
            finished_at: now(),
            ..RunRecord::new(RunKind::Validate, &node, "kiln validate")
        };
        node::record(db, &run)?;
    }
    Ok(Outcome::exit(code))
}

/// Fleet-wide uniqueness: a part whose serial another node's newest run in the inventory also
/// holds fails `inventory.serial_unique`, naming both places. A database not made yet has none.
fn serial_findings(db: &Path, node: &Node) -> CmdResult<Vec<crate::checks::Finding>> {
    let inventory = match crate::inventory::Inventory::open_read_only(db) {
        Ok(inv) => inv,
        Err(crate::inventory::InventoryError::Missing { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let conflicts = inventory.serials_elsewhere(node)?;
    Ok(conflicts.iter().map(|c| c.finding(None)).collect())
}

fn print_report(report: &ValidateReport, json: bool, out: &mut dyn Write, color: bool) -> CmdResult<()> {
    let text = if json { render_json(report)? + "\n" } else { render_table(report, color) };
    out.write_all(text.as_bytes()).context("cannot write the report")?;
    Ok(())
}

/// Why a node file (`kiln validate --node`) could not be read: bad input (exit 4).
#[derive(Debug, thiserror::Error)]
pub enum NodeFileError {
    #[error("cannot read node file {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {} as a kiln node document: {}:{}", file.display(), file.display(), source)]
    Parse { file: PathBuf, source: crate::json_error::JsonError },
}

/// A node JSON document as `kiln inspect --json` prints it.
pub fn read_node(file: &Path) -> Result<Node, NodeFileError> {
    let text = crate::input::read_to_string(file, crate::input::Input::NodeJson)
        .map_err(|source| NodeFileError::Read { file: file.to_path_buf(), source })?;
    crate::json_error::from_str(&text).map_err(|source| NodeFileError::Parse { file: file.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testnode::{self, gpu_mut};
    use crate::cli::{DbArgs, SourceArgs};

    fn args() -> ValidateArgs {
        ValidateArgs {
            source: SourceArgs { root: None },
            db: DbArgs { db: None },
            platform: None,
            spec: None,
            checks_dir: None,
            json: true,
            node: None,
            with_node: false,
            bom: None,
        }
    }

    fn run_json(node: &Node, a: &ValidateArgs) -> (i32, serde_json::Value) {
        let mut out = Vec::new();
        let code = Outcome::from(run_with_node(node, a, &mut out, false)).code();
        let v = if out.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&out).expect("json") };
        (code, v)
    }

    #[test]
    fn exit_codes_follow_the_verdict() {
        let (code, v) = run_json(&testnode::hgx_b200(), &args());
        assert_eq!((code, v["verdict"].as_str()), (exit::OK, Some("pass")));
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 1).remapped_rows.as_mut().expect("rows").pending = true;
        assert_eq!(run_json(&node, &args()).0, exit::CHECK_FAILED);
        node = testnode::hgx_b200();
        node.gpus = crate::model::GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        let (code, v) = run_json(&node, &args());
        assert_eq!((code, v["verdict"].as_str()), (exit::CHECK_ERROR, Some("error")));
    }

    #[test]
    fn unknown_platform_is_bad_input() {
        let a = ValidateArgs { platform: Some("dgx-a100".into()), ..args() };
        assert_eq!(run_json(&testnode::hgx_b200(), &a), (exit::BAD_INPUT, serde_json::Value::Null));
    }

    #[test]
    fn named_platform_overrides_detection() {
        let a = ValidateArgs { platform: Some("generic".into()), ..args() };
        let (code, v) = run_json(&testnode::hgx_b200(), &a);
        assert_eq!(
            (code, v["platform"].as_str(), v["platform_selection"].as_str()),
            (0, Some("generic"), Some("named"))
        );
    }

    #[test]
    fn a_checks_dir_replaces_the_built_in_specs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("platforms")).expect("mkdir");
        let spec = "name = \"site-b200\"\ndescription = \"site\"\n[match]\narchitecture = \"x86_64\"\n\
                    [[devices]]\nrole = \"gpu\"\nids = [\"10de:2901\"]\ncount = 9\n[gpu_health]\n";
        std::fs::write(dir.path().join("platforms/site.toml"), spec).expect("write");
        let a = ValidateArgs { checks_dir: Some(dir.path().to_path_buf()), ..args() };
        let (code, v) = run_json(&testnode::hgx_b200(), &a);
        assert_eq!((code, v["platform"].as_str()), (exit::CHECK_FAILED, Some("site-b200")));
        // A malformed file in the directory is bad input, not a silent skip.
        std::fs::write(dir.path().join("platforms/bad.toml"), "name = 3\n").expect("write");
        assert_eq!(run_json(&testnode::hgx_b200(), &a).0, exit::BAD_INPUT);
    }

    #[test]
    fn a_node_file_is_read_and_a_malformed_one_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("node.json");
        std::fs::write(&good, serde_json::to_string(&testnode::vm()).expect("json")).expect("write");
        assert_eq!(read_node(&good).expect("reads").hostname, "vm-1");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"schema_version\": 1,\n \"hostname\": 7}").expect("write");
        let err = crate::error::chain(&read_node(&bad).expect_err("malformed"));
        assert!(err.contains("bad.json:2:") && err.contains("field `hostname`"), "{err}");
        let newer = dir.path().join("newer.json");
        let mut doc = serde_json::to_value(testnode::vm()).expect("json");
        doc["schema_version"] = serde_json::json!(999);
        std::fs::write(&newer, doc.to_string()).expect("write");
        let err = crate::error::chain(&read_node(&newer).expect_err("newer schema"));
        assert!(err.contains("newer.json") && err.contains("node schema_version 999"), "{err}");
    }
}
