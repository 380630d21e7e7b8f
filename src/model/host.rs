//! The host side of a node: DMI identity, CPUs, memory, disks, network ports.

use serde::{Deserialize, Serialize};

use super::PciAddress;

/// Identity from DMI (`/sys/class/dmi/id`). Every field is optional: VMs and
/// some boards leave them empty or unreadable to non-root users.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dmi {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis_serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_date: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpus {
    /// `x86_64` or `aarch64`, from the build target of the inspecting binary
    /// on a live run, from the capture on a replay.
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
    #[serde(default)]
    pub numa_nodes: Vec<NumaNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumaNode {
    pub id: u32,
    /// Kernel cpulist format, `0-55,112-167`; empty for a memory-only node
    /// (GPU memory exposed as NUMA on Grace with driver 570).
    pub cpulist: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kib: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub total_kib: u64,
    /// Every memory device slot SMBIOS lists (type 17), populated or not, in table order;
    /// empty when the table was not read (no root, a VM without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimms: Vec<Dimm>,
}

/// One SMBIOS memory device (type 17): a DIMM slot and what is in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimm {
    /// The slot as the board labels it (`CPU0_DIMM_A1`, `DIMM_P0_A0`).
    pub locator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_locator: Option<String>,
    /// 0 for an empty slot; `None` when SMBIOS says the size is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// `DDR5`, `LPDDR5`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_type: Option<String>,
    /// Rated speed in MT/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<String>,
}

impl Dimm {
    /// Whether a module sits in the slot (SMBIOS size not 0).
    pub fn populated(&self) -> bool {
        self.size_bytes != Some(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name, `nvme0n1`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    pub size_bytes: u64,
    pub rotational: bool,
    /// PCI address of the controller, when the device sits on PCI (NVMe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PciAddress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    Ethernet,
    Infiniband,
    Other,
}

/// A network or InfiniBand port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetPort {
    /// Interface name (`ens1f0np0`) or IB device and port (`mlx5_0/1`).
    pub name: String,
    pub kind: PortKind,
    /// MAC for Ethernet, port GUID for InfiniBand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PciAddress>,
    /// Link speed in Mb/s when the link is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}
