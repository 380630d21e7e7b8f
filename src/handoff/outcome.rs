//! What hand-off did to each node: the actions it took or planned, what the cluster said, and
//! what it recorded in the inventory. Serialized as the `--json` output (docs/handoff.md).

use serde::{Deserialize, Serialize};

use super::Decision;
use crate::exit;
use crate::lifecycle::LifecycleState;

/// The version of the hand-off JSON.
pub const HANDOFF_SCHEMA_VERSION: u32 = 1;

/// How one cluster action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ActionResult {
    /// The cluster made the change.
    Done,
    /// The cluster already was as wanted; nothing sent, or the cluster said so.
    AlreadyDone { why: String },
    /// `--dry-run`: the change that would have been made.
    WouldDo,
    /// kiln declined, to leave what someone else did alone.
    Refused { why: String },
    /// The cluster could not be asked or refused the change.
    Failed { error: String },
}

/// One change to the cluster, as a person would type it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `scontrol update NodeName=node01 State=RESUME`, `label kiln.dev/health=pass`.
    pub what: String,
    #[serde(flatten)]
    pub result: ActionResult,
}

impl Action {
    pub fn new(what: impl Into<String>, result: ActionResult) -> Self {
        Action { what: what.into(), result }
    }
}

/// Where a node ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// In service (or would be, in a dry run).
    HandedOff,
    /// Kept out of service and quarantined in the inventory.
    Quarantined,
    /// Kept out of service, not quarantined (not known healthy).
    Held,
    /// Should be in service but kiln left it out: someone else holds it.
    LeftAlone,
    /// The cluster could not be told; nothing recorded as done.
    Error,
}

/// One node's hand-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHandoff {
    #[serde(flatten)]
    pub decision: Decision,
    pub actions: Vec<Action>,
    pub disposition: Disposition,
    /// The lifecycle state after hand-off (unchanged in a dry run).
    pub state_after: Option<LifecycleState>,
    /// What was recorded in the inventory, one line per event; a problem
    /// recording is said here too.
    pub recorded: Vec<String>,
}

impl NodeHandoff {
    /// Whether any action failed.
    pub fn failed(&self) -> bool {
        self.actions.iter().any(|a| matches!(a.result, ActionResult::Failed { .. }))
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffOutcome {
    pub schema_version: u32,
    pub kind: String,
    pub rack: String,
    /// `slurm` or `kubernetes`.
    pub cluster: String,
    pub dry_run: bool,
    pub nodes: Vec<NodeHandoff>,
    /// Each all-or-nothing NVLink domain among the nodes (a spec's
    /// `[nvlink_domain]` with `all_or_nothing`), and what hand-off made of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainHandoff>,
    /// `--topology PATH`: the topology of the nodes handed off, installed for Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<super::TopologyInstall>,
    pub exit_code: i32,
}

/// One all-or-nothing NVLink domain at hand-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainHandoff {
    /// The platform spec the domain's trays are.
    pub platform: String,
    /// Every tray of the domain in the manifest.
    pub nodes: Vec<String>,
    /// The trays not healthy, each with why (its decision's reason).
    pub broken: Vec<BrokenTray>,
    /// `--partial`: the healthy trays were handed off without the broken ones.
    pub partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenTray {
    pub node: String,
    pub reason: String,
}

impl HandoffOutcome {
    pub fn new(rack: &str, cluster: &str, dry_run: bool, nodes: Vec<NodeHandoff>) -> Self {
        let exit_code = exit_code(&nodes);
        HandoffOutcome {
            schema_version: HANDOFF_SCHEMA_VERSION,
            kind: "kiln.handoff".into(),
            rack: rack.to_string(),
            cluster: cluster.to_string(),
            dry_run,
            nodes,
            domains: Vec::new(),
            topology: None,
            exit_code,
        }
    }
}

/// `PEER` when the cluster could not be told about some node; else
/// `CHECK_FAILED` when some node is not handed off (quarantined, held or
/// left alone); else `OK`.
pub fn exit_code(nodes: &[NodeHandoff]) -> i32 {
    if nodes.iter().any(|n| n.disposition == Disposition::Error || n.failed()) {
        exit::PEER
    } else if nodes.iter().any(|n| n.disposition != Disposition::HandedOff) {
        exit::CHECK_FAILED
    } else {
        exit::OK
    }
}

/// The outcome as lines a person reads: per node its decision, each action
/// with its result, and what was recorded.
pub fn render_text(outcome: &HandoffOutcome) -> String {
    let mut out = String::new();
    let mode = if outcome.dry_run { " (dry run: nothing changed)" } else { "" };
    out.push_str(&format!("hand-off of rack {} to {}{mode}\n", outcome.rack, outcome.cluster));
    for n in &outcome.nodes {
        let why = n.decision.health.reason().map(|r| format!(": {r}")).unwrap_or_default();
        let disposition = serde_json::to_value(n.disposition).ok().and_then(|v| v.as_str().map(str::to_string));
        out.push_str(&format!(
            "{:<12} {:<4} -> {}{why}\n",
            n.decision.node,
            n.decision.health.name(),
            disposition.unwrap_or_default()
        ));
        for a in &n.actions {
            let result = match &a.result {
                ActionResult::Done => "done".to_string(),
                ActionResult::AlreadyDone { why } => format!("already done ({why})"),
                ActionResult::WouldDo => "would do".to_string(),
                ActionResult::Refused { why } => format!("REFUSED: {why}"),
                ActionResult::Failed { error } => format!("FAILED: {error}"),
            };
            out.push_str(&format!("    {}: {result}\n", a.what));
        }
        for r in &n.recorded {
            out.push_str(&format!("    recorded: {r}\n"));
        }
    }
    for d in outcome.domains.iter().filter(|d| !d.broken.is_empty()) {
        let broken: Vec<String> = d.broken.iter().map(|b| format!("{} ({})", b.node, b.reason)).collect();
        let done = if d.partial {
            "--partial: the healthy trays were handed off without them"
        } else {
            "every tray of the domain is held; fix them, or hand off the healthy trays with --partial"
        };
        out.push_str(&format!(
            "NVLink domain {} ({} trays): {} not healthy: {}; {done}\n",
            d.platform,
            d.nodes.len(),
            d.broken.len(),
            broken.join(", ")
        ));
    }
    if let Some(t) = &outcome.topology {
        out.push_str(&super::topology_install::render_text(t));
    }
    out
}
