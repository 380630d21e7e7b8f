//! GPUs as NVML reports them: identity, PCIe link, NVLink, memory health, fabric.
//!
//! Every per-GPU query NVML may not support is an `Option`: `None` means "not
//! supported or not read" (a `ReadProblem` says which), never "healthy".

use serde::{Deserialize, Serialize};

use super::{PciAddress, ReadProblem};

/// What the GPU surface found. "No driver" is not an error: it is a state a
/// CPU-only node or a node before driver install is legitimately in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GpuInventory {
    Inspected {
        driver_version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nvml_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cuda_driver_version: Option<u32>,
        gpus: Vec<Gpu>,
    },
    /// NVML could not be used; `reason` says why ("no NVIDIA driver").
    NotInspected { reason: String },
}

impl GpuInventory {
    pub fn gpus(&self) -> &[Gpu] {
        match self {
            GpuInventory::Inspected { gpus, .. } => gpus,
            GpuInventory::NotInspected { .. } => &[],
        }
    }

    pub fn not_inspected_reason(&self) -> Option<&str> {
        match self {
            GpuInventory::Inspected { .. } => None,
            GpuInventory::NotInspected { reason } => Some(reason),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// NVML index (enumeration order, by PCI address).
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_part_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vbios_version: Option<String>,
    /// PCI address, written in sysfs form (`0000:1b:00.0`). `None` (written as an empty
    /// string) when NVML could not give one; a problem in `problems` says why.
    #[serde(with = "super::empty_when_none")]
    pub pci_address: Option<PciAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie: Option<GpuPcieLink>,
    /// One entry per NVLink the GPU has; `None` when NVML says NVLink is not
    /// supported or could not be queried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlinks: Option<Vec<NvLink>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc: Option<EccCounters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_pages: Option<RetiredPages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remapped_rows: Option<RemappedRows>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<FabricInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_watts: Option<f64>,
    /// Queries that failed for this GPU (other than "not supported").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ReadProblem>,
}

impl Gpu {
    /// The PCI address for messages: `0000:1b:00.0`, or `unknown address` when NVML gave none.
    pub fn address_label(&self) -> String {
        self.pci_address.map_or_else(|| "unknown address".to_string(), |a| a.to_string())
    }
}

/// PCIe link as NVML reports it (generation, not GT/s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuPcieLink {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_generation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_generation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_counter: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvLink {
    pub link: u32,
    pub active: bool,
    /// NVLink generation: 4 on Hopper, 5 on Blackwell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// PCI address of the far end (an NVSwitch or a peer GPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_pci_address: Option<PciAddress>,
    /// Link speed in megabytes per second, as NVML gives it (53125 on NVLink 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u64>,
    #[serde(default)]
    pub errors: NvLinkErrors,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NvLinkErrors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_flit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_data: Option<u64>,
}

/// ECC error counts, volatile (since driver load) and aggregate (lifetime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EccCounters {
    pub enabled: bool,
    pub volatile_corrected: u64,
    pub volatile_uncorrected: u64,
    pub aggregate_corrected: u64,
    pub aggregate_uncorrected: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetiredPages {
    pub single_bit: u64,
    pub double_bit: u64,
    pub pending: bool,
}

/// Row remapping (Ampere and later): rows remapped, and whether a remap is
/// pending (needs a GPU reset) or failed (RMA).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemappedRows {
    pub correctable: u64,
    pub uncorrectable: u64,
    pub pending: bool,
    pub failure: bool,
}

/// `nvmlGpuFabricState_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FabricState {
    NotSupported,
    NotStarted,
    InProgress,
    Completed,
    Unknown,
}

impl FabricState {
    pub fn from_raw(state: u8) -> Self {
        match state {
            0 => FabricState::NotSupported,
            1 => FabricState::NotStarted,
            2 => FabricState::InProgress,
            3 => FabricState::Completed,
            _ => FabricState::Unknown,
        }
    }
}

/// `nvmlDeviceGetGpuFabricInfoV`: which NVLink domain the GPU joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricInfo {
    pub state: FabricState,
    /// `nvmlReturn_t` of the fabric registration; 0 is success.
    pub status: u32,
    /// Cluster UUID, hex with dashes; all-zero when not registered.
    pub cluster_uuid: String,
    pub clique_id: u32,
    pub health_mask: u32,
}

/// `nvmlDeviceGetPlatformInfo`: where the GPU physically is (Blackwell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis_serial: Option<String>,
    pub slot_number: u32,
    pub tray_index: u32,
    pub host_id: u32,
    pub peer_type: u32,
    pub module_id: u32,
}
