//! `Probe`: reads through a `SysTree` and turns every failure into a `ReadProblem`.
//!
//! Inspection never aborts: a file that is absent is simply `None` (many
//! attributes exist only on some devices), and a file that exists but cannot
//! be read or parsed is `None` plus a problem naming the path and component.

use std::io;
use std::path::{Path, PathBuf};

use super::parse::ParseError;
use super::root::SysTree;
use crate::model::ReadProblem;

pub struct Probe<'a> {
    tree: &'a dyn SysTree,
    problems: Vec<ReadProblem>,
}

/// Which surface a relative path belongs to, for `ReadProblem::source`.
fn source_of(rel: &Path) -> &'static str {
    match rel.components().next().and_then(|c| c.as_os_str().to_str()) {
        Some("proc") => "procfs",
        Some("sys") => "sysfs",
        _ => "capture",
    }
}

impl<'a> Probe<'a> {
    pub fn new(tree: &'a dyn SysTree) -> Self {
        Probe { tree, problems: Vec::new() }
    }

    pub fn tree(&self) -> &'a dyn SysTree {
        self.tree
    }

    /// Everything that went wrong so far, in the order it happened.
    pub fn into_problems(self) -> Vec<ReadProblem> {
        self.problems
    }

    /// Records a problem against a path and, when known, a component.
    pub fn problem(&mut self, rel: &Path, component: Option<&str>, message: impl Into<String>) {
        let mut problem = ReadProblem::new(source_of(rel), rel.to_string_lossy(), message);
        if let Some(c) = component {
            problem = problem.on(c);
        }
        self.problems.push(problem);
    }

    /// Reads a file's raw text. Absent is `None` without a problem; any other
    /// failure is `None` with one.
    pub fn raw(&mut self, rel: &Path, component: Option<&str>) -> Option<String> {
        self.raw_tolerating(rel, component, |_| false)
    }

    /// Like `raw`, but errors for which `expected` answers true are `None`
    /// without a problem (an unprivileged read of a DMI serial, the `speed`
    /// of a link that is down).
    pub fn raw_tolerating(
        &mut self,
        rel: &Path,
        component: Option<&str>,
        expected: impl Fn(&io::Error) -> bool,
    ) -> Option<String> {
        match self.tree.read(rel) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound || expected(&e) => None,
            Err(e) => {
                self.problem(rel, component, format!("cannot read: {e}"));
                None
            }
        }
    }

    /// Reads a file's bytes; absent, or an error `expected` accepts, is `None` without a
    /// problem, any other failure `None` with one.
    pub fn bytes_tolerating(
        &mut self,
        rel: &Path,
        component: Option<&str>,
        expected: impl Fn(&io::Error) -> bool,
    ) -> Option<Vec<u8>> {
        match self.tree.read_bytes(rel) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound || expected(&e) => None,
            Err(e) => {
                self.problem(rel, component, format!("cannot read: {e}"));
                None
            }
        }
    }

    /// Reads a file as a trimmed string; an empty value is `None`.
    pub fn string(&mut self, rel: &Path, component: Option<&str>) -> Option<String> {
        nonempty(self.raw(rel, component))
    }

    /// `string`, tolerating the errors `expected` accepts.
    pub fn string_tolerating(
        &mut self,
        rel: &Path,
        component: Option<&str>,
        expected: impl Fn(&io::Error) -> bool,
    ) -> Option<String> {
        nonempty(self.raw_tolerating(rel, component, expected))
    }

    /// Reads and parses a file; a value that does not parse is a problem that
    /// quotes it.
    pub fn parsed<T>(
        &mut self,
        rel: &Path,
        component: Option<&str>,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        let text = self.raw(rel, component)?;
        self.parse_text(rel, component, &text, parse)
    }

    /// Parses text already read from `rel`, recording a problem on failure.
    pub fn parse_text<T>(
        &mut self,
        rel: &Path,
        component: Option<&str>,
        text: &str,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        match parse(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(rel, component, e.to_string());
                None
            }
        }
    }

    /// Lists a directory; absent is empty without a problem.
    pub fn list(&mut self, rel: &Path, component: Option<&str>) -> Vec<String> {
        match self.tree.list(rel) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                self.problem(rel, component, format!("cannot list: {e}"));
                Vec::new()
            }
        }
    }

    /// The last component of a symlink's target (`driver` -> `nvidia`).
    pub fn link_name(&mut self, rel: &Path, component: Option<&str>) -> Option<String> {
        match self.tree.read_link(rel) {
            Ok(target) => target.file_name().map(|n| n.to_string_lossy().into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.problem(rel, component, format!("cannot read link: {e}"));
                None
            }
        }
    }

    /// Resolves a path's symlinks; absent is `None` without a problem.
    pub fn resolve(&mut self, rel: &Path, component: Option<&str>) -> Option<PathBuf> {
        match self.tree.resolve(rel) {
            Ok(path) => Some(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.problem(rel, component, format!("cannot resolve: {e}"));
                None
            }
        }
    }

    pub fn exists(&self, rel: &Path) -> bool {
        self.tree.exists(rel)
    }
}

fn nonempty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Whether an error is "permission denied" (DMI serials for non-root users).
pub fn is_permission_denied(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

/// Whether an error is EINVAL, which network drivers return for the `speed`
/// and `duplex` of a link that is down.
pub fn is_invalid_argument(e: &io::Error) -> bool {
    const EINVAL: i32 = 22;
    e.raw_os_error() == Some(EINVAL)
}
