//! `FirmwareItem`: one entry of a BMC's firmware inventory, and its inventory component form.

use serde::Serialize;

use crate::checks::Component;
use crate::inventory::ComponentRecord;

/// One member of `UpdateService/FirmwareInventory` (a Redfish SoftwareInventory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirmwareItem {
    /// The resource's `Id` (`HGX_FW_GPU_0`, `FW_BMC_0`, `UEFI`): stable and
    /// unique on one BMC, unlike `Name`, which NVIDIA BMCs set to
    /// "Software Inventory" on every member.
    pub id: String,
    pub name: String,
    /// `Version` with surrounding blanks removed (GH200 pads GPU versions).
    pub version: Option<String>,
    pub updateable: Option<bool>,
    /// The part this firmware runs on (first `RelatedItem`), e.g. `/redfish/v1/Chassis/HGX_GPU_0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
    /// That part's `SerialNumber`, where the BMC lists one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Why this member could not be read, when it could not: it stays in the
    /// list (with no version) so "could not read" is never taken for "absent".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The member's `@odata.id`, the `Targets` URI of an update of it. Not part of the
    /// `kiln bmc firmware` JSON.
    #[serde(skip)]
    pub path: Option<String>,
}

/// A firmware item as the inventory records it: kind `firmware`, a name, a
/// version and, where known, the serial of the part it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirmwareComponent {
    pub kind: &'static str,
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

impl FirmwareItem {
    /// The inventory form. A missing version is recorded as `unknown`, never as
    /// an empty string, so a rack-wide comparison shows it as a difference.
    pub fn inventory_component(&self) -> FirmwareComponent {
        FirmwareComponent {
            kind: "firmware",
            name: self.id.clone(),
            version: self.version.clone().unwrap_or_else(|| "unknown".to_string()),
            serial: self.serial.clone(),
        }
    }

    /// The inventory's component record of this item: kind `firmware`, the
    /// item's `Id` as its place (`address`), its version as `firmware`
    /// (none when it could not be read: an unread value is never a change),
    /// the serial of the part it runs on, and the rest in `extra`.
    pub fn component_record(&self) -> ComponentRecord {
        let mut extra = serde_json::Map::new();
        extra.insert("name".into(), self.name.clone().into());
        if let Some(r) = &self.related {
            extra.insert("related".into(), r.clone().into());
        }
        if let Some(u) = self.updateable {
            extra.insert("updateable".into(), u.into());
        }
        if let Some(p) = &self.problem {
            extra.insert("problem".into(), p.clone().into());
        }
        ComponentRecord {
            kind: "firmware".into(),
            slot: None,
            address: Some(self.id.clone()),
            vendor: None,
            model: None,
            serial: self.serial.clone(),
            firmware: self.version.clone(),
            extra,
        }
    }

    /// The `Component` a finding about this firmware points at.
    pub fn component(&self) -> Component {
        Component {
            kind: "firmware".into(),
            address: self.related.clone(),
            serial: self.serial.clone(),
            name: Some(self.id.clone()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(version: Option<&str>) -> FirmwareItem {
        FirmwareItem {
            id: "HGX_FW_GPU_0".into(),
            name: "Software Inventory".into(),
            version: version.map(str::to_string),
            updateable: Some(true),
            related: Some("/redfish/v1/Chassis/HGX_GPU_0".into()),
            serial: Some("1654123456789".into()),
            problem: None,
            path: Some("/redfish/v1/UpdateService/FirmwareInventory/HGX_FW_GPU_0".into()),
        }
    }

    #[test]
    fn inventory_component_uses_the_id_and_keeps_the_serial() {
        let c = item(Some("96.00.A6.00.01")).inventory_component();
        assert_eq!(c.kind, "firmware");
        assert_eq!(c.name, "HGX_FW_GPU_0");
        assert_eq!(c.version, "96.00.A6.00.01");
        assert_eq!(c.serial.as_deref(), Some("1654123456789"));
    }

    #[test]
    fn missing_version_is_unknown_not_empty() {
        assert_eq!(item(None).inventory_component().version, "unknown");
    }

    #[test]
    fn component_record_places_the_item_by_id() {
        let r = item(Some("96.00.A6.00.01")).component_record();
        assert_eq!((r.kind.as_str(), r.address.as_deref()), ("firmware", Some("HGX_FW_GPU_0")));
        assert_eq!((r.firmware.as_deref(), r.serial.as_deref()), (Some("96.00.A6.00.01"), Some("1654123456789")));
        assert_eq!(r.extra["related"], "/redfish/v1/Chassis/HGX_GPU_0");
        let unread = FirmwareItem { problem: Some("GET answered 500".into()), ..item(None) }.component_record();
        assert_eq!(unread.firmware, None);
        assert_eq!(unread.extra["problem"], "GET answered 500");
    }

    #[test]
    fn component_points_at_the_part() {
        let c = item(Some("1")).component();
        assert_eq!(c.kind, "firmware");
        assert_eq!(c.address.as_deref(), Some("/redfish/v1/Chassis/HGX_GPU_0"));
        assert_eq!(c.name.as_deref(), Some("HGX_FW_GPU_0"));
    }
}
