//! GPUs as NVML reports them: identity, PCIe link, NVLink, memory health, fabric.
//!
//! Every per-GPU query NVML may not support is an `Option`: `None` means "not
//! supported or not read" (a `ReadProblem` says which), never "healthy".

use serde::{Deserialize, Serialize};

use super::{PciAddress, ReadProblem};

/// What the GPU surface found. "No driver" is not an error: it is a state a
/// CPU-only node or a node before driver install is legitimately in.
///
/// Read back through [`RawInventory`] rather than serde's internally tagged enum, which buffers
/// the whole document and loses the line, column and field of an error inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", try_from = "RawInventory")]
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

/// `GpuInventory` as it is read: every field of either state, streamed from the text.
#[derive(Deserialize)]
struct RawInventory {
    status: InventoryStatus,
    #[serde(default)]
    driver_version: Option<String>,
    #[serde(default)]
    nvml_version: Option<String>,
    #[serde(default)]
    cuda_driver_version: Option<u32>,
    #[serde(default)]
    gpus: Option<Vec<Gpu>>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum InventoryStatus {
    Inspected,
    NotInspected,
}

impl TryFrom<RawInventory> for GpuInventory {
    type Error = String;

    fn try_from(raw: RawInventory) -> Result<Self, String> {
        match raw.status {
            InventoryStatus::Inspected => Ok(GpuInventory::Inspected {
                driver_version: raw.driver_version.ok_or("missing field `driver_version`")?,
                nvml_version: raw.nvml_version,
                cuda_driver_version: raw.cuda_driver_version,
                gpus: raw.gpus.ok_or("missing field `gpus`")?,
            }),
            InventoryStatus::NotInspected => {
                Ok(GpuInventory::NotInspected { reason: raw.reason.ok_or("missing field `reason`")? })
            }
        }
    }
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
    /// NVLink-C2C between the GPU and its CPU (GB200, GH200); `None` where
    /// NVML reports no C2C link (a PCIe GPU, or a driver without the fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c2c: Option<C2c>,
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

/// NVLink-C2C of one GPU, from NVML field values: link count (170), each
/// link's status (171) and bandwidth (172, MB/s), error counters (231-233).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2c {
    pub links: Vec<C2cLink>,
    #[serde(default)]
    pub errors: C2cErrors,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2cLink {
    pub link: u32,
    pub active: bool,
    /// `NVML_FI_DEV_C2C_LINK_GET_MAX_BW`, MB/s, for an active link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbps: Option<u64>,
}

/// C2C error counters; `None` where NVML does not report one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct C2cErrors {
    /// `NVML_FI_DEV_C2C_LINK_ERROR_INTR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts: Option<u64>,
    /// `NVML_FI_DEV_C2C_LINK_ERROR_REPLAY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<u64>,
    /// `NVML_FI_DEV_C2C_LINK_ERROR_REPLAY_B2B`: back-to-back replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_b2b: Option<u64>,
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

/// One two-bit field of the fabric health mask (`NVML_GPU_FABRIC_HEALTH_MASK_*`):
/// whether the bad condition the field names holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FabricFlag {
    /// 0: the driver does not report this field.
    NotSupported,
    /// 1: the condition holds (bandwidth degraded, route unhealthy, ...).
    Holds,
    /// 2: the condition does not hold.
    Clear,
    /// 3: a value no nvml.h defines.
    Unknown,
}

impl FabricFlag {
    fn from_bits(bits: u32) -> Self {
        match bits & 0x3 {
            0 => FabricFlag::NotSupported,
            1 => FabricFlag::Holds,
            2 => FabricFlag::Clear,
            _ => FabricFlag::Unknown,
        }
    }
}

/// The fabric health mask of `nvmlGpuFabricInfoV`, field by field. Shifts and
/// values from nvml.h: degraded bandwidth at bit 0, route recovery 2, route
/// unhealthy 4, access-timeout recovery 6 (two bits each), incorrect
/// configuration at 8 (four bits, an enum). A healthy GPU on a driver that
/// reports every field reads 0x1aa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FabricHealth {
    pub degraded_bandwidth: FabricFlag,
    pub route_recovery: FabricFlag,
    pub route_unhealthy: FabricFlag,
    pub access_timeout_recovery: FabricFlag,
    /// `NVML_GPU_FABRIC_HEALTH_MASK_INCORRECT_CONFIGURATION_*`: 0 not
    /// supported, 1 none, 2 and up the reason the configuration is wrong.
    pub incorrect_configuration: u32,
    /// Bits set above the fields nvml.h defines (bit 12 and up).
    pub unknown_bits: u32,
}

/// The bits nvml.h's fabric health mask fields cover.
pub const FABRIC_HEALTH_KNOWN_BITS: u32 = 0xfff;

impl FabricHealth {
    pub fn from_mask(mask: u32) -> Self {
        FabricHealth {
            degraded_bandwidth: FabricFlag::from_bits(mask),
            route_recovery: FabricFlag::from_bits(mask >> 2),
            route_unhealthy: FabricFlag::from_bits(mask >> 4),
            access_timeout_recovery: FabricFlag::from_bits(mask >> 6),
            incorrect_configuration: (mask >> 8) & 0xf,
            unknown_bits: mask & !FABRIC_HEALTH_KNOWN_BITS,
        }
    }
}

/// What an `incorrect_configuration` value means, in a technician's words;
/// `None` for a value nvml.h does not define.
pub fn incorrect_configuration_name(value: u32) -> Option<&'static str> {
    Some(match value {
        0 => "not supported",
        1 => "none",
        2 => "incorrect system GUID",
        3 => "incorrect chassis serial number",
        4 => "no partition",
        5 => "insufficient NVLinks",
        6 => "incompatible GPU firmware",
        _ => return None,
    })
}

impl FabricInfo {
    /// The health mask field by field.
    pub fn health(&self) -> FabricHealth {
        FabricHealth::from_mask(self.health_mask)
    }
}

#[cfg(test)]
mod fabric_health_tests {
    use super::*;

    #[test]
    fn the_healthy_mask_reads_clear_everywhere_and_zero_reads_not_supported() {
        let h = FabricHealth::from_mask(0x1aa);
        for f in [h.degraded_bandwidth, h.route_recovery, h.route_unhealthy, h.access_timeout_recovery] {
            assert_eq!(f, FabricFlag::Clear);
        }
        assert_eq!((h.incorrect_configuration, h.unknown_bits), (1, 0));
        let none = FabricHealth::from_mask(0);
        assert_eq!((none.degraded_bandwidth, none.incorrect_configuration), (FabricFlag::NotSupported, 0));
    }

    #[test]
    fn each_field_is_read_at_its_shift() {
        let h = FabricHealth::from_mask(0x1aa & !0x3 | 0x1);
        assert_eq!((h.degraded_bandwidth, h.route_recovery), (FabricFlag::Holds, FabricFlag::Clear));
        let h = FabricHealth::from_mask(0x5aa);
        assert_eq!(incorrect_configuration_name(h.incorrect_configuration), Some("insufficient NVLinks"));
        let h = FabricHealth::from_mask(0x1aa | 0x30 | 0x3000);
        assert_eq!((h.route_unhealthy, h.unknown_bits), (FabricFlag::Unknown, 0x3000));
    }
}
