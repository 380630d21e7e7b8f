//! What inspection could not read, kept beside what it could.

use serde::{Deserialize, Serialize};

/// Something inspection could not read or parse. Inspection never aborts on
/// one bad file: it records a `ReadProblem` and goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadProblem {
    /// Which surface: `sysfs`, `procfs`, `nvml`.
    pub source: String,
    /// The path relative to the root (`sys/bus/pci/devices/.../current_link_width`)
    /// or the NVML call (`nvmlDeviceGetSerial`).
    pub path: String,
    /// The component it belongs to, when known: a PCI address or `gpu0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// What went wrong, as a lowercase fragment ("not an integer: \"x8\"").
    pub message: String,
}

impl ReadProblem {
    pub fn new(source: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: source.to_string(), path: path.into(), component: None, message: message.into() }
    }

    pub fn on(mut self, component: impl Into<String>) -> Self {
        self.component = Some(component.into());
        self
    }
}
