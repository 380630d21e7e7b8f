//! `kiln spec`: list the known platform specs, check a spec file, derive a
//! spec from a golden node.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::checks::derive;
use crate::checks::spec_load::{self, parse_spec, LoadedSpec};
use crate::cli::SpecCommand;
use crate::cmd::{CmdResult, Outcome};
use crate::model::Node;
use crate::report::columns::{pad, width};

pub fn run(command: &SpecCommand) -> CmdResult {
    let mut out = crate::terminal::stdout();
    match command {
        SpecCommand::List { checks_dir } => list(checks_dir.as_deref(), &mut out),
        SpecCommand::Check { file } => check(file, &mut out),
        SpecCommand::FromCapture { dir, name, out: dest } => {
            let node = crate::cmd::node::inspect(Some(dir))?;
            from_node(&node, dir, name, dest.as_ref(), &mut out)
        }
    }
}

/// `kiln spec list`: one line per spec: name, origin, description.
pub fn list(checks_dir: Option<&Path>, out: &mut dyn Write) -> CmdResult {
    let specs = spec_load::load_set(checks_dir)?;
    out.write_all(list_text(&specs).as_bytes()).context("cannot write the list")?;
    Ok(Outcome::ok())
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
/// as `file:line:column: field ...` (`CmdError::Spec`, exit 4).
pub fn check(file: &Path, out: &mut dyn Write) -> CmdResult {
    let spec = spec_load::load_file(file)?;
    writeln!(out, "{}: ok: platform {}", file.display(), spec.platform.name).context("cannot write")?;
    Ok(Outcome::ok())
}

/// `kiln spec from-capture` once the capture is inspected: derive the spec,
/// check that it parses back, and write it to `dest` or `out`.
pub fn from_node(node: &Node, capture: &Path, name: &str, dest: Option<&PathBuf>, out: &mut dyn Write) -> CmdResult {
    let spec = derive::spec_from_node(node, name);
    let text = derive::render(&spec, node, &capture.display().to_string()).context("cannot render the spec")?;
    // The derived spec must load like any other; a bad --name shows up here.
    parse_spec(&text, Path::new(name))?;
    match dest {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?,
        None => out.write_all(text.as_bytes()).context("cannot write the spec")?,
    }
    Ok(Outcome::ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testnode;
    use crate::exit;

    fn code(r: CmdResult) -> i32 {
        Outcome::from(r).code()
    }

    #[test]
    fn list_shows_every_built_in_spec() {
        let mut out = Vec::new();
        assert_eq!(code(list(None, &mut out)), exit::OK);
        let text = String::from_utf8(out).expect("utf8");
        let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["gb200-nvl72-tray", "generic", "h100-sxm", "hgx-b200"]);
        assert!(text.contains("built-in/hgx-b200.toml"));
    }

    #[test]
    fn check_accepts_good_and_rejects_bad_specs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "name = \"x\"\ndescription = \"y\"\n[aer]\n").expect("write");
        let mut out = Vec::new();
        assert_eq!(code(check(&good, &mut out)), exit::OK);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "name = \"x\"\ndescription = \"y\"\n[aer]\nfatal_max = -1\n").expect("write");
        assert_eq!(code(check(&bad, &mut out)), exit::BAD_INPUT);
        assert_eq!(code(check(&dir.path().join("none.toml"), &mut out)), exit::BAD_INPUT);
    }

    #[test]
    fn from_node_writes_a_spec_that_checks_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("golden.toml");
        let node = testnode::hgx_h100();
        let mut out = Vec::new();
        let written = code(from_node(&node, Path::new("caps/h100"), "golden-h100", Some(&dest), &mut out));
        assert_eq!(written, exit::OK);
        assert_eq!(code(check(&dest, &mut out)), exit::OK);
        let bad_name = code(from_node(&node, Path::new("caps/h100"), "Bad Name", None, &mut out));
        assert_eq!(bad_name, exit::BAD_INPUT);
    }
}
