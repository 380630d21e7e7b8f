//! What every rule needs: the node's GPUs by address, components in the
//! technician's words, and finding constructors with consistent severities.

use std::collections::BTreeMap;

use crate::checks::finding::{Component, Finding, Outcome, Severity};
use crate::checks::platform::DeviceGroup;
use crate::model::{Gpu, GpuInventory, Node, PciAddress, PciDevice, ReadProblem};

/// The node being judged, with lookups the rules share.
pub struct Ctx<'a> {
    pub node: &'a Node,
    gpus_by_address: BTreeMap<PciAddress, &'a Gpu>,
}

impl<'a> Ctx<'a> {
    pub fn new(node: &'a Node) -> Self {
        let gpus_by_address = node.gpus.gpus().iter().filter_map(|g| Some((g.pci_address?, g))).collect();
        Ctx { node, gpus_by_address }
    }

    /// The NVML view of the GPU at a PCI address, when NVML listed it.
    pub fn gpu_at(&self, address: &PciAddress) -> Option<&'a Gpu> {
        self.gpus_by_address.get(address).copied()
    }

    /// The functions of a group, in PCI address order.
    pub fn members(&self, group: &DeviceGroup) -> Vec<&'a PciDevice> {
        let mut v: Vec<&PciDevice> = self.node.pci.iter().filter(|d| group.matches(d)).collect();
        v.sort_by_key(|d| d.address);
        v
    }

    /// NVML's GPUs, or why there are none to judge.
    pub fn nvml_gpus(&self) -> Result<&'a [Gpu], &'a str> {
        match &self.node.gpus {
            GpuInventory::Inspected { gpus, .. } => Ok(gpus),
            GpuInventory::NotInspected { reason } => Err(reason),
        }
    }

    /// The component for a PCI function: address, slot, and for a GPU its
    /// NVML index and serial.
    pub fn device_component(&self, device: &PciDevice, kind: &str, label: Option<&str>) -> Component {
        let gpu = self.gpu_at(&device.address);
        let slot = device.slot.clone().or_else(|| gpu.and_then(gpu_slot));
        Component {
            kind: kind.to_string(),
            address: Some(device.address.to_string()),
            gpu_index: gpu.map(|g| g.index),
            serial: gpu.and_then(|g| g.serial.clone()),
            slot,
            name: gpu
                .and_then(|g| g.name.clone())
                .or_else(|| label.map(str::to_string))
                .or_else(|| device.device_name.clone()),
        }
    }

    /// The component for a GPU NVML listed; the PCI slot name wins over the
    /// NVML platform position when sysfs has one.
    pub fn gpu_component(&self, gpu: &Gpu) -> Component {
        let pci_slot = gpu.pci_address.and_then(|a| self.node.pci_device(&a)).and_then(|d| d.slot.clone());
        Component {
            kind: "gpu".into(),
            address: gpu.pci_address.map(|a| a.to_string()),
            gpu_index: Some(gpu.index),
            serial: gpu.serial.clone(),
            slot: pci_slot.or_else(|| gpu_slot(gpu)),
            name: gpu.name.clone(),
        }
    }

    /// A problem recorded against a GPU (in its own list or the node's under
    /// `gpuN` or its address) whose path mentions `needle`.
    pub fn gpu_problem(&self, gpu: &'a Gpu, needle: &str) -> Option<&'a ReadProblem> {
        let needle = needle.to_lowercase();
        let key = format!("gpu{}", gpu.index);
        let node: &'a Node = self.node;
        let on_node = node
            .problems
            .iter()
            .filter(|p| p.component.as_deref().is_some_and(|c| c == key || gpu.pci_address.is_some_and(|a| a == *c)));
        gpu.problems.iter().chain(on_node).find(|p| p.path.to_lowercase().contains(&needle))
    }

    /// A problem recorded against a PCI function whose path mentions `needle`.
    pub fn device_problem(&self, device: &PciDevice, needle: &str) -> Option<&'a ReadProblem> {
        let node: &'a Node = self.node;
        node.problems
            .iter()
            .find(|p| p.component.as_deref().is_some_and(|c| device.address == *c) && p.path.contains(needle))
    }
}

/// `tray 3 slot 2 module 1` from NVML's platform info (Blackwell).
fn gpu_slot(gpu: &Gpu) -> Option<String> {
    gpu.platform.as_ref().map(|p| format!("tray {} slot {} module {}", p.tray_index, p.slot_number, p.module_id))
}

pub fn pass(check: &str, component: Component, message: impl Into<String>) -> Finding {
    Finding::new(check, Outcome::Pass, Severity::Info, component, message)
}

pub fn skipped(check: &str, component: Component, why: impl Into<String>) -> Finding {
    Finding::new(check, Outcome::Skipped, Severity::Info, component, why)
}

pub fn fail(check: &str, component: Component, message: impl Into<String>, action: impl Into<String>) -> Finding {
    Finding::new(check, Outcome::Fail, Severity::Critical, component, message).action(action)
}

/// A fail that does not stop a node on its own: soft budgets.
pub fn warn(check: &str, component: Component, message: impl Into<String>, action: impl Into<String>) -> Finding {
    Finding::new(check, Outcome::Fail, Severity::Warning, component, message).action(action)
}

pub fn error(check: &str, component: Component, message: impl Into<String>, action: impl Into<String>) -> Finding {
    Finding::new(check, Outcome::Error, Severity::Warning, component, message).action(action)
}

/// The action for anything NVML could not report because there is no driver.
pub const INSTALL_DRIVER: &str = "install the NVIDIA driver and re-run";

/// The action when inspection could not read something it needed.
pub const REREAD: &str = "re-run kiln as root; if it persists, check the device in dmesg and the capture";

/// `"{n}/{m} {what}"` for pass summaries.
pub fn ratio(n: usize, m: usize, what: &str) -> String {
    format!("{n}/{m} {what}")
}
