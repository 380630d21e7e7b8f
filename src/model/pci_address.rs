//! `PciAddress`: a PCI function's domain:bus:device.function, the one type every part of kiln
//! uses for it.
//!
//! `src/hw` parses the text the machine gives (sysfs directory names, NVML bus ids) into a
//! `PciAddress` once; the model, the checks, the inventory and the reports compare and print the
//! typed value. It is written in sysfs form, lowercase with a 4-digit domain (`0000:1b:00.0`), so
//! the model's JSON is what it has always been: a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PCI function's address. Ordered as the kernel orders functions: by domain, bus, device,
/// function, which for 4-digit domains is also the order of the sysfs names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

/// Why a text is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a PCI address (domain:bus:device.function, like 0000:1b:00.0): {why}")]
pub struct PciAddressError {
    pub text: String,
    pub why: &'static str,
}

impl PciAddress {
    /// The highest device number on a bus and the highest function number of a device.
    pub const MAX_DEVICE: u8 = 0x1f;
    pub const MAX_FUNCTION: u8 = 7;

    /// An address from its parts; `None` when the device (0-31) or function (0-7) is out of range.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device <= Self::MAX_DEVICE && function <= Self::MAX_FUNCTION).then_some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }

    pub fn domain(&self) -> u32 {
        self.domain
    }

    pub fn bus(&self) -> u8 {
        self.bus
    }

    pub fn device(&self) -> u8 {
        self.device
    }

    pub fn function(&self) -> u8 {
        self.function
    }

    /// The address without its function, as a physical slot's `address` file gives it
    /// (`0000:1b:00`).
    pub fn slot_address(&self) -> String {
        format!("{:04x}:{:02x}:{:02x}", self.domain, self.bus, self.device)
    }

    /// Parses every form kiln meets: sysfs (`0000:1b:00.0`), NVML's 8-digit domain
    /// (`00000000:1B:00.0`), either case, wide domains behind Intel VMD (`10000:e0:06.0`),
    /// and NVML's NUL-padded fixed-size buffers. Surrounding whitespace and trailing NULs are
    /// ignored; anything else that is not domain:bus:device.function is refused, never guessed.
    pub fn parse(text: &str) -> Result<Self, PciAddressError> {
        let bad = |why| PciAddressError { text: text.to_string(), why };
        let trimmed = text.trim_end_matches('\0').trim();
        let (rest, function) = trimmed.rsplit_once('.').ok_or_else(|| bad("no '.' before the function"))?;
        let mut parts = rest.split(':');
        let (Some(domain), Some(bus), Some(device), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected three ':'-separated fields before the '.'"));
        };
        let domain = hex(domain, 8).ok_or_else(|| bad("the domain is not 1 to 8 hex digits"))?;
        let bus = hex(bus, 2).ok_or_else(|| bad("the bus is not 1 or 2 hex digits"))?;
        let device = hex(device, 2).ok_or_else(|| bad("the device is not 1 or 2 hex digits"))?;
        let function = hex(function, 1).ok_or_else(|| bad("the function is not one hex digit"))?;
        let (Ok(bus), Ok(device), Ok(function)) = (u8::try_from(bus), u8::try_from(device), u8::try_from(function))
        else {
            return Err(bad("a field is out of range"));
        };
        if device > Self::MAX_DEVICE {
            return Err(bad("the device is above 1f"));
        }
        if function > Self::MAX_FUNCTION {
            return Err(bad("the function is above 7"));
        }
        Ok(PciAddress { domain, bus, device, function })
    }
}

/// 1 to `max_digits` hex digits, nothing else (no sign, no `0x`).
fn hex(text: &str, max_digits: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

impl FromStr for PciAddress {
    type Err = PciAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PciAddress::parse(text)
    }
}

/// sysfs form: lowercase, the domain in at least 4 digits (more only when it needs them).
/// Width and alignment apply (`{:<14}` in tables), as for a string.
impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function))
    }
}

/// Compares with text in any form `parse` accepts, so `address == "00000000:1B:00.0"` holds for
/// the GPU at `0000:1b:00.0`; text that is no address is equal to none.
impl PartialEq<str> for PciAddress {
    fn eq(&self, other: &str) -> bool {
        PciAddress::parse(other).is_ok_and(|a| a == *self)
    }
}

impl PartialEq<&str> for PciAddress {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for PciAddress {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PciAddress::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde for a GPU's `Option<PciAddress>` that NVML may not have given: `None` is the empty
/// string, as the model's JSON has always written it, so stored inventories still read.
pub mod empty_when_none {
    use super::PciAddress;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(address: &Option<PciAddress>, serializer: S) -> Result<S::Ok, S::Error> {
        match address {
            Some(a) => serializer.collect_str(a),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PciAddress>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(None);
        }
        PciAddress::parse(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<String> {
        PciAddress::parse(text).ok().map(|a| a.to_string())
    }

    /// The inputs on which the two normalisers this type replaced disagreed
    /// (`checks::rules::common::normalize_address` kept the last four domain digits and passed
    /// anything through; `hw::nvml::format::normalize_pci_address` parsed strictly), and the
    /// forms both handled: each has one answer now.
    #[test]
    fn every_form_kiln_meets_has_one_answer() {
        // sysfs, NVML's 8-digit domain, either case: the same GPU.
        assert_eq!(parsed("0000:1b:00.0").as_deref(), Some("0000:1b:00.0"));
        assert_eq!(parsed("00000000:1B:00.0").as_deref(), Some("0000:1b:00.0"));
        assert_eq!(parsed("0000:1B:00.0").as_deref(), Some("0000:1b:00.0"));
        assert_eq!(parsed("00000000:1b:00.0").as_deref(), Some("0000:1b:00.0"));
        // GB200's non-zero domains, in both forms.
        assert_eq!(parsed("0008:01:00.0").as_deref(), Some("0008:01:00.0"));
        assert_eq!(parsed("00000008:01:00.0").as_deref(), Some("0008:01:00.0"));
        assert_eq!(parsed("00000019:01:00.0").as_deref(), Some("0019:01:00.0"));
        // Disagreement 1: a domain above ffff (Intel VMD). The old checks normaliser kept the
        // last four digits, which made it domain 0's 0000:01:00.0, another device.
        assert_eq!(parsed("00010000:01:00.0").as_deref(), Some("10000:01:00.0"));
        assert_eq!(parsed("10000:e0:06.0").as_deref(), Some("10000:e0:06.0"));
        // Disagreement 2: NVML's NUL-padded buffer; the NULs stayed in the old checks' key.
        assert_eq!(parsed("00000000:3D:00.0\0\0").as_deref(), Some("0000:3d:00.0"));
        // Disagreement 3: short fields; the old checks' key was "0:1b:0.0", matching nothing.
        assert_eq!(parsed("0:1b:0.0").as_deref(), Some("0000:1b:00.0"));
        assert_eq!(parsed(" 0000:c1:00.1\n").as_deref(), Some("0000:c1:00.1"));
        // Disagreement 4: text that is no address was passed through as one; now it is refused.
        for bad in [
            "",
            "N/A",
            "gpu0",
            "pci0000:00",
            "0000:1b:00",
            "0000:1b.00.0",
            "000000000:1b:00.0",
            "0000:1g:00.0",
            "0000:1b:20.0",
            "0000:1b:00.8",
            "0000:+1:00.0",
            "0000:1b:00.0.1",
            "0000:123:00.0",
            "ééééé:1b",
        ] {
            assert_eq!(PciAddress::parse(bad).ok(), None, "{bad:?}");
        }
    }

    #[test]
    fn compares_with_text_in_any_form_and_orders_like_the_kernel() {
        let gpu = PciAddress::parse("0000:1b:00.0").expect("address");
        assert!(gpu == "00000000:1B:00.0" && gpu == "0000:1b:00.0" && gpu != "0000:1b:00.1" && gpu != "gpu0");
        let mut v: Vec<PciAddress> = ["0009:01:00.0", "0000:1b:00.0", "0000:1b:00.1", "0008:01:00.0", "0000:c3:00.0"]
            .iter()
            .map(|t| PciAddress::parse(t).expect("address"))
            .collect();
        v.sort();
        let shown: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0000:1b:00.0", "0000:1b:00.1", "0000:c3:00.0", "0008:01:00.0", "0009:01:00.0"]);
        assert_eq!(gpu.slot_address(), "0000:1b:00");
        assert_eq!(format!("[{gpu:<14}]"), "[0000:1b:00.0  ]");
        assert_eq!(PciAddress::new(0, 0x1b, 0, 0), Some(gpu));
        assert_eq!(PciAddress::new(0, 0x1b, 0x20, 0), None);
        assert_eq!(PciAddress::new(0, 0x1b, 0, 8), None);
    }

    #[test]
    fn json_is_the_sysfs_string() {
        let a = PciAddress::parse("00000008:01:00.0").expect("address");
        assert_eq!(serde_json::to_string(&a).expect("json"), "\"0008:01:00.0\"");
        let back: PciAddress = serde_json::from_str("\"0008:01:00.0\"").expect("reads");
        assert_eq!(back, a);
        let err = serde_json::from_str::<PciAddress>("\"gpu0\"").expect_err("not an address").to_string();
        assert!(err.contains("\"gpu0\" is not a PCI address"), "{err}");

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Gpu {
            #[serde(with = "empty_when_none")]
            pci_address: Option<PciAddress>,
        }
        let none = Gpu { pci_address: None };
        assert_eq!(serde_json::to_string(&none).expect("json"), r#"{"pci_address":""}"#);
        assert_eq!(serde_json::from_str::<Gpu>(r#"{"pci_address":""}"#).expect("reads"), none);
        let some: Gpu = serde_json::from_str(r#"{"pci_address":"0000:1b:00.0"}"#).expect("reads");
        assert_eq!(some.pci_address, Some(PciAddress::parse("0000:1b:00.0").expect("address")));
    }
}
