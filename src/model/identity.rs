//! Which machine a node is: its DMI system UUID and serials, and on an NVL72 tray the NVML chassis
//! serial and tray index. The inventory keys a node by this, never by its hostname.

use serde::{Deserialize, Serialize};

use super::{Dmi, Node, PlatformInfo};

/// What identifies the machine a node model was read from. Every field is `None` when it was not
/// read or holds a firmware placeholder (`To Be Filled By O.E.M.`, an all-zero UUID): a value
/// shared by many machines identifies none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineIdentity {
    /// DMI system UUID (`product_uuid`), lower case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_uuid: Option<String>,
    /// DMI system serial (`product_serial`): the serial on the chassis label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_serial: Option<String>,
    /// DMI baseboard serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_serial: Option<String>,
    /// NVML platform info of the first GPU that has it (NVL72 trays): the rack chassis serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chassis_serial: Option<String>,
    /// NVML platform info: the tray's index in its chassis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tray_index: Option<u32>,
}

impl MachineIdentity {
    /// The identity of the machine `node` was read from.
    pub fn of(node: &Node) -> MachineIdentity {
        let platform = node.gpus.gpus().iter().find_map(|g| g.platform.as_ref());
        MachineIdentity::from_parts(&node.dmi, platform)
    }

    /// The identity from a node's DMI strings and the NVML platform info of one of its GPUs.
    pub fn from_parts(dmi: &Dmi, platform: Option<&PlatformInfo>) -> MachineIdentity {
        MachineIdentity {
            system_uuid: dmi.product_uuid.as_deref().and_then(real_uuid),
            system_serial: dmi.product_serial.as_deref().and_then(real_serial),
            board_serial: dmi.board_serial.as_deref().and_then(real_serial),
            chassis_serial: platform.and_then(|p| p.chassis_serial.as_deref()).and_then(real_serial),
            tray_index: platform.filter(|p| p.chassis_serial.is_some()).map(|p| p.tray_index),
        }
    }

    /// The one text the inventory keys the machine by: the system UUID, else the system serial,
    /// else the board serial (`uuid:...`, `serial:...`, `board:...`). The NVML chassis serial
    /// and tray index name a place in a rack, not a machine, so they are no key. `None` when
    /// nothing identifies the machine (a VM without DMI, a model without a host).
    pub fn key(&self) -> Option<String> {
        if let Some(u) = &self.system_uuid {
            Some(format!("uuid:{u}"))
        } else if let Some(s) = &self.system_serial {
            Some(format!("serial:{s}"))
        } else {
            self.board_serial.as_ref().map(|b| format!("board:{b}"))
        }
    }

    /// The machine as a technician reads it off the label: `serial 1654225000123`, else the
    /// board serial, else the UUID, with the NVL72 chassis and tray when there are ones;
    /// `None` when nothing identifies it.
    pub fn describe(&self) -> Option<String> {
        // An NVL72 tray's chassis is its rack; an HGX board reports its own serial there.
        let place = match (&self.chassis_serial, self.tray_index) {
            (Some(c), Some(t)) if Some(c) != self.system_serial.as_ref() => format!(" (chassis {c} tray {t})"),
            _ => String::new(),
        };
        let what = if let Some(s) = &self.system_serial {
            format!("serial {s}")
        } else if let Some(b) = &self.board_serial {
            format!("board serial {b}")
        } else {
            format!("system UUID {}", self.system_uuid.as_ref()?)
        };
        Some(what + &place)
    }
}

/// Firmware fills unset DMI strings with these; many machines carry the same one.
const PLACEHOLDERS: &[&str] = &[
    "",
    "0",
    "none",
    "n/a",
    "na",
    "unknown",
    "not specified",
    "not applicable",
    "not available",
    "default string",
    "to be filled by o.e.m.",
    "to be filled by oem",
    "system serial number",
    "base board serial number",
    "chassis serial number",
    "serial number",
    "0123456789",
    "1234567890",
    "123456789",
    "xxxxxxxxxx",
];

fn real_serial(s: &str) -> Option<String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let filler = !t.is_empty() && t.chars().all(|c| c == t.chars().next().unwrap_or('0')) && t.len() > 2;
    (!PLACEHOLDERS.contains(&lower.as_str()) && !filler).then(|| t.to_string())
}

fn real_uuid(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    let placeholder = hex.is_empty()
        || hex.chars().all(|c| c == '0')
        || hex.chars().all(|c| c == 'f')
        // What many boards ship before the UUID is programmed.
        || hex == "03000200040005000006000700080009";
    (!placeholder && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_identify_nothing() {
        for s in ["To Be Filled By O.E.M.", "Default string", " ", "0000000000", "System Serial Number", "N/A"] {
            assert_eq!(real_serial(s), None, "{s:?}");
        }
        assert_eq!(real_serial(" 1654225000123 ").as_deref(), Some("1654225000123"));
        assert_eq!(real_uuid("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(real_uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"), None);
        assert_eq!(real_uuid("03000200-0400-0500-0006-000700080009"), None);
        assert_eq!(real_uuid("not-a-uuid"), None);
        assert_eq!(
            real_uuid("6E1F0C2A-3B4D-4E5F-8A9B-165422500012").as_deref(),
            Some("6e1f0c2a-3b4d-4e5f-8a9b-165422500012")
        );
    }

    #[test]
    fn the_key_prefers_the_uuid_then_the_system_then_the_board_serial() {
        let mut id = MachineIdentity {
            system_uuid: Some("6e1f0c2a-3b4d-4e5f-8a9b-165422500012".into()),
            system_serial: Some("S1".into()),
            board_serial: Some("B1".into()),
            chassis_serial: Some("C1".into()),
            tray_index: Some(7),
        };
        assert_eq!(id.key().as_deref(), Some("uuid:6e1f0c2a-3b4d-4e5f-8a9b-165422500012"));
        assert_eq!(id.describe().as_deref(), Some("serial S1 (chassis C1 tray 7)"));
        id.system_uuid = None;
        assert_eq!(id.key().as_deref(), Some("serial:S1"));
        id.system_serial = None;
        assert_eq!(id.key().as_deref(), Some("board:B1"));
        id.board_serial = None;
        assert_eq!(id.key(), None, "a place in a rack is not a machine");
    }
}
