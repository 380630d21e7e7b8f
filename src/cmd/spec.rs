//! `kiln spec`: list the known platform specs, check a spec file, derive a
//! spec from a golden node.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::checks::derive;
use crate::checks::spec_load::{self, parse_spec, LoadedSpec};
use crate::checks::SpecError;
use crate::cli::SpecCommand;
use crate::exit;
use crate::model::Node;
use crate::report::columns::{pad, width};

pub fn run(command: &SpecCommand) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        SpecCommand::List { checks_dir } => list(checks_dir.as_deref(), &mut out),
        SpecCommand::Check { file } => check(file, &mut out),
        SpecCommand::FromCapture { dir, name, out: dest } => match crate::cmd::node::inspect(Some(dir)) {
            Ok(node) => from_node(&node, dir, name, dest.as_ref(), &mut out),
            Err(code) => Ok(code),
        },
    }
}

fn bad_input(e: &SpecError) -> i32 {
    eprintln!("kiln: error: {e}");
    if let SpecError::Invalid { file, issues } = e {
        for issue in issues.iter().skip(1) {
            eprintln!("kiln: error: {}:{issue}", file.display());
        }
    }
    exit::BAD_INPUT
}

/// `kiln spec list`: one line per spec: name, origin, description.
pub fn list(checks_dir: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<i32> {
    let specs = match spec_load::load_set(checks_dir) {
        Ok(s) => s,
        Err(e) => return Ok(bad_input(&e)),
    };
    out.write_all(list_text(&specs).as_bytes()).context("cannot write the list")?;
    Ok(exit::OK)
}

fn list_text(specs: &[LoadedSpec]) -> String {
    let origins: Vec<String> = specs.iter().map(|s| s.origin.display().to_string()).collect();
    let name_w = width(specs.iter().map(|s| s.platform.name.as_str()), 0);
    let origin_w = width(origins.iter().map(String::as_str), 0);
    specs
        .iter()
        .map(|s| {
            format!(
                "{}  {}  {}\n",
                pad(&s.platform.name, name_w),
                pad(&s.origin.display().to_string(), origin_w),
                s.platform.description
            )
        })
        .collect()
}

/// `kiln spec check FILE`: exit 0 when the spec is sound, else every problem
/// as `file:line:column: field ...` on stderr and `exit::BAD_INPUT`.
pub fn check(file: &Path, out: &mut dyn Write) -> anyhow::Result<i32> {
    match spec_load::load_file(file) {
        Ok(spec) => {
            writeln!(out, "{}: ok: platform {}", file.display(), spec.platform.name).context("cannot write")?;
            Ok(exit::OK)
        }
        Err(e) => Ok(bad_input(&e)),
    }
}

/// `kiln spec from-capture` once the capture is inspected: derive the spec,
/// check that it parses back, and write it to `dest` or `out`.
pub fn from_node(
    node: &Node,
    capture: &Path,
    name: &str,
    dest: Option<&PathBuf>,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let spec = derive::spec_from_node(node, name);
    let text = derive::render(&spec, node, &capture.display().to_string()).context("cannot render the spec")?;
    // The derived spec must load like any other; a bad --name shows up here.
    if let Err(e) = parse_spec(&text, Path::new(name)) {
        return Ok(bad_input(&e));
    }
    match dest {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?,
        None => out.write_all(text.as_bytes()).context("cannot write the spec")?,
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testnode;

    #[test]
    fn list_shows_every_built_in_spec() {
        let mut out = Vec::new();
        assert_eq!(list(None, &mut out).expect("runs"), exit::OK);
        let text = String::from_utf8(out).expect("utf8");
        let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["gb200-nvl72-tray", "generic", "h100-sxm", "hgx-b200"]);
        assert!(text.contains("built-in/hgx-b200.toml"));
    }

    #[test]
    fn check_accepts_good_and_rejects_bad_specs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "name = \"x\"\ndescription = \"y\"\n").expect("write");
        let mut out = Vec::new();
        assert_eq!(check(&good, &mut out).expect("runs"), exit::OK);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "name = \"x\"\ndescription = \"y\"\n[aer]\nfatal_max = -1\n").expect("write");
        assert_eq!(check(&bad, &mut out).expect("runs"), exit::BAD_INPUT);
        assert_eq!(check(&dir.path().join("none.toml"), &mut out).expect("runs"), exit::BAD_INPUT);
    }

    #[test]
    fn from_node_writes_a_spec_that_checks_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("golden.toml");
        let node = testnode::hgx_h100();
        let mut out = Vec::new();
        let code = from_node(&node, Path::new("caps/h100"), "golden-h100", Some(&dest), &mut out).expect("runs");
        assert_eq!(code, exit::OK);
        assert_eq!(check(&dest, &mut out).expect("runs"), exit::OK);
        let code = from_node(&node, Path::new("caps/h100"), "Bad Name", None, &mut out).expect("runs");
        assert_eq!(code, exit::BAD_INPUT);
    }
}
