//! `BmcVersions`: every firmware version a BMC reports, read once for a compliance check: its
//! firmware inventory, the system's `BiosVersion` and the manager's `FirmwareVersion`.
//!
//! Nothing here aborts on the first problem: each part is read on its own and a part that cannot
//! be read says why, so "could not read" is never taken for "absent" (and the reverse).

use serde::Serialize;

use super::redfish::{link_list, text};
use super::{Bmc, BmcError, FirmwareItem, RedfishBmc};

/// What the firmware inventory read came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum InventoryRead {
    /// The members, each with its version or why it could not be read.
    Listed { items: Vec<FirmwareItem> },
    /// The BMC has no firmware inventory (no `UpdateService`, or 404: the sushy-tools emulator).
    Absent { why: String },
    /// It could not be read (transport, 5xx, refused credentials).
    Failed { why: String },
}

/// A version property: its value (`None` when the resource has no such property), or why the
/// resource could not be read.
pub type PropertyRead = Result<Option<String>, String>;

/// Every version a BMC reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BmcVersions {
    /// The BMC in words: `https://10.77.0.111 (node01)`.
    pub bmc: String,
    pub inventory: InventoryRead,
    /// The ComputerSystem read, when it could be found.
    pub system: Option<String>,
    /// `ComputerSystem.BiosVersion`.
    pub bios_version: PropertyRead,
    /// The Manager that manages the system, when it links one.
    pub manager: Option<String>,
    /// `Manager.FirmwareVersion` of that manager.
    pub manager_firmware: PropertyRead,
}

impl RedfishBmc {
    /// Read every version the BMC reports. Never fails as a whole: each part carries its own
    /// outcome.
    pub fn firmware_versions(&self) -> BmcVersions {
        let inventory = match self.firmware_inventory() {
            Ok(items) => InventoryRead::Listed { items },
            Err(e @ BmcError::NotSupported { .. }) => InventoryRead::Absent { why: e.to_string() },
            Err(e @ BmcError::Status { status: 404, .. }) => InventoryRead::Absent { why: e.to_string() },
            Err(e) => InventoryRead::Failed { why: e.to_string() },
        };
        let system = self.system_path().and_then(|path| Ok((path.clone(), self.client().get(&path)?.body)));
        let (system_path, bios_version, manager, manager_firmware) = match system {
            Ok((path, body)) => {
                let manager = link_list(&body, "/Links/ManagedBy").into_iter().next();
                let firmware = match &manager {
                    Some(m) => {
                        self.client().get(m).map(|r| text(&r.body, "FirmwareVersion")).map_err(|e| e.to_string())
                    }
                    None => Ok(None),
                };
                (Some(path), Ok(text(&body, "BiosVersion")), manager, firmware)
            }
            Err(e) => (None, Err(e.to_string()), None, Err(e.to_string())),
        };
        BmcVersions {
            bmc: self.label().to_string(),
            inventory,
            system: system_path,
            bios_version,
            manager,
            manager_firmware,
        }
    }
}
