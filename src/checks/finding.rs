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
#[serde(into = "LabelledComponent")]
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

/// A component as JSON shows it: its place label (`Component::label`) first; reading one
/// back ignores the label and computes it again.
#[derive(Serialize)]
struct LabelledComponent {
    label: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl From<Component> for LabelledComponent {
    fn from(c: Component) -> Self {
        LabelledComponent {
            label: c.label(),
            kind: c.kind,
            address: c.address,
            gpu_index: c.gpu_index,
            serial: c.serial,
            slot: c.slot,
            name: c.name,
        }
    }
}

impl Component {
    pub fn node() -> Self {
        Component { kind: "node".into(), ..Default::default() }
    }

    /// The part's place, named as everywhere in kiln (`place_label`): `gpu3 slot 4 0000:61:00.0`,
    /// `nic 0000:1c:00.0`, `node`.
    pub fn label(&self) -> String {
        place_label(&self.kind, self.gpu_index, self.slot.as_deref(), self.address.as_deref())
    }
}

/// How kiln names a part's place, the same in findings, the component table, changes, reports
/// and JSON (`label`): a GPU by its NVML index as `nvidia-smi -i` counts (`gpu3`, from 0), then
/// the physical place when one is known (the PCI slot as the chassis labels it, `slot 4`, or
/// NVML's `tray 4 slot 7 module 2` on an NVL72 tray), then the PCI address: `gpu3 slot 4
/// 0000:61:00.0`. Any other part is its kind, then the same place and address: `nic slot 4
/// 0000:18:00.0`, `dimm slot CPU0_DIMM_A1`, `bios`.
pub fn place_label(kind: &str, gpu_index: Option<u32>, slot: Option<&str>, address: Option<&str>) -> String {
    let mut s = match gpu_index {
        Some(i) => format!("gpu{i}"),
        None => kind.to_string(),
    };
    if let Some(slot) = slot.map(str::trim).filter(|s| !s.is_empty()) {
        if slot.starts_with("tray ") || slot.starts_with("slot ") {
            s.push_str(&format!(" {slot}"));
        } else {
            s.push_str(&format!(" slot {slot}"));
        }
    }
    if let Some(a) = address {
        s.push(' ');
        s.push_str(a);
    }
    s
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_named_by_index_then_physical_place_then_address() {
        assert_eq!(place_label("gpu", Some(3), Some("4"), Some("0000:61:00.0")), "gpu3 slot 4 0000:61:00.0");
        assert_eq!(
            place_label("gpu", Some(1), Some("tray 4 slot 7 module 2"), Some("0008:01:00.0")),
            "gpu1 tray 4 slot 7 module 2 0008:01:00.0"
        );
        assert_eq!(place_label("nic", None, None, Some("0000:18:00.0")), "nic 0000:18:00.0");
        assert_eq!(place_label("bios", None, Some(" "), None), "bios");
    }
}
