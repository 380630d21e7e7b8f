//! PCI devices as sysfs shows them: identity, link state, place in the tree, AER.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PciAddress;

/// One PCI function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Full address, written `0000:1b:00.0`.
    pub address: PciAddress,
    /// Class code as 24 bits, `0x030200` for a 3D controller.
    pub class: u32,
    pub vendor_id: u16,
    pub device_id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor_id: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_device_id: Option<u16>,
    /// Names from the pci.ids database, for display only; checks match on ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Bound kernel driver, `nvidia`, `mlx5_core`, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// NUMA node, `None` when sysfs says -1 or has no file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkState>,
    /// Addresses of the bridges above this device, nearest first, ending at
    /// the root port. Empty for a device directly on a root bus.
    #[serde(default)]
    pub upstream: Vec<PciAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aer: Option<AerCounters>,
    /// Physical slot name from `/sys/bus/pci/slots/*/address`, when the
    /// platform firmware describes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

impl PciDevice {
    /// The base class byte (`0x03` display, `0x02` network, `0x06` bridge).
    pub fn base_class(&self) -> u8 {
        (self.class >> 16) as u8
    }

    /// Base class and subclass, `0x0302` for a 3D controller.
    pub fn class_subclass(&self) -> u16 {
        (self.class >> 8) as u16
    }

    pub fn is_bridge(&self) -> bool {
        self.base_class() == 0x06
    }
}

/// PCIe link training state of one device or port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    /// Current speed in GT/s (`32.0` for Gen5), `None` when sysfs says "Unknown".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_speed_gts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speed_gts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
}

/// PCIe generation for a speed in GT/s (2.5 is Gen1 ... 64 is Gen6).
pub fn pcie_generation(speed_gts: f64) -> Option<u32> {
    const TABLE: [(f64, u32); 6] = [(2.5, 1), (5.0, 2), (8.0, 3), (16.0, 4), (32.0, 5), (64.0, 6)];
    TABLE.iter().find(|(s, _)| (s - speed_gts).abs() < 0.01).map(|(_, g)| *g)
}

/// Speed in GT/s of a PCIe generation.
pub fn pcie_speed_gts(generation: u32) -> Option<f64> {
    match generation {
        1 => Some(2.5),
        2 => Some(5.0),
        3 => Some(8.0),
        4 => Some(16.0),
        5 => Some(32.0),
        6 => Some(64.0),
        _ => None,
    }
}

/// Advanced Error Reporting counters: one map per sysfs file, name to count,
/// including the kernel's `TOTAL_ERR_*` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AerCounters {
    #[serde(default)]
    pub correctable: BTreeMap<String, u64>,
    #[serde(default)]
    pub nonfatal: BTreeMap<String, u64>,
    #[serde(default)]
    pub fatal: BTreeMap<String, u64>,
}

impl AerCounters {
    /// Total of one file: its `TOTAL_ERR_*` line when present, else the sum.
    pub fn total(map: &BTreeMap<String, u64>) -> u64 {
        map.iter().find(|(k, _)| k.starts_with("TOTAL_ERR")).map(|(_, v)| *v).unwrap_or_else(|| map.values().sum())
    }
}
