//! A rack's firmware compliance: every node's BMC read in parallel (bounded), joined with the
//! in-band versions of its newest recorded inspection, judged against its recipe, one
//! `NodeCheck` per node for the table, the JSON document (`kiln.rack-firmware`) and the
//! inventory.
//!
//! What is read from outside (the BMCs) is read here; the judging is `firmware::judge`, the
//! recording is the caller's (`Inventory::record_firmware_check`), so the same check serves
//! `kiln rack firmware check` and the re-check after an update.

use serde::Serialize;

use super::compliance::{judge, Compliance, Entry, Observed, Status};
use super::recipe_load::LoadedRecipe;
use crate::bmc::{BmcTarget, BmcVersions, InventoryRead, RedfishBmc, RetryPolicy};
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::exit;
use crate::inventory::ComponentRecord;
use crate::model::Node;
use crate::report::columns::{pad, width};

/// `schema_version` of `kiln.rack-firmware`.
pub const RACK_FIRMWARE_SCHEMA_VERSION: u32 = 1;
pub const RACK_FIRMWARE_KIND: &str = "kiln.rack-firmware";

/// Where a node stands after its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Every entry up to date (or advisory, or not in the recipe).
    Compliant,
    /// At least one pinned component is older, newer, different or missing.
    NonCompliant,
    /// Nothing failed, but something could not be read.
    Unreadable,
    /// The BMC could not be reached or refused kiln.
    Unreachable,
    /// Not checked: no BMC in the manifest, or no recipe for it.
    NotChecked,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Compliant => "compliant",
            NodeStatus::NonCompliant => "non-compliant",
            NodeStatus::Unreadable => "unreadable",
            NodeStatus::Unreachable => "unreachable",
            NodeStatus::NotChecked => "not-checked",
        }
    }
}

/// What one node needs for its check, gathered before any BMC is touched.
#[derive(Debug)]
pub struct NodeInput<'a> {
    pub node: String,
    /// `U12`, `tray 7`.
    pub position: Option<String>,
    /// The BMC target, or why there is none.
    pub target: Result<BmcTarget, String>,
    /// The recipe, or why none fits.
    pub recipe: Result<&'a LoadedRecipe, String>,
    /// The newest recorded inspection (run id and model), or why there is none.
    pub inspected: Result<(i64, Node), String>,
}

/// One node's check.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCheck {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// The BMC as kiln names it; absent when the node has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// The platform the recipe is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Where in-band versions came from: `run 12`, or why none were used.
    pub inband: String,
    pub status: NodeStatus,
    /// Why the node was not checked, or could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// One per component instance and per inventory member (`firmware::Entry`).
    pub entries: Vec<Entry>,
    pub verdict: Verdict,
    /// The inventory run it was recorded as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// Why it could not be recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
    #[serde(skip)]
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub compliance: Option<Compliance>,
    #[serde(skip)]
    pub inspected: Option<Node>,
}

impl NodeCheck {
    /// The versions read, as the inventory keeps them (kind `firmware`).
    pub fn components(&self) -> Vec<ComponentRecord> {
        self.entries.iter().filter(|e| e.reported.is_some()).map(entry_record).collect()
    }
}

fn entry_record(e: &Entry) -> ComponentRecord {
    let mut extra = serde_json::Map::new();
    extra.insert("status".into(), e.status.as_str().into());
    extra.insert("source".into(), e.source.into());
    if let Some(c) = &e.component {
        extra.insert("component".into(), c.clone().into());
    }
    ComponentRecord {
        kind: "firmware".into(),
        slot: Some(e.place.clone()),
        address: None,
        vendor: None,
        model: Some(e.name.clone()),
        serial: e.part.serial.clone(),
        firmware: e.reported.clone(),
        extra,
    }
}

/// The rack's check, as printed with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RackFirmware {
    pub schema_version: u32,
    pub kind: &'static str,
    pub rack: String,
    /// The recipe named with `--recipe`; absent when each node's was chosen by its platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    pub exit_code: i32,
    pub nodes: Vec<NodeCheck>,
}

impl RackFirmware {
    pub fn new(rack: &str, recipe: Option<&str>, nodes: Vec<NodeCheck>) -> Self {
        let exit_code = exit_code(&nodes);
        RackFirmware {
            schema_version: RACK_FIRMWARE_SCHEMA_VERSION,
            kind: RACK_FIRMWARE_KIND,
            rack: rack.to_string(),
            recipe: recipe.map(str::to_string),
            exit_code,
            nodes,
        }
    }
}

/// In order: any node non-compliant: 1; any BMC unreachable: 6; any check that could not be
/// recorded: 5; anything unreadable or not checked: 3; else 0.
pub fn exit_code(nodes: &[NodeCheck]) -> i32 {
    let any = |s: NodeStatus| nodes.iter().any(|n| n.status == s);
    if any(NodeStatus::NonCompliant) {
        exit::CHECK_FAILED
    } else if any(NodeStatus::Unreachable) {
        exit::PEER
    } else if nodes.iter().any(|n| n.record_error.is_some()) {
        exit::DATABASE
    } else if any(NodeStatus::Unreadable) || any(NodeStatus::NotChecked) {
        exit::CHECK_ERROR
    } else {
        exit::OK
    }
}

/// Check one node: read its BMC, judge what it and the recorded inspection report.
pub fn check_node(input: &NodeInput<'_>, policy: &RetryPolicy) -> NodeCheck {
    let mut check = NodeCheck {
        node: input.node.clone(),
        position: input.position.clone(),
        bmc: None,
        recipe: None,
        platform: None,
        inband: match &input.inspected {
            Ok((run, _)) => format!("run {run}"),
            Err(why) => why.clone(),
        },
        status: NodeStatus::NotChecked,
        problem: None,
        entries: Vec::new(),
        verdict: Verdict::Error,
        run_id: None,
        record_error: None,
        findings: Vec::new(),
        compliance: None,
        inspected: input.inspected.as_ref().ok().map(|(_, n)| n.clone()),
    };
    let recipe = match input.recipe {
        Ok(r) => r,
        Err(ref why) => return not_checked(check, "firmware.recipe", why),
    };
    check.recipe = Some(recipe.recipe.name.clone());
    check.platform = recipe.recipe.platform.clone();
    let target = match &input.target {
        Ok(t) => t,
        Err(why) => return not_checked(check, "firmware.bmc", why),
    };
    check.bmc = Some(target.label());
    let versions = match RedfishBmc::with_policy(target, policy.clone()) {
        Ok(bmc) => Ok(bmc.firmware_versions()),
        Err(e) => Err(crate::error::chain(&e)),
    };
    let unreachable = match &versions {
        Err(why) => Some(why.clone()),
        Ok(v) => unreachable(v),
    };
    let node = input.inspected.as_ref().map(|(_, n)| n).map_err(String::as_str);
    let compliance = match &versions {
        Ok(v) => judge(&recipe.recipe, Observed { bmc: Ok(v), node }),
        Err(why) => judge(&recipe.recipe, Observed { bmc: Err(why), node }),
    };
    check.findings = compliance.findings();
    check.verdict = Verdict::of(&check.findings);
    check.entries = compliance.entries.clone();
    check.status = if !compliance.is_compliant()
        && compliance.entries.iter().any(|e| !e.is_compliant() && e.status != Status::Unreadable)
    {
        NodeStatus::NonCompliant
    } else if let Some(why) = unreachable {
        check.problem = Some(why);
        NodeStatus::Unreachable
    } else if compliance.is_compliant() {
        NodeStatus::Compliant
    } else {
        NodeStatus::Unreadable
    };
    check.compliance = Some(compliance);
    check
}

/// The BMC answered nothing at all: no inventory, no system.
fn unreachable(v: &BmcVersions) -> Option<String> {
    match (&v.inventory, &v.bios_version) {
        (InventoryRead::Failed { why }, Err(_)) => Some(why.clone()),
        _ => None,
    }
}

fn not_checked(mut check: NodeCheck, id: &str, why: &str) -> NodeCheck {
    check.problem = Some(why.to_string());
    check.findings = vec![Finding::new(
        id,
        Outcome::Error,
        Severity::Warning,
        Component { kind: "firmware".into(), ..Component::node() },
        format!("firmware not checked: {why}"),
    )];
    check.verdict = Verdict::Error;
    check.status = NodeStatus::NotChecked;
    check
}

/// The table: one line per node and component instance, then one summary line per node.
pub fn render_table(report: &RackFirmware) -> String {
    let header = ["NODE", "POSITION", "COMPONENT", "PLACE", "REPORTED", "PINNED", "STATUS"];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for n in &report.nodes {
        for e in &n.entries {
            let mut status = e.status.as_str().to_string();
            if e.advisory && !e.status.is_compliant() {
                status.push_str(" (advisory)");
            }
            rows.push([
                n.node.clone(),
                n.position.clone().unwrap_or_else(|| "-".into()),
                e.component.clone().unwrap_or_else(|| "-".into()),
                e.place.clone(),
                e.reported.clone().unwrap_or_else(|| "-".into()),
                e.pinned.clone().unwrap_or_else(|| "-".into()),
                status,
            ]);
        }
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|i| width(rows.iter().map(|r| r[i].as_str()), header[i].len())).collect();
    let mut out = String::new();
    let line = |cells: &[&str], out: &mut String| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&header, &mut out);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>(), &mut out);
    }
    out.push('\n');
    for n in &report.nodes {
        let mut summary = format!("{}: {}", n.node, n.status.as_str());
        if let Some(recipe) = &n.recipe {
            summary.push_str(&format!(" (recipe {recipe}"));
            let behind: Vec<&str> = n.compliance.as_ref().map(|c| c.non_compliant_components()).unwrap_or_default();
            if !behind.is_empty() {
                summary.push_str(&format!("; out of compliance: {}", behind.join(", ")));
            }
            summary.push_str(&format!("; in-band: {})", n.inband));
        }
        if let Some(p) = &n.problem {
            summary.push_str(&format!(": {p}"));
        }
        if let Some(run) = n.run_id {
            summary.push_str(&format!(" [run {run}]"));
        }
        if let Some(e) = &n.record_error {
            summary.push_str(&format!(" [not recorded: {e}]"));
        }
        out.push_str(&summary);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: NodeStatus, record_error: bool) -> NodeCheck {
        NodeCheck {
            node: "n".into(),
            position: None,
            bmc: None,
            recipe: None,
            platform: None,
            inband: String::new(),
            status,
            problem: None,
            entries: Vec::new(),
            verdict: Verdict::Pass,
            run_id: None,
            record_error: record_error.then(|| "disk full".to_string()),
            findings: Vec::new(),
            compliance: None,
            inspected: None,
        }
    }

    #[test]
    fn out_of_date_wins_over_an_unreachable_bmc_which_wins_over_the_rest() {
        use NodeStatus::*;
        let code =
            |nodes: &[(NodeStatus, bool)]| exit_code(&nodes.iter().map(|(s, e)| node(*s, *e)).collect::<Vec<_>>());
        assert_eq!(code(&[(Compliant, false)]), exit::OK);
        assert_eq!(code(&[(Compliant, false), (NonCompliant, false), (Unreachable, false)]), exit::CHECK_FAILED);
        assert_eq!(code(&[(Unreachable, false), (Unreadable, false), (Compliant, true)]), exit::PEER);
        assert_eq!(code(&[(Unreadable, false), (Compliant, true)]), exit::DATABASE);
        assert_eq!(code(&[(Unreadable, false), (Compliant, false)]), exit::CHECK_ERROR);
        assert_eq!(code(&[(NotChecked, false)]), exit::CHECK_ERROR);
        assert_eq!(code(&[]), exit::OK);
    }
}
