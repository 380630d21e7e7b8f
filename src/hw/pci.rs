//! Reads every PCI function under `sys/bus/pci/devices` into `PciDevice`s.
//!
//! Layout read (all relative to the tree root), per device `D`:
//! `sys/bus/pci/devices/D` (a symlink into `sys/devices/pci*/...`, resolved for
//! the upstream chain), and its `class`, `vendor`, `device`, `subsystem_vendor`,
//! `subsystem_device`, `driver` (symlink), `numa_node`, `{current,max}_link_{speed,width}`
//! and `aer_dev_{correctable,nonfatal,fatal}`; slots from `sys/bus/pci/slots/*/address`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pci_ids::FromId;

use super::parse;
use super::probe::Probe;
use crate::model::{AerCounters, LinkState, PciAddress, PciDevice};

const DEVICES: &str = "sys/bus/pci/devices";
const SLOTS: &str = "sys/bus/pci/slots";

/// Reads all PCI functions, sorted by address. A device whose identity
/// (`class`, `vendor`, `device`) cannot be read is left out, with a problem
/// naming it: a half-known device would let a check match the wrong part.
pub fn read_pci_devices(probe: &mut Probe) -> Vec<PciDevice> {
    let slots = read_slots(probe);
    let mut devices = Vec::new();
    for name in probe.list(Path::new(DEVICES), None) {
        let Ok(address) = PciAddress::parse(&name) else {
            probe.problem(&Path::new(DEVICES).join(&name), None, "not a pci address");
            continue;
        };
        if let Some(device) = read_device(probe, &name, address, &slots) {
            devices.push(device);
        }
    }
    devices.sort_by_key(|d| d.address);
    devices
}

/// One function; `name` is its directory under `sys/bus/pci/devices` (and the component its
/// problems are recorded against), `address` the same name parsed.
fn read_device(
    probe: &mut Probe,
    name: &str,
    address: PciAddress,
    slots: &BTreeMap<String, String>,
) -> Option<PciDevice> {
    let dir = Path::new(DEVICES).join(name);
    let at = Some(name);
    let class = probe.parsed(&dir.join("class"), at, parse::hex_u32);
    let vendor_id = probe.parsed(&dir.join("vendor"), at, parse::hex_u16);
    let device_id = probe.parsed(&dir.join("device"), at, parse::hex_u16);
    let (Some(class), Some(vendor_id), Some(device_id)) = (class, vendor_id, device_id) else {
        probe.problem(&dir, at, "device left out: its class, vendor or device id could not be read");
        return None;
    };
    let subsystem_vendor_id = probe.parsed(&dir.join("subsystem_vendor"), at, parse::hex_u16);
    let subsystem_device_id = probe.parsed(&dir.join("subsystem_device"), at, parse::hex_u16);
    let driver = probe.link_name(&dir.join("driver"), at);
    let numa_node = probe.parsed(&dir.join("numa_node"), at, parse::numa_node).flatten();
    let link = read_link_state(probe, &dir, name);
    let upstream = read_upstream(probe, &dir, name, address);
    let aer = read_aer(probe, &dir, name);
    let slot = slots.get(&address.slot_address()).cloned();
    let (vendor_name, device_name, class_name) = names(class, vendor_id, device_id);
    Some(PciDevice {
        address,
        class,
        vendor_id,
        device_id,
        subsystem_vendor_id,
        subsystem_device_id,
        vendor_name,
        device_name,
        class_name,
        driver,
        numa_node,
        link,
        upstream,
        aer,
        slot,
    })
}

/// Reads the four link files. `None` when the device has none of them (a
/// conventional PCI or virtual device); a garbage value is `None` in that
/// field plus a problem.
fn read_link_state(probe: &mut Probe, dir: &Path, address: &str) -> Option<LinkState> {
    let at = Some(address);
    let files = ["current_link_speed", "max_link_speed", "current_link_width", "max_link_width"];
    let texts: Vec<(PathBuf, Option<String>)> = files
        .iter()
        .map(|f| {
            let rel = dir.join(f);
            let text = probe.raw(&rel, at);
            (rel, text)
        })
        .collect();
    if texts.iter().all(|(_, t)| t.is_none()) {
        return None;
    }
    let speed = |probe: &mut Probe, i: usize| -> Option<f64> {
        let (rel, text) = &texts[i];
        probe.parse_text(rel, at, text.as_deref()?, parse::link_speed).flatten()
    };
    let current_speed_gts = speed(probe, 0);
    let max_speed_gts = speed(probe, 1);
    let width = |probe: &mut Probe, i: usize| -> Option<u32> {
        let (rel, text) = &texts[i];
        probe.parse_text(rel, at, text.as_deref()?, parse::uint32)
    };
    let current_width = width(probe, 2);
    let max_width = width(probe, 3);
    Some(LinkState { current_speed_gts, max_speed_gts, current_width, max_width })
}

/// The PCI addresses above a device, nearest first, from its resolved sysfs path.
fn read_upstream(probe: &mut Probe, dir: &Path, name: &str, address: PciAddress) -> Vec<PciAddress> {
    let Some(resolved) = probe.resolve(dir, Some(name)) else {
        return Vec::new();
    };
    let mut chain = parse::pci_addresses_in_path(&resolved);
    if chain.last() == Some(&address) {
        chain.pop();
    } else {
        probe.problem(dir, Some(name), format!("resolves to {} which does not end in the device", resolved.display()));
    }
    chain.reverse();
    chain
}

/// AER counters; `None` when the device has no AER files at all, and also
/// when any of the three could not be read or parsed (with a problem): empty
/// counters would read as "no errors", and "could not read" is never healthy.
fn read_aer(probe: &mut Probe, dir: &Path, address: &str) -> Option<AerCounters> {
    let at = Some(address);
    let files = ["aer_dev_correctable", "aer_dev_nonfatal", "aer_dev_fatal"];
    let texts: Vec<(PathBuf, Option<String>)> = files
        .iter()
        .map(|f| {
            let rel = dir.join(f);
            let text = probe.raw(&rel, at);
            (rel, text)
        })
        .collect();
    if texts.iter().all(|(rel, t)| t.is_none() && !probe.exists(rel)) {
        return None;
    }
    let mut maps = Vec::new();
    for (rel, text) in &texts {
        match text {
            Some(text) => maps.push(probe.parse_text(rel, at, text, parse::aer_counters)),
            None => {
                // An unreadable file already has its problem; an absent one
                // beside present ones needs its own.
                if !probe.exists(rel) {
                    probe.problem(rel, at, "missing while the other aer files exist");
                }
                maps.push(None);
            }
        }
    }
    let maps: Option<Vec<_>> = maps.into_iter().collect();
    let mut maps = maps?.into_iter();
    Some(AerCounters {
        correctable: maps.next().unwrap_or_default(),
        nonfatal: maps.next().unwrap_or_default(),
        fatal: maps.next().unwrap_or_default(),
    })
}

/// Maps `domain:bus:device` to the slot name, from `sys/bus/pci/slots/*/address`.
fn read_slots(probe: &mut Probe) -> BTreeMap<String, String> {
    let mut slots = BTreeMap::new();
    for name in probe.list(Path::new(SLOTS), None) {
        let rel = Path::new(SLOTS).join(&name).join("address");
        if let Some(address) = probe.string(&rel, None) {
            slots.insert(address, name);
        }
    }
    slots
}

/// Display names from the bundled pci.ids database. For display only: checks
/// match on ids, and the database may lag new parts.
fn names(class: u32, vendor_id: u16, device_id: u16) -> (Option<String>, Option<String>, Option<String>) {
    let vendor = pci_ids::Vendor::from_id(vendor_id).map(|v| v.name().to_string());
    let device = pci_ids::Device::from_vid_pid(vendor_id, device_id).map(|d| d.name().to_string());
    let base = (class >> 16) as u8;
    let sub = (class >> 8) as u8;
    let class_name = pci_ids::Subclass::from_cid_sid(base, sub)
        .map(|s| s.name().to_string())
        .or_else(|| pci_ids::Class::from_id(base).map(|c| c.name().to_string()));
    (vendor, device, class_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::fixture::{FixtureTree, LinkFiles, PciFunction};
    use crate::hw::root::FsTree;

    fn function(chain: &[&str]) -> PciFunction {
        PciFunction {
            chain: chain.iter().map(|s| s.to_string()).collect(),
            class: 0x030200,
            vendor: 0x10de,
            device: 0x2330,
            subsystem: (0x10de, 0x16c1),
            driver: Some("nvidia"),
            numa: Some(1),
            link: Some(LinkFiles::trained("32.0", 16)),
            aer: true,
        }
    }

    fn read(tree: &FixtureTree) -> (Vec<PciDevice>, Vec<crate::model::ReadProblem>) {
        let dir = tempfile::tempdir().expect("tempdir");
        tree.write(&dir.path().join("t")).expect("write");
        let fs = FsTree::at(dir.path().join("t"));
        let mut probe = Probe::new(&fs);
        let devices = read_pci_devices(&mut probe);
        (devices, probe.into_problems())
    }

    #[test]
    fn reads_identity_driver_numa_link_chain_aer_and_slot() {
        let mut tree = FixtureTree::new();
        tree.pci(&function(&["0000:00:01.0", "0000:01:00.0"]));
        let dev = "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
        tree.attr(format!("{dev}/current_link_speed"), "16 GT/s").slot("7", "0000:01:00.0");
        let (devices, problems) = read(&tree);
        assert_eq!(problems, vec![]);
        assert_eq!(devices.len(), 1, "only functions listed in sys/bus/pci/devices");
        let d = &devices[0];
        assert_eq!(
            (d.address.to_string().as_str(), d.class, d.vendor_id, d.device_id),
            ("0000:01:00.0", 0x030200, 0x10de, 0x2330)
        );
        assert_eq!((d.subsystem_vendor_id, d.subsystem_device_id), (Some(0x10de), Some(0x16c1)));
        assert_eq!(d.driver.as_deref(), Some("nvidia"));
        assert_eq!(d.numa_node, Some(1));
        assert_eq!(d.device_name.as_deref(), Some("GH100 [H100 SXM5 80GB]"));
        assert_eq!(d.class_name.as_deref(), Some("3D controller"));
        let link = d.link.as_ref().expect("link");
        assert_eq!(
            (link.current_speed_gts, link.max_speed_gts, link.current_width),
            (Some(16.0), Some(32.0), Some(16))
        );
        assert_eq!(d.upstream, ["0000:00:01.0"]);
        assert_eq!(d.aer.as_ref().map(|a| a.correctable.len()), Some(9));
        assert_eq!(d.slot.as_deref(), Some("7"));
    }

    #[test]
    fn garbage_values_are_problems_not_panics() {
        let mut tree = FixtureTree::new();
        tree.pci(&function(&["0000:00:01.0", "0000:01:00.0"]));
        tree.pci(&function(&["0000:00:02.0", "0000:02:00.0"]));
        let a = "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0";
        let b = "sys/devices/pci0000:00/0000:00:02.0/0000:02:00.0";
        tree.attr(format!("{a}/numa_node"), "minus one")
            .attr(format!("{a}/max_link_speed"), "Unknown")
            .attr(format!("{a}/current_link_speed"), "fast")
            .file(format!("{a}/aer_dev_nonfatal"), "DLP\n")
            .attr(format!("{b}/vendor"), "0xNVDA");
        let (devices, problems) = read(&tree);
        let addresses: Vec<String> = devices.iter().map(|d| d.address.to_string()).collect();
        assert_eq!(addresses, ["0000:01:00.0"], "the device without a vendor is left out");
        let a = devices.iter().find(|d| d.address == "0000:01:00.0").expect("a");
        assert_eq!(a.numa_node, None);
        let link = a.link.as_ref().expect("link");
        assert_eq!((link.current_speed_gts, link.max_speed_gts, link.current_width), (None, None, Some(16)));
        assert_eq!(a.aer, None, "a garbled AER file is not zero errors");
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.rsplit('/').next().unwrap_or(""), p.component.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            found,
            [
                ("numa_node", "0000:01:00.0"),
                ("current_link_speed", "0000:01:00.0"),
                ("aer_dev_nonfatal", "0000:01:00.0"),
                ("vendor", "0000:02:00.0"),
                ("0000:02:00.0", "0000:02:00.0"),
            ],
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.source == "sysfs"));
        assert!(problems[0].message.contains("minus one"), "{}", problems[0].message);
    }
}
