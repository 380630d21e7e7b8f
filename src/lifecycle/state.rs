//! `LifecycleState`: where a node stands in bring-up.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's lifecycle state. The step states are ordered (enrolled, inspected,
/// validated, burned in, ready, handed off); `Failed` and `Quarantined` sit
/// beside them and carry the reason a technician reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LifecycleState {
    /// Known to kiln, nothing judged yet.
    Enrolled,
    /// Inspected: its parts are recorded.
    Inspected,
    /// Its topology matched the platform spec.
    Validated,
    /// It passed burn-in.
    BurnedIn,
    /// Signed off for hand-off to a cluster.
    Ready,
    /// In a cluster's hands (Slurm, Kubernetes).
    HandedOff,
    /// A step failed; the node needs repair and a rerun.
    Failed { reason: String },
    /// Held by a person; only an explicit release (to enrolled) ends it.
    Quarantined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lifecycle state {0:?}")]
pub struct UnknownState(pub String);

impl LifecycleState {
    /// The state's name as stored and printed: `burned_in`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            LifecycleState::Enrolled => "enrolled",
            LifecycleState::Inspected => "inspected",
            LifecycleState::Validated => "validated",
            LifecycleState::BurnedIn => "burned_in",
            LifecycleState::Ready => "ready",
            LifecycleState::HandedOff => "handed_off",
            LifecycleState::Failed { .. } => "failed",
            LifecycleState::Quarantined { .. } => "quarantined",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            LifecycleState::Failed { reason } | LifecycleState::Quarantined { reason } => Some(reason),
            _ => None,
        }
    }

    /// Rebuild a state from its stored name and reason. A failed or
    /// quarantined state stored without a reason gets an empty one rather
    /// than being refused: the state itself is what matters.
    pub fn from_parts(name: &str, reason: Option<String>) -> Result<Self, UnknownState> {
        Ok(match name {
            "enrolled" => LifecycleState::Enrolled,
            "inspected" => LifecycleState::Inspected,
            "validated" => LifecycleState::Validated,
            "burned_in" => LifecycleState::BurnedIn,
            "ready" => LifecycleState::Ready,
            "handed_off" => LifecycleState::HandedOff,
            "failed" => LifecycleState::Failed { reason: reason.unwrap_or_default() },
            "quarantined" => LifecycleState::Quarantined { reason: reason.unwrap_or_default() },
            other => return Err(UnknownState(other.to_string())),
        })
    }

    /// Position in bring-up order; `None` for failed and quarantined.
    pub(crate) fn step(&self) -> Option<u8> {
        match self {
            LifecycleState::Enrolled => Some(0),
            LifecycleState::Inspected => Some(1),
            LifecycleState::Validated => Some(2),
            LifecycleState::BurnedIn => Some(3),
            LifecycleState::Ready => Some(4),
            LifecycleState::HandedOff => Some(5),
            LifecycleState::Failed { .. } | LifecycleState::Quarantined { .. } => None,
        }
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) if !reason.is_empty() => write!(f, "{} ({reason})", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}
