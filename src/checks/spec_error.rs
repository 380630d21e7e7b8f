//! Errors in spec files. Locating an error's line and field is shared with
//! other TOML inputs and lives in `crate::toml_error`.

use std::fmt;
use std::path::PathBuf;

pub use crate::toml_error::{field_at, line_column, quoted_element, span_of, FieldPath, PathSeg};

/// One problem with a spec that parsed as TOML but says something impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// 1-based; 0 when the field could not be located in the text.
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list spec directory {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{}:{}: not UTF-8 text (byte {} is not part of a UTF-8 character)", file.display(), at.line, at.column, at.byte)]
    NotUtf8 { file: PathBuf, at: crate::input::NotUtf8 },
    #[error("{}:{line}:{column}: field `{field}`: {message}", file.display())]
    Parse { file: PathBuf, line: usize, column: usize, field: String, message: String },
    #[error("{}:{}{}", file.display(), issues.first().map(ToString::to_string).unwrap_or_default(), more(issues))]
    Invalid { file: PathBuf, issues: Vec<SpecIssue> },
    #[error("platform name {name:?} is used by both {} and {}", first.display(), second.display())]
    DuplicateName { name: String, first: PathBuf, second: PathBuf },
    #[error("{} and {} both say `fallback = true`; a spec set has at most one fallback", first.display(), second.display())]
    TwoFallbacks { first: PathBuf, second: PathBuf },
    #[error("no platform specs in {}/platforms", dir.display())]
    EmptyDir { dir: PathBuf },
}

fn more(issues: &[SpecIssue]) -> String {
    match issues.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}
