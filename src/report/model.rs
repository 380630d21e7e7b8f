//! The report document: what `kiln report` shows, as data (its JSON form is versioned).

use serde::{Deserialize, Serialize};

use super::burnin_section::BurninSection;
use super::collective_section::CollectiveSection;
use crate::checks::Finding;
use crate::inventory::{ComponentRecord, RunChanges, RunId, RunRow};
use crate::lifecycle::LifecycleState;

/// Version of the report JSON; bumped on any change a consumer could notice.
/// Documented in docs/json-schema.md.
pub const REPORT_SCHEMA_VERSION: u32 = 1;
/// The `kind` field of the report JSON.
pub const REPORT_KIND: &str = "kiln.report";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub kind: String,
    pub generated_at: String,
    /// The time the report shows the inventory as of (`kiln report --at`); absent for now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    pub nodes: Vec<NodeReport>,
}

/// One node: identity, state, its newest run, that run's parts, the latest
/// findings, and what changed since the run before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub hostname: String,
    pub rack: Option<String>,
    pub platform: Option<String>,
    /// DMI product serial.
    pub serial: Option<String>,
    pub state: LifecycleState,
    pub first_seen: String,
    pub last_seen: String,
    /// `None` for a node enrolled but never run.
    pub last_run: Option<RunRow>,
    /// The parts recorded with `last_run`.
    pub components: Vec<ComponentRecord>,
    pub findings: FindingsReport,
    /// `None` when the node has fewer than two runs.
    pub changes: Option<RunChanges>,
    /// The node's latest burn-in; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burnin: Option<BurninSection>,
    /// The node's newest rank in a rack collective; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<CollectiveSection>,
}

/// Findings of the newest run of each kind that judged the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingsReport {
    /// The runs the findings come from, newest first.
    pub runs: Vec<RunRow>,
    /// Every finding that is not a pass: fail, error, skipped.
    pub not_passing: Vec<StoredFinding>,
    /// How many findings passed.
    pub passed: usize,
}

/// A finding with the run it was recorded in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub run_id: RunId,
    pub run_kind: String,
    #[serde(flatten)]
    pub finding: Finding,
}
