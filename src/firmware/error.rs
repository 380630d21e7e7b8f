//! `RecipeError`: a firmware recipe that cannot be read, parsed, checked or found. Each names
//! the file, and where it can the line, column and field.

use std::path::PathBuf;

use crate::checks::spec_error::SpecIssue;

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read firmware recipe {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list firmware recipe directory {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: field `{field}`: {message}", file.display())]
    Parse { file: PathBuf, line: usize, column: usize, field: String, message: String },
    #[error("{}:{}{}", file.display(), issues.first().map(ToString::to_string).unwrap_or_default(), more(issues))]
    Invalid { file: PathBuf, issues: Vec<SpecIssue> },
    #[error("recipe name {name:?} is used by both {} and {}", first.display(), second.display())]
    DuplicateName { name: String, first: PathBuf, second: PathBuf },
    #[error("no firmware recipes in {}/firmware", dir.display())]
    EmptyDir { dir: PathBuf },
    #[error("no firmware recipe named {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    #[error("no firmware recipe for platform {platform:?} and tray {tray}; choose one with --recipe (known: {known})")]
    NoneFits { platform: String, tray: &'static str, known: String },
    #[error("{count} firmware recipes fit platform {platform:?} and tray {tray} ({names}); choose one with --recipe")]
    Ambiguous { platform: String, tray: &'static str, count: usize, names: String },
}

fn more(issues: &[SpecIssue]) -> String {
    match issues.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}
