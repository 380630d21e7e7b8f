//! `RunKind`: which bring-up step a recorded run performed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The step a run performed. Stored in the inventory as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Read the node (PCI tree, host parts, GPUs); judges nothing.
    Inspect,
    /// Inspect and judge the node against its platform spec.
    Validate,
    /// Stress the node and judge the results.
    Burnin,
}

impl RunKind {
    pub const ALL: [RunKind; 3] = [RunKind::Inspect, RunKind::Validate, RunKind::Burnin];

    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Inspect => "inspect",
            RunKind::Validate => "validate",
            RunKind::Burnin => "burnin",
        }
    }
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run kind {0:?} (expected inspect, validate or burnin)")]
pub struct UnknownRunKind(pub String);

impl FromStr for RunKind {
    type Err = UnknownRunKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownRunKind(s.to_string()))
    }
}
