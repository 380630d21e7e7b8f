//! Choosing the spec a node is judged against, the one way every judging command does it:
//! `--spec FILE`, else `--platform NAME`, else detection, from the built-in specs or
//! `--checks-dir DIR`.

use std::fmt;
use std::path::Path;

use super::detect::{self, DetectError, Selection};
use super::spec_load::{self, LoadedSpec};
use super::SpecError;
use crate::model::Node;

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecChoice<'a> {
    /// `--spec FILE`: this file, nothing else.
    pub spec_file: Option<&'a Path>,
    /// `--platform NAME`.
    pub platform: Option<&'a str>,
    /// `--checks-dir DIR`: `DIR/platforms/*.toml` instead of the built-in specs.
    pub checks_dir: Option<&'a Path>,
}

/// Why no spec could be chosen: all are bad input (exit 4).
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Detect(#[from] DetectError),
}

/// The chosen spec, how it was chosen, and the other specs whose rules also
/// held (a tie the spec authors should resolve).
#[derive(Debug, Clone)]
pub struct Selected {
    pub spec: LoadedSpec,
    pub selection: Selection,
    pub also_matched: Vec<String>,
}

impl fmt::Display for Selected {
    /// `hgx-b200 (detected, built-in/hgx-b200.toml)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.spec.platform.name, self.selection.as_str(), self.spec.origin.display())
    }
}

/// The spec to judge `node` against.
pub fn select(node: &Node, choice: &SpecChoice<'_>) -> Result<Selected, SelectError> {
    if let Some(file) = choice.spec_file {
        return Ok(Selected {
            spec: spec_load::load_file(file)?,
            selection: Selection::File,
            also_matched: Vec::new(),
        });
    }
    let specs = spec_load::load_set(choice.checks_dir)?;
    if let Some(name) = choice.platform {
        let spec = detect::by_name(&specs, name)?.clone();
        return Ok(Selected { spec, selection: Selection::Named, also_matched: Vec::new() });
    }
    let found = detect::detect(&specs, node)?;
    Ok(Selected { spec: found.spec.clone(), selection: found.selection, also_matched: found.also_matched })
}
