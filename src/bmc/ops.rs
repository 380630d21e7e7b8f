//! The `Bmc` trait: the few operations kiln asks of a node's BMC, and their values.
//!
//! Two backends implement it: Redfish over HTTPS (`redfish.rs`) and ipmitool
//! (`ipmi.rs`, power and boot device only). Everything above this trait sees
//! plain values and `BmcError`s.

use std::fmt;

use serde::Serialize;

use super::{BmcError, FirmwareItem};

/// What a BMC says about the host's power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    /// A value the BMC sent that Redfish does not define (kept verbatim).
    Other(String),
}

impl PowerState {
    /// Parse Redfish's `PowerState` property (`On`, `Off`, `PoweringOn`, `PoweringOff`).
    pub fn from_redfish(value: &str) -> Self {
        match value {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            other => PowerState::Other(other.to_string()),
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerState::On => f.write_str("on"),
            PowerState::Off => f.write_str("off"),
            PowerState::PoweringOn => f.write_str("powering-on"),
            PowerState::PoweringOff => f.write_str("powering-off"),
            PowerState::Other(s) => write!(f, "other ({s})"),
        }
    }
}

/// A power change to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerAction {
    On,
    /// Ask the operating system to shut down (ACPI soft off).
    Off,
    /// Cut power now, without asking the operating system.
    ForceOff,
    /// Hard reset now.
    Reset,
    /// Ask the operating system to restart.
    GracefulRestart,
}

impl PowerAction {
    /// Redfish `ResetType` values that carry out this action, preferred first.
    /// Where a BMC lists the values it allows, the first allowed one is sent.
    pub fn redfish_reset_types(self) -> &'static [&'static str] {
        match self {
            PowerAction::On => &["On", "ForceOn"],
            PowerAction::Off => &["GracefulShutdown"],
            PowerAction::ForceOff => &["ForceOff"],
            PowerAction::Reset => &["ForceRestart", "PowerCycle"],
            PowerAction::GracefulRestart => &["GracefulRestart"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::ForceOff => "force-off",
            PowerAction::Reset => "reset",
            PowerAction::GracefulRestart => "graceful-restart",
        }
    }
}

/// Where the host boots from on its next boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootTarget {
    Pxe,
    Cd,
    Hdd,
}

impl BootTarget {
    /// Redfish `BootSourceOverrideTarget` value.
    pub fn redfish(self) -> &'static str {
        match self {
            BootTarget::Pxe => "Pxe",
            BootTarget::Cd => "Cd",
            BootTarget::Hdd => "Hdd",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BootTarget::Pxe => "pxe",
            BootTarget::Cd => "cd",
            BootTarget::Hdd => "hdd",
        }
    }
}

/// Who the node is, as its BMC reports it. Any field may be absent: real BMCs
/// leave some empty (the GH200 host system has no serial of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The ComputerSystem resource the answers came from.
    pub system: Option<String>,
    pub system_serial: Option<String>,
    /// The chassis the system links to (its first `Links.Chassis` member).
    pub chassis: Option<String>,
    pub chassis_serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub part_number: Option<String>,
    pub uuid: Option<String>,
    /// The BMC's own firmware version (Manager `FirmwareVersion`).
    pub bmc_firmware: Option<String>,
    /// Linked resources that could not be read (the fields they would fill stay empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The operations kiln needs from a BMC. Each call is one complete exchange
/// with retries inside; an `Err` names the BMC and what failed.
pub trait Bmc {
    /// The BMC in words for messages: `https://10.77.0.111:8000 (node01)`.
    fn label(&self) -> &str;

    fn power_state(&self) -> Result<PowerState, BmcError>;

    /// Ask for a power change. Returns once the BMC accepted the request; the
    /// change itself may land seconds later (poll `power_state`).
    fn power(&self, action: PowerAction) -> Result<(), BmcError>;

    /// Boot from `target` on the next boot only.
    fn set_boot_once(&self, target: BootTarget) -> Result<(), BmcError>;

    /// Whether this backend can attach virtual media at all (Redfish can, IPMI cannot), so that a
    /// caller can refuse before touching the node rather than fail halfway.
    fn has_virtual_media(&self) -> bool {
        true
    }

    /// Attach the image at `url` to the BMC's virtual CD/DVD drive.
    fn insert_media(&self, url: &str) -> Result<(), BmcError>;

    /// Detach whatever the virtual CD/DVD drive holds.
    fn eject_media(&self) -> Result<(), BmcError>;

    /// Every firmware component the BMC lists, with its version.
    fn firmware_inventory(&self) -> Result<Vec<FirmwareItem>, BmcError>;

    fn identity(&self) -> Result<Identity, BmcError>;
}
