//! `Recipe`: a pinned firmware set for one platform and tray kind, as data
//! (`checks/firmware/*.toml`; the format is documented in `docs/firmware.md`).
//!
//! A recipe lists components, each matched on the node by its BMC's firmware inventory, by a
//! property of its ComputerSystem, or by what inspection read in-band, with the version it must
//! run and where that version came from; and the packages that carry new versions, with how
//! they are sent and how carefully.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::version::Scheme;
use crate::checks::pci_id::PciId;

/// One firmware recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Used with `--recipe`: lowercase letters, digits and `-`.
    pub name: String,
    pub description: String,
    /// The platform spec this recipe is for (`gb200-nvl72-tray`), when it is for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Which box of the platform it pins.
    pub tray: Tray,
    /// Where the set as a whole comes from (a release, a bundle, a qualification run).
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
}

impl Recipe {
    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.id == id)
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }
}

/// The kind of box a recipe pins: GB200 racks ship firmware per tray kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tray {
    /// A GB200 compute tray (2 Grace, 4 GPUs, its own BMC).
    Compute,
    /// An NVLink switch tray.
    Switch,
    /// A whole server (HGX/DGX B200, a GH200 node).
    Node,
    /// A BlueField DPU with its own BMC.
    Dpu,
    PowerShelf,
}

impl Tray {
    pub fn as_str(self) -> &'static str {
        match self {
            Tray::Compute => "compute",
            Tray::Switch => "switch",
            Tray::Node => "node",
            Tray::Dpu => "dpu",
            Tray::PowerShelf => "power-shelf",
        }
    }
}

/// One pinned firmware component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Short id; the check id of its findings is `firmware.<id>`. Lowercase letters, digits, `_`.
    pub id: String,
    /// In the technician's words: `GPU firmware (VBIOS)`.
    pub name: String,
    /// The version every instance must run.
    pub version: String,
    #[serde(default)]
    pub scheme: Scheme,
    /// Text every reported version starts with (`GH200-`); it must be there to parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Where the pinned version came from (release notes, a recorded BMC, a qualification).
    pub source: String,
    /// The version is an example with no public source: replace it before relying on it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub example: bool,
    /// Out of date is reported but does not fail the node.
    #[serde(default, skip_serializing_if = "is_false")]
    pub advisory: bool,
    /// A newer version than pinned is compliant (by default newer is a mismatch: a recipe pins).
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_newer: bool,
    /// How many instances the node must report (4 GPUs); absent: at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// What a new version needs to take effect.
    #[serde(default)]
    pub activation: Activation,
    /// The `id` of the package that carries the pinned version; none: kiln cannot update it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Match,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where a component is found. Exactly one of `redfish`, `redfish_property` and `inband`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// `UpdateService/FirmwareInventory` member `Id`s, exact or with `*`, `?` and `[...]`
    /// (`HGX_FW_GPU_*`). NVIDIA BMCs name every member "Software Inventory", so `Id` is what
    /// tells them apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redfish: Vec<String>,
    /// A version property of the BMC's ComputerSystem or Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redfish_property: Option<RedfishProperty>,
    /// A version inspection read on the node itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inband: Option<InBand>,
    /// For `inband` NIC, DPU and NVMe firmware: the PCI functions that count (`15b3:1021`);
    /// absent: every function inspection read a version for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_ids: Vec<PciId>,
}

/// Version properties a BMC reports outside its firmware inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedfishProperty {
    /// `ComputerSystem.BiosVersion` (the sushy-tools emulator has no firmware inventory).
    BiosVersion,
    /// `Manager.FirmwareVersion`: the BMC's own firmware.
    ManagerFirmwareVersion,
}

impl RedfishProperty {
    pub fn as_str(self) -> &'static str {
        match self {
            RedfishProperty::BiosVersion => "BiosVersion",
            RedfishProperty::ManagerFirmwareVersion => "ManagerFirmwareVersion",
        }
    }
}

/// Versions read on the node by `kiln inspect` (the node model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InBand {
    /// Each GPU's VBIOS (NVML).
    Vbios,
    /// The NVIDIA driver (NVML).
    Driver,
    /// DMI `bios_version`.
    Bios,
    /// Firmware of network ports that are not DPU functions (ethtool).
    Nic,
    /// Firmware of BlueField DPU functions (ethtool).
    Dpu,
    /// NVMe controller firmware (sysfs).
    Nvme,
}

impl InBand {
    pub fn as_str(self) -> &'static str {
        match self {
            InBand::Vbios => "vbios",
            InBand::Driver => "driver",
            InBand::Bios => "bios",
            InBand::Nic => "nic",
            InBand::Dpu => "dpu",
            InBand::Nvme => "nvme",
        }
    }
}

/// What a new version needs before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// It runs once the update completes (a BMC restarts itself).
    #[default]
    None,
    /// A host reset (`ComputerSystem.Reset` `ForceRestart`): BIOS, VBIOS.
    HostReset,
    /// Power removed from the whole tray, standby rail included: CPLD, ERoT, compute-tray
    /// bundles (NVIDIA's AC cycle, `NvidiaChassis.AuxPowerReset`).
    AcPowerCycle,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::HostReset => "host-reset",
            Activation::AcPowerCycle => "ac-power-cycle",
        }
    }
}

/// A firmware package: one file that carries one or more components' new versions (NVIDIA's
/// `.fwpkg` bundles update many at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Referred to by components' `package`.
    pub id: String,
    /// The file: absolute, or relative to the package directory given at update time.
    pub file: PathBuf,
    /// SHA-256 of the file, 64 hex digits; a file that differs is refused before anything is sent.
    pub sha256: String,
    #[serde(default)]
    pub method: Method,
    /// `Targets` of the update: Redfish URIs. Absent: the inventory members its components
    /// matched (or the system, for `BiosVersion`). Empty: the BMC decides from the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// `@Redfish.OperationApplyTime` of a push (`Immediate`, `OnReset`); absent: not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_time: Option<String>,
    /// Seconds to wait after this package's Task completes before the next push to the same BMC.
    #[serde(default)]
    pub delay_s: u64,
    /// How many nodes may run this update at once.
    #[serde(default)]
    pub one_at_a_time: Exclusive,
    /// Longest wait for the update's Task, in seconds.
    #[serde(default = "default_task_timeout")]
    pub task_timeout_s: u64,
}

fn default_task_timeout() -> u64 {
    1800
}

/// How a package reaches the BMC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// POSTed to `UpdateService.MultipartHttpPushUri` (multipart/form-data).
    #[default]
    MultipartPush,
    /// `UpdateService.SimpleUpdate` with an `ImageURI` served by kiln's HTTP server.
    SimpleUpdate,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::MultipartPush => "multipart-push",
            Method::SimpleUpdate => "simple-update",
        }
    }
}

/// The one-at-a-time rule of a package. Every BMC takes one update at a time in any case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exclusive {
    /// One update at a time per BMC; nodes update in parallel.
    #[default]
    Bmc,
    /// One node of the rack at a time (switch trays: updating them together takes the NVLink
    /// fabric down).
    Rack,
}
