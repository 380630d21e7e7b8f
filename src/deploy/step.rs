//! The steps of deploying one node, in order, and how a node's deployment ended.

use serde::Serialize;

use crate::inventory::StepOutcome;

/// One step of a node's deployment. Each is recorded as it ends (inventory `deploy_steps` and the
/// node's lifecycle history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Virtual media inserted and boot-once CD, or boot-once PXE.
    BootSet,
    /// The host reset (or powered on) through its BMC.
    Reset,
    /// The node's imaging agent said hello.
    Agent,
    /// The agent wrote and verified the image.
    Written,
    /// Next boot from disk set, agent told to reboot.
    Reboot,
    /// The booted node reported the image's digest.
    Booted,
}

impl Step {
    pub const ALL: [Step; 6] = [Step::BootSet, Step::Reset, Step::Agent, Step::Written, Step::Reboot, Step::Booted];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::BootSet => "boot-set",
            Step::Reset => "reset",
            Step::Agent => "agent",
            Step::Written => "written",
            Step::Reboot => "reboot",
            Step::Booted => "booted",
        }
    }
}

/// A recorded step, as the outcome lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepLine {
    pub step: Step,
    pub outcome: StepOutcome,
    pub detail: String,
}

/// How a node's deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Confirmed booted on the image in this run.
    Booted,
    /// Already booted on this image (a rerun): nothing was done.
    AlreadyBooted,
    /// A step failed; the node is recorded failed.
    Failed,
    /// Not touched: quarantined or handed off.
    Refused,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Booted => "booted",
            NodeStatus::AlreadyBooted => "already-booted",
            NodeStatus::Failed => "failed",
            NodeStatus::Refused => "refused",
        }
    }

    /// True when the node ends on the image.
    pub fn confirmed(self) -> bool {
        matches!(self, NodeStatus::Booted | NodeStatus::AlreadyBooted)
    }
}

/// One node's deployment, for the table and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub status: NodeStatus,
    /// Why it failed or was refused: `image: boot-set: ...`.
    pub reason: Option<String>,
    pub steps: Vec<StepLine>,
}
