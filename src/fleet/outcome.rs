//! What one node's run came to (`NodeOutcome`), the rack's (`RackOutcome`), and the rack's exit code.

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::transport::TransportError;
use crate::checks::{Finding, Outcome};
use crate::exit;

/// A rack step: the node command run on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Inspect,
    Validate,
    Burnin,
    /// Reachability and binary state only; runs no node command.
    Status,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Inspect => "inspect",
            Step::Validate => "validate",
            Step::Burnin => "burnin",
            Step::Status => "status",
        }
    }
}

/// How one node's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// The node command ran and passed (exit 0).
    Pass,
    /// The node command ran and a check failed (exit 1): the node is not healthy.
    Fail,
    /// The node command ran but could not check, or kiln on the node failed.
    Error,
    /// Not run: the node command said it had nothing to do (exit 7), or the
    /// step had already passed on this node (see `reason`).
    Skipped,
    /// The node command could not be run: unreachable, host key refused,
    /// authentication, time limit, connection lost, binary push failed.
    PeerError,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pass => "pass",
            NodeStatus::Fail => "fail",
            NodeStatus::Error => "error",
            NodeStatus::Skipped => "skipped",
            NodeStatus::PeerError => "peer_error",
        }
    }
}

/// Why a node could not be run, as a stable word for tables and the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Unreachable,
    HostKeyUnknown,
    HostKeyChanged,
    Auth,
    Timeout,
    Disconnected,
    Transfer,
    /// kiln on the node exited with a code that is not a verdict, or printed no JSON.
    Remote,
    /// The node's Slurm job ended without running kiln to its end (cancelled,
    /// over its time limit, node failure), or left no result.
    SlurmJob,
}

impl FailureKind {
    /// The word as the JSON and the database show it: `host_key_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unreachable => "unreachable",
            FailureKind::HostKeyUnknown => "host_key_unknown",
            FailureKind::HostKeyChanged => "host_key_changed",
            FailureKind::Auth => "auth",
            FailureKind::Timeout => "timeout",
            FailureKind::Disconnected => "disconnected",
            FailureKind::Transfer => "transfer",
            FailureKind::Remote => "remote",
            FailureKind::SlurmJob => "slurm_job",
        }
    }
}

impl TransportError {
    pub fn kind(&self) -> FailureKind {
        match self {
            TransportError::Resolve { .. } | TransportError::Connect { .. } | TransportError::Handshake { .. } => {
                FailureKind::Unreachable
            }
            TransportError::HostKeyUnknown { .. } | TransportError::KnownHosts { .. } => FailureKind::HostKeyUnknown,
            TransportError::HostKeyChanged { .. } => FailureKind::HostKeyChanged,
            TransportError::Auth { .. } => FailureKind::Auth,
            TransportError::Timeout { .. } => FailureKind::Timeout,
            TransportError::Disconnected { .. } | TransportError::Channel { .. } => FailureKind::Disconnected,
            TransportError::Upload { .. }
            | TransportError::Checksum { .. }
            | TransportError::WrongArch { .. }
            | TransportError::NoBinaryForArch { .. }
            | TransportError::Install { .. } => FailureKind::Transfer,
            TransportError::Spawn { .. } => FailureKind::Remote,
        }
    }
}

/// What happened to the kiln binary on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryState {
    /// Same checksum as this kiln: left alone.
    Current,
    /// Missing or different: pushed, and the pushed copy's checksum verified.
    Pushed,
    /// `status` only (it pushes nothing): no kiln at the path.
    Missing,
    /// `status` only: a kiln that differs from this one.
    Differs,
}

/// One node's run of one step.
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    pub node: String,
    pub step: Step,
    pub status: NodeStatus,
    #[serde(serialize_with = "rfc3339")]
    pub started: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub finished: OffsetDateTime,
    pub duration_ms: u64,
    /// Exit code of the node command, when it ran to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_exit: Option<i32>,
    /// `verdict` from the node command's JSON, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// One line a technician can act on, for anything but a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinaryState>,
    /// The node command's JSON output, as it printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// What the inventory made of this outcome, when the step was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
}

/// How a node's outcome went into the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The run recorded for the node (none for a node that could not be run,
    /// or one skipped because its step had already passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// The node's lifecycle state after recording (`validated`, `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// The hostname the node reported, when it differs from its manifest
    /// name (the inventory keys rack nodes by manifest name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_hostname: Option<String>,
    /// A different machine than the one recorded in this place before answered: what the
    /// inventory recorded as the machine event (`node07 in rack r1 now holds machine serial X,
    /// was serial Y`). The rack step makes it a finding (`inventory.machine`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_change: Option<MachineChange>,
    /// Why the outcome could not be written to the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A place that holds a different machine than before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MachineChange {
    /// The machine key before and now (`serial:...`, `uuid:...`).
    pub was: String,
    pub now: String,
    pub message: String,
}

/// Version of the rack outcome JSON (`kiln rack ... --json`).
pub const RACK_SCHEMA_VERSION: u32 = 1;

/// A whole rack's run of one step, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RackOutcome {
    pub schema_version: u32,
    pub kind: &'static str,
    pub rack: String,
    pub step: Step,
    pub exit_code: i32,
    pub nodes: Vec<NodeOutcome>,
    /// Findings only visible across nodes (firmware drift, NVLink domain).
    pub rack_findings: Vec<Finding>,
    /// The inventory's id of this rack run, when it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack_run_id: Option<i64>,
    /// Why the rack run could not be recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
    /// `burnin` on a multi-tray NVLink domain: the NCCL collective across its trays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collective: Option<super::collective::CollectiveOutcome>,
}

impl RackOutcome {
    pub fn new(rack: &str, step: Step, nodes: Vec<NodeOutcome>, rack_findings: Vec<Finding>) -> Self {
        let exit_code = exit_code(&nodes, &rack_findings);
        RackOutcome {
            schema_version: RACK_SCHEMA_VERSION,
            kind: "kiln.rack",
            rack: rack.to_string(),
            step,
            exit_code,
            nodes,
            rack_findings,
            rack_run_id: None,
            record_error: None,
            collective: None,
        }
    }
}

/// The rack's exit code, first match wins:
/// 1. any node `fail` or any failed rack finding: `CHECK_FAILED` (1);
/// 2. any node `peer_error`: `PEER` (6);
/// 3. any node whose outcome could not be written to the inventory: `DATABASE` (5);
/// 4. any node `error` or rack finding `error`: `CHECK_ERROR` (3);
/// 5. any node skipped by the node command itself (exit 7): `SKIPPED` (7);
/// 6. otherwise `OK` (0). A node skipped because its step had already
///    passed counts as passed.
pub fn exit_code(nodes: &[NodeOutcome], rack_findings: &[Finding]) -> i32 {
    let any = |s: NodeStatus| nodes.iter().any(|n| n.status == s);
    if any(NodeStatus::Fail) || rack_findings.iter().any(|f| f.outcome == Outcome::Fail) {
        exit::CHECK_FAILED
    } else if any(NodeStatus::PeerError) {
        exit::PEER
    } else if nodes.iter().any(|n| n.recorded.as_ref().is_some_and(|r| r.error.is_some())) {
        exit::DATABASE
    } else if any(NodeStatus::Error) || rack_findings.iter().any(|f| f.outcome == Outcome::Error) {
        exit::CHECK_ERROR
    } else if nodes.iter().any(|n| n.status == NodeStatus::Skipped && n.remote_exit == Some(exit::SKIPPED)) {
        exit::SKIPPED
    } else {
        exit::OK
    }
}

fn rfc3339<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = t.format(&time::format_description::well_known::Rfc3339).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Component, Severity};

    fn outcome(status: NodeStatus, remote_exit: Option<i32>) -> NodeOutcome {
        let now = OffsetDateTime::now_utc();
        NodeOutcome {
            node: "n".into(),
            step: Step::Validate,
            status,
            started: now,
            finished: now,
            duration_ms: 0,
            remote_exit,
            verdict: None,
            failure: None,
            reason: None,
            binary: None,
            report: None,
            recorded: None,
        }
    }

    #[test]
    fn exit_code_precedence() {
        use NodeStatus::*;
        assert_eq!(exit_code(&[outcome(Pass, Some(0))], &[]), exit::OK);
        assert_eq!(exit_code(&[outcome(Pass, Some(0)), outcome(Skipped, None)], &[]), exit::OK);
        assert_eq!(exit_code(&[outcome(Pass, Some(0)), outcome(Skipped, Some(7))], &[]), exit::SKIPPED);
        assert_eq!(exit_code(&[outcome(Error, Some(3)), outcome(Skipped, Some(7))], &[]), exit::CHECK_ERROR);
        assert_eq!(exit_code(&[outcome(Error, Some(3)), outcome(PeerError, None)], &[]), exit::PEER);
        assert_eq!(exit_code(&[outcome(Fail, Some(1)), outcome(PeerError, None)], &[]), exit::CHECK_FAILED);
        let drift = Finding::new("rack.firmware.vbios", Outcome::Fail, Severity::Warning, Component::node(), "x");
        assert_eq!(exit_code(&[outcome(Pass, Some(0))], &[drift]), exit::CHECK_FAILED);
        let mut unrecorded = outcome(Pass, Some(0));
        unrecorded.recorded = Some(Recorded { error: Some("database is locked".into()), ..Default::default() });
        assert_eq!(exit_code(&[unrecorded.clone(), outcome(Error, Some(3))], &[]), exit::DATABASE);
        assert_eq!(exit_code(&[unrecorded, outcome(PeerError, None)], &[]), exit::PEER);
    }
}
