//! `Platform`: a platform spec as data, parsed from `checks/platforms/*.toml`.
//!
//! A new platform needs a new TOML file, never new code. The format is
//! documented in `docs/platform-specs.md`; every field is optional except
//! `name` and `description`, and a section that is absent is not judged.

use serde::{Deserialize, Serialize};

use super::burnin_spec::BurninSpec;
use super::pci_id::PciId;

/// One platform spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// Short name used with `--platform`: lowercase letters, digits and `-`.
    pub name: String,
    pub description: String,
    /// The spec used when no other spec's `[match]` rules hold. At most one
    /// spec of a set may say so, and it has no `[match]` rules.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fallback: bool,
    /// How kiln recognises this platform when no `--platform` is given.
    #[serde(default, rename = "match", skip_serializing_if = "MatchRules::is_empty")]
    pub detect: MatchRules,
    /// Expected PCI device groups, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aer: Option<AerRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink: Option<NvLinkRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<FabricRules>,
    /// NVLink-C2C between each GPU and its CPU (GB200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c2c: Option<C2cRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_health: Option<GpuHealthRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareRules>,
    /// The NVLink domain this node is one tray of, when it spans several
    /// nodes (GB200 NVL72). Absent: the node's NVLinks stay inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_domain: Option<NvlinkDomain>,
    /// Burn-in thresholds (`kiln burnin`); a spec without them is for
    /// validation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burnin: Option<BurninSpec>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Platform {
    /// The device groups expecting GPUs.
    pub fn gpu_groups(&self) -> impl Iterator<Item = &DeviceGroup> {
        self.devices.iter().filter(|g| g.role == Role::Gpu)
    }

    /// Whether the spec expects at least one GPU.
    pub fn expects_gpus(&self) -> bool {
        self.gpu_groups().any(|g| g.expected_at_least() > 0)
    }
}

/// Detection rules. Every rule given must hold; a spec with no rules is never
/// detected (only chosen by name, or as the `generic` fallback).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// `x86_64` or `aarch64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Each entry: at least `min_count` PCI functions with one of `ids`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci: Vec<PciPresence>,
    /// Any of these substrings in DMI `product_name` (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dmi_product_name: Vec<String>,
    /// Any of these substrings in DMI `board_name` (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dmi_board_name: Vec<String>,
}

impl MatchRules {
    pub fn is_empty(&self) -> bool {
        self.architecture.is_none()
            && self.pci.is_empty()
            && self.dmi_product_name.is_empty()
            && self.dmi_board_name.is_empty()
    }

    /// How many rules there are: a spec whose rules all hold and that has
    /// more of them is the more specific match.
    pub fn specificity(&self) -> usize {
        usize::from(self.architecture.is_some())
            + self.pci.len()
            + usize::from(!self.dmi_product_name.is_empty())
            + usize::from(!self.dmi_board_name.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciPresence {
    pub ids: Vec<PciId>,
    #[serde(default = "one")]
    pub min_count: u32,
}

fn one() -> u32 {
    1
}

/// What a device group is, in the technician's words; also the prefix of
/// its check ids (`gpu.count`, `nic.count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Gpu,
    Nic,
    Dpu,
    Nvme,
    Nvswitch,
    PcieSwitch,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gpu => "gpu",
            Role::Nic => "nic",
            Role::Dpu => "dpu",
            Role::Nvme => "nvme",
            Role::Nvswitch => "nvswitch",
            Role::PcieSwitch => "pcie_switch",
        }
    }

    /// Plural noun for messages: "8/8 GPUs".
    pub fn plural(self) -> &'static str {
        match self {
            Role::Gpu => "GPUs",
            Role::Nic => "NICs",
            Role::Dpu => "DPU functions",
            Role::Nvme => "NVMe drives",
            Role::Nvswitch => "NVSwitch functions",
            Role::PcieSwitch => "PCIe switch functions",
        }
    }

    /// Singular noun for messages: "GPU at 0000:1b:00.0".
    pub fn singular(self) -> &'static str {
        match self {
            Role::Gpu => "GPU",
            Role::Nic => "NIC",
            Role::Dpu => "DPU function",
            Role::Nvme => "NVMe drive",
            Role::Nvswitch => "NVSwitch function",
            Role::PcieSwitch => "PCIe switch function",
        }
    }
}

/// A group of PCI functions expected on the node, matched by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroup {
    pub role: Role,
    /// Display name for messages, `B200` or `ConnectX-7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A function with any of these ids belongs to the group.
    pub ids: Vec<PciId>,
    /// Exactly this many functions. Exactly one of `count` and `min_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// At least this many functions (NVMe bays that vary by order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkRules>,
    /// Expected NUMA node of each function, in PCI address order; its length
    /// must equal `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<Vec<u32>>,
    /// Lowest acceptable firmware: VBIOS for GPUs, the ethtool firmware for
    /// NICs and DPUs, the controller firmware for NVMe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_min: Option<String>,
}

impl DeviceGroup {
    pub fn matches(&self, device: &crate::model::PciDevice) -> bool {
        self.ids.iter().any(|id| id.matches(device))
    }

    /// The fewest functions the group accepts.
    pub fn expected_at_least(&self) -> u32 {
        self.count.or(self.min_count).unwrap_or(0)
    }

    /// `B200 GPUs` or `GPUs (10de:2901, 10de:2909)` for messages.
    pub fn describe(&self) -> String {
        match &self.label {
            Some(l) => format!("{l} {}", self.role.plural()),
            None => format!("{} ({})", self.role.plural(), super::pci_id::join_ids(&self.ids)),
        }
    }
}

/// How the current link speed is judged. Idle GPUs lower their link speed to
/// save power (a Gen5 GPU reads 2.5 GT/s at rest), so for GPUs the default is
/// `max`: the capability of both link ends must reach the expected speed,
/// and the trained speed is left to the burn-in, which judges it under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeedCheck {
    /// The lower of the device's and its upstream port's max speed must reach
    /// the expected speed.
    Max,
    /// The current (trained) speed must reach the expected speed.
    Current,
    /// Speed is not judged.
    None,
}

/// The expected PCIe link of every function in a group. An absent field is
/// not asserted (GB200 GPUs sit on NVLink-C2C, not a PCIe x16 link).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRules {
    /// Expected speed in GT/s: 2.5, 5, 8, 16, 32 or 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_gts: Option<f64>,
    /// Expected current width (lanes); judged against the trained width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Default: `max` for GPUs (they downtrain when idle), `current` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_speed: Option<SpeedCheck>,
}

impl LinkRules {
    pub fn speed_check(&self, role: Role) -> SpeedCheck {
        self.check_speed.unwrap_or(if role == Role::Gpu { SpeedCheck::Max } else { SpeedCheck::Current })
    }
}

/// PCIe Advanced Error Reporting budgets, over every function that reports AER.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AerRules {
    /// Most fatal uncorrectable errors allowed since boot (normally 0).
    #[serde(default)]
    pub fatal_max: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonfatal_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correctable_max: Option<u64>,
}

/// NVLink expectations per GPU. When this section is present NVLink must be
/// inspected: a node without a driver gets an error, never a pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvLinkRules {
    /// Links every GPU must have, all active.
    pub links_per_gpu: u32,
    /// Lowest acceptable per-link speed in MB/s as NVML reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_speed_mbps: Option<u64>,
    /// Error counter budgets per GPU (sum over its links); absent = not judged.
    #[serde(default, skip_serializing_if = "NvLinkErrorBudget::is_empty")]
    pub errors: NvLinkErrorBudget,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvLinkErrorBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_flit_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc_data_max: Option<u64>,
}

impl NvLinkErrorBudget {
    pub fn is_empty(&self) -> bool {
        self.replay_max.is_none()
            && self.recovery_max.is_none()
            && self.crc_flit_max.is_none()
            && self.crc_data_max.is_none()
    }
}

/// NVLink-C2C expectations per GPU. When this section is present C2C must be
/// inspected: no driver is an error; a driver that reports no C2C link is
/// `skipped`, never a pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct C2cRules {
    /// Fewest C2C links each GPU must report; every link reported must be active.
    #[serde(default = "one")]
    pub min_links: u32,
    /// Lowest acceptable bandwidth per active link, MB/s as NVML reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bandwidth_mbps: Option<u64>,
    /// Error counter budgets per GPU since driver load; absent = not judged.
    #[serde(default, skip_serializing_if = "C2cErrorBudget::is_empty")]
    pub errors: C2cErrorBudget,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct C2cErrorBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_b2b_max: Option<u64>,
}

impl C2cErrorBudget {
    pub fn is_empty(&self) -> bool {
        self.interrupts_max.is_none() && self.replay_max.is_none() && self.replay_b2b_max.is_none()
    }
}

/// NVLink fabric registration (Fabric Manager / NVLink Subnet Manager).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabricRules {
    /// Every GPU must be in state `completed` with status success.
    #[serde(default = "yes")]
    pub require_completed: bool,
    /// Every GPU must report the same cluster UUID and clique id.
    #[serde(default = "yes")]
    pub same_clique: bool,
    /// Every field of each registered GPU's fabric health mask is judged
    /// (degraded bandwidth, route recovery and health, access-timeout
    /// recovery, incorrect configuration); a field the driver does not
    /// report is skipped.
    #[serde(default = "yes")]
    pub health: bool,
}

fn yes() -> bool {
    true
}

/// GPU memory health. Pending and failed row remaps always fail when this
/// section is present: they are never normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuHealthRules {
    /// Most volatile (since driver load) uncorrectable ECC errors allowed.
    #[serde(default)]
    pub ecc_volatile_uncorrected_max: u64,
    /// Most retired pages allowed (single + double bit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_pages_max: Option<u64>,
}

/// One multi-node NVLink domain: `gpus` GPUs in `trays` compute trays (GB200
/// NVL72: 72 GPUs in 18 trays of 4), all registered in one fabric cluster and
/// clique. The rack checks judge the trays of such a platform together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvlinkDomain {
    /// GPUs in the whole domain.
    pub gpus: u32,
    /// Compute trays (nodes) in the domain.
    pub trays: u32,
    /// Hand the domain to a cluster whole or not at all: while any tray is
    /// not healthy, `kiln rack handoff` holds every tray of it (unless
    /// `--partial`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub all_or_nothing: bool,
}

impl NvlinkDomain {
    /// GPUs per tray; `gpus` is a multiple of `trays` in a valid spec.
    pub fn gpus_per_tray(&self) -> u32 {
        self.gpus.checked_div(self.trays).unwrap_or(0)
    }
}

/// Node-wide minimum versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareRules {
    /// Lowest acceptable DMI BIOS version (dotted numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_min: Option<String>,
    /// Lowest acceptable NVIDIA driver version, `570.124.06`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_min: Option<String>,
}
