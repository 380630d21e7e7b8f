//! `Finding`: the one shape every check and every burn-in test is judged in.

use serde::{Deserialize, Serialize};

/// Four outcomes, never two: "not supported" is not "failed", and "could not
/// read" is not "healthy".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// The check did not apply or could not run for a stated reason.
    Skipped,
    /// kiln failed to check (unreadable input, a bug): the node is not known healthy.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skipped => "skipped",
            Outcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The part a finding is about, in the words a technician uses to find it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// `gpu`, `nic`, `nvme`, `pci`, `nvlink`, `cpu`, `memory`, `node`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Human name, `NVIDIA H100 80GB HBM3` or `nvlink 7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Component {
    pub fn node() -> Self {
        Component { kind: "node".into(), ..Default::default() }
    }

    /// Short label for tables: `gpu0 0000:1b:00.0`, `nic 0000:1c:00.0`.
    pub fn label(&self) -> String {
        let mut s = match self.gpu_index {
            Some(i) => format!("gpu{i}"),
            None => self.kind.clone(),
        };
        if let Some(a) = &self.address {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable check id, dotted: `pci.link_width`, `gpu.count`, `nvlink.active`.
    pub check: String,
    pub outcome: Outcome,
    pub severity: Severity,
    pub component: Component,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// One sentence: what was seen.
    pub message: String,
    /// What a technician should do, for fail and error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Finding {
    pub fn new(
        check: &str,
        outcome: Outcome,
        severity: Severity,
        component: Component,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            check: check.to_string(),
            outcome,
            severity,
            component,
            expected: None,
            actual: None,
            message: message.into(),
            action: None,
        }
    }

    pub fn expected(mut self, v: impl ToString) -> Self {
        self.expected = Some(v.to_string());
        self
    }

    pub fn actual(mut self, v: impl ToString) -> Self {
        self.actual = Some(v.to_string());
        self
    }

    pub fn action(mut self, v: impl Into<String>) -> Self {
        self.action = Some(v.into());
        self
    }
}

/// The verdict over a set of findings: any error or fail fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing failed but something could not be checked.
    Error,
}

impl Verdict {
    pub fn of(findings: &[Finding]) -> Verdict {
        if findings.iter().any(|f| f.outcome == Outcome::Fail) {
            Verdict::Fail
        } else if findings.iter().any(|f| f.outcome == Outcome::Error) {
            Verdict::Error
        } else {
            Verdict::Pass
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}
