//! The rack report document: every node of a rack manifest with its inventory record, burn-in,
//! rack-wide consistency findings, figure outliers and the RMA parts list. Its JSON is versioned.

use serde::Serialize;

use super::burnin_view::BurninView;
use super::NodeReport;
use crate::checks::Finding;
use crate::inventory::LifecycleEvent;
use crate::rack::Rack;

/// Version of the rack report JSON (docs/reports.md).
pub const RACK_REPORT_SCHEMA_VERSION: u32 = 1;
pub const RACK_REPORT_KIND: &str = "kiln.rack_report";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RackReport {
    pub schema_version: u32,
    pub kind: String,
    pub generated_at: String,
    /// `None` when the report covers every node of the inventory rather than a manifest.
    pub rack: Option<Rack>,
    /// In manifest order (or by hostname without a manifest).
    pub nodes: Vec<RackNodeReport>,
    /// Rack-wide checks over the nodes' latest recorded models: firmware and
    /// counts that differ within a platform, NVLink domain of NVL72 GPUs.
    pub consistency: Vec<Finding>,
    /// Nodes whose burn-in figures stray from the rack median.
    pub outliers: Vec<Outlier>,
    /// Failed parts to send back.
    pub parts: Vec<RmaPart>,
    /// Component x tray from each node's newest firmware check; absent when none was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<super::firmware_matrix::FirmwareMatrix>,
}

/// One node: where it sits and what the inventory holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RackNodeReport {
    pub name: String,
    pub rack: Option<String>,
    pub slot: Option<String>,
    pub tray: Option<u32>,
    /// `None` when the inventory has never seen the node.
    pub record: Option<NodeReport>,
    /// The newest lifecycle events, newest last.
    pub events: Vec<LifecycleEvent>,
    pub burnin: BurninView,
    /// The command that lights the tray's locate LED (`kiln bmc locate on --rack FILE --node N`),
    /// when the manifest gives the node a Redfish BMC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locate: Option<String>,
}

impl RackNodeReport {
    /// `U12`, `tray 7`, or `-`.
    pub fn position(&self) -> String {
        match (&self.slot, self.tray) {
            (Some(s), _) => s.clone(),
            (None, Some(t)) => format!("tray {t}"),
            (None, None) => "-".into(),
        }
    }

    /// Failed, or its latest runs have a failing finding: a technician has to go to it.
    pub fn is_failing(&self) -> bool {
        self.record.as_ref().is_some_and(|r| {
            r.state.name() == "failed"
                || r.findings.not_passing.iter().any(|s| s.finding.outcome == crate::checks::Outcome::Fail)
        })
    }

    /// The lifecycle state's name, or `unknown` for a node not in the inventory.
    pub fn state_name(&self) -> &'static str {
        self.record.as_ref().map_or("unknown", |r| r.state.name())
    }
}

/// A node's figure against the rack's median of the same figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlier {
    pub node: String,
    pub figure: String,
    pub unit: String,
    /// The node's worst value of the figure (over its GPUs).
    pub value: f64,
    pub median: f64,
    /// Signed: -12.5 means 12.5 % worse than the median for a figure where
    /// higher is better.
    pub deviation_pct: f64,
}

/// A failed part with what proves it failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RmaPart {
    pub rack: Option<String>,
    pub node: String,
    /// Where the node sits in the rack.
    pub node_position: String,
    /// `gpu`, `nic`, `nvme`, ...
    pub kind: String,
    pub slot: Option<String>,
    pub address: Option<String>,
    pub gpu_index: Option<u32>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    /// The run the evidence comes from.
    pub run_id: i64,
    /// The failing findings: `pcie.width: link trained at x8 (expected x16, actual x8)`.
    pub evidence: Vec<String>,
    pub action: Option<String>,
}
