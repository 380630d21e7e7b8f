//! `PciId`: a `vendor:device` pair as specs write it (`10de:2901`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::PciDevice;

/// A PCI vendor and device id. Specs match hardware on ids, never on names:
/// names differ between pci.ids versions, ids do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
}

impl PciId {
    pub fn new(vendor: u16, device: u16) -> Self {
        PciId { vendor, device }
    }

    pub fn of(device: &PciDevice) -> Self {
        PciId { vendor: device.vendor_id, device: device.device_id }
    }

    pub fn matches(&self, device: &PciDevice) -> bool {
        self.vendor == device.vendor_id && self.device == device.device_id
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

/// Why a string is not a `vendor:device` id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pci id {text:?}: expected vendor:device as two 4-digit hex numbers, like \"10de:2901\"")]
pub struct PciIdError {
    pub text: String,
}

impl FromStr for PciId {
    type Err = PciIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PciIdError { text: s.to_string() };
        let (v, d) = s.split_once(':').ok_or_else(err)?;
        let hex4 = |p: &str| {
            if p.len() == 4 && p.chars().all(|c| c.is_ascii_hexdigit()) {
                u16::from_str_radix(p, 16).ok()
            } else {
                None
            }
        };
        Ok(PciId { vendor: hex4(v).ok_or_else(err)?, device: hex4(d).ok_or_else(err)? })
    }
}

impl Serialize for PciId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Joins ids for messages: `10de:2901, 10de:2909`.
pub fn join_ids(ids: &[PciId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_lowercase() {
        let id: PciId = "10DE:2901".parse().expect("valid id");
        assert_eq!(id, PciId::new(0x10de, 0x2901));
        assert_eq!(id.to_string(), "10de:2901");
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in ["10de:zzzz", "10de2901", "10de:290", "10de:29011", ":2901", "10de:", "", "0x10de:2901"] {
            assert!(bad.parse::<PciId>().is_err(), "{bad:?} should be rejected");
        }
    }
}
