//! Network ports: Ethernet interfaces from `sys/class/net` and InfiniBand ports
//! from `sys/class/infiniband/*/ports/*`.
//!
//! An IPoIB interface (`type` 32) is not listed: its InfiniBand port is. An
//! RDMA port whose `link_layer` is Ethernet (RoCE) is not listed either: its
//! Ethernet interface is, with the RDMA device's `fw_ver` as its firmware.

use std::collections::BTreeMap;
use std::path::Path;

use super::parse;
use super::probe::{is_invalid_argument, Probe};
use crate::model::{NetPort, PciAddress, PortKind};

const NET: &str = "sys/class/net";
const INFINIBAND: &str = "sys/class/infiniband";

/// `type` of an Ethernet interface and of an IPoIB one (ARPHRD_*).
const ARPHRD_ETHER: u64 = 1;
const ARPHRD_INFINIBAND: u64 = 32;

pub fn read_net_ports(probe: &mut Probe) -> Vec<NetPort> {
    let (mut ports, firmware_by_pci) = read_infiniband(probe);
    for name in probe.list(Path::new(NET), None) {
        if let Some(port) = read_interface(probe, &name, &firmware_by_pci) {
            ports.push(port);
        }
    }
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports
}

/// The MAC addresses of this machine's physical Ethernet ports (lowercase), for a node's agent
/// to say who it is. Virtual interfaces have no `device` link and are left out.
pub fn ethernet_macs(tree: &dyn super::root::SysTree) -> Vec<String> {
    let mut probe = Probe::new(tree);
    read_net_ports(&mut probe)
        .into_iter()
        .filter(|p| p.kind == PortKind::Ethernet)
        .filter_map(|p| p.address.map(|a| a.to_ascii_lowercase()))
        .filter(|a| a != "00:00:00:00:00:00")
        .collect()
}

fn read_interface(probe: &mut Probe, name: &str, firmware_by_pci: &BTreeMap<PciAddress, String>) -> Option<NetPort> {
    let dir = Path::new(NET).join(name);
    // Virtual interfaces (lo, bridges, bonds, veth) have no `device` link.
    if name == "lo" || !probe.exists(&dir.join("device")) {
        return None;
    }
    let at = Some(name);
    let kind = match probe.parsed(&dir.join("type"), at, parse::uint) {
        Some(ARPHRD_INFINIBAND) => return None,
        Some(ARPHRD_ETHER) => PortKind::Ethernet,
        _ => PortKind::Other,
    };
    let address = probe.string(&dir.join("address"), at);
    let driver = probe.link_name(&dir.join("device/driver"), at);
    // A link that is down reports -1, or fails with EINVAL, depending on the driver.
    let speed_mbps = probe
        .raw_tolerating(&dir.join("speed"), at, is_invalid_argument)
        .and_then(|text| probe.parse_text(&dir.join("speed"), at, &text, parse::int))
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0);
    let state = probe.string(&dir.join("operstate"), at);
    let pci_address = probe.resolve(&dir.join("device"), at).and_then(|p| parse::pci_addresses_in_path(&p).pop());
    let firmware = pci_address.as_ref().and_then(|a| firmware_by_pci.get(a)).cloned();
    Some(NetPort { name: name.to_string(), kind, address, driver, firmware, pci_address, speed_mbps, state })
}

/// Reads InfiniBand ports, and maps each RDMA device's PCI address to its
/// firmware version for the Ethernet interfaces of the same function.
fn read_infiniband(probe: &mut Probe) -> (Vec<NetPort>, BTreeMap<PciAddress, String>) {
    let mut ports = Vec::new();
    let mut firmware_by_pci = BTreeMap::new();
    for device in probe.list(Path::new(INFINIBAND), None) {
        let dir = Path::new(INFINIBAND).join(&device);
        let at = Some(device.as_str());
        let firmware = probe.string(&dir.join("fw_ver"), at);
        let node_guid = probe.string(&dir.join("node_guid"), at);
        let driver = probe.link_name(&dir.join("device/driver"), at);
        let pci_address = probe.resolve(&dir.join("device"), at).and_then(|p| parse::pci_addresses_in_path(&p).pop());
        if let (Some(pci), Some(fw)) = (&pci_address, &firmware) {
            firmware_by_pci.insert(*pci, fw.clone());
        }
        for port in probe.list(&dir.join("ports"), at) {
            let port_dir = dir.join("ports").join(&port);
            let name = format!("{device}/{port}");
            let at = Some(name.as_str());
            if probe.string(&port_dir.join("link_layer"), at).as_deref() == Some("Ethernet") {
                continue;
            }
            let state = probe.parsed(&port_dir.join("state"), at, port_state);
            let speed_mbps =
                probe.parsed(&port_dir.join("rate"), at, rate_mbps).filter(|_| state.as_deref() == Some("active"));
            let address = probe
                .raw(&port_dir.join("gids/0"), at)
                .and_then(|text| probe.parse_text(&port_dir.join("gids/0"), at, &text, gid_interface_id))
                .or_else(|| node_guid.clone());
            ports.push(NetPort {
                name,
                kind: PortKind::Infiniband,
                address,
                driver: driver.clone(),
                firmware: firmware.clone(),
                pci_address,
                speed_mbps,
                state,
            });
        }
    }
    (ports, firmware_by_pci)
}

/// `4: ACTIVE` -> `active`.
fn port_state(text: &str) -> Result<String, parse::ParseError> {
    let t = text.trim();
    let word = t.split_once(':').map(|(_, w)| w.trim()).unwrap_or(t);
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(parse::ParseError::Unexpected(t.to_string()));
    }
    Ok(word.to_ascii_lowercase())
}

/// `400 Gb/sec (4X NDR)` -> 400000 Mb/s.
fn rate_mbps(text: &str) -> Result<u64, parse::ParseError> {
    let t = text.trim();
    let bad = || parse::ParseError::NotLinkSpeed(t.to_string());
    let mut words = t.split_whitespace();
    let number = words.next().ok_or_else(bad)?;
    if words.next() != Some("Gb/sec") || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let gbps: f64 = number.parse().map_err(|_| bad())?;
    Ok((gbps * 1000.0).round() as u64)
}

/// The port GUID: the lower 64 bits (interface id) of GID 0,
/// `fe80:0000:0000:0000:a088:c203:0047:1234` -> `a088:c203:0047:1234`.
fn gid_interface_id(text: &str) -> Result<String, parse::ParseError> {
    let t = text.trim();
    let groups: Vec<&str> = t.split(':').collect();
    if groups.len() != 8 || !groups.iter().all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(parse::ParseError::NotHex(t.to_string()));
    }
    Ok(groups[4..].join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::fixture::{FixtureTree, LinkFiles, NetDev, PciFunction};
    use crate::hw::replay::{Operation, RecordedError, ReplayTree, UnreadableList, UNREADABLE_PATH};

    #[test]
    fn down_links_virtual_interfaces_and_einval() {
        let mut tree = FixtureTree::new();
        for (i, bus) in [(0u8, "01"), (1, "02")] {
            tree.pci(&PciFunction {
                chain: vec![format!("0000:00:0{}.0", i + 1), format!("0000:{bus}:00.0")],
                class: 0x020000,
                vendor: 0x8086,
                device: 0x1572,
                subsystem: (0x8086, 0x0000),
                driver: Some("i40e"),
                numa: None,
                link: Some(LinkFiles::trained("8.0", 8)),
                aer: false,
            });
        }
        let port = |name: &str, pci: &str, speed: &str, state: &str| NetDev {
            name: name.into(),
            pci_address: pci.into(),
            arp_type: 1,
            mac: "3c:fd:fe:00:00:01".into(),
            driver: "i40e",
            speed: speed.into(),
            operstate: state.into(),
        };
        tree.netdev(&port("eno1", "0000:01:00.0", "-1", "down"));
        tree.netdev(&port("eno2", "0000:02:00.0", "", "down"));
        // Virtual interfaces have no `device` link.
        tree.attr("sys/devices/virtual/net/lo/address", "00:00:00:00:00:00");
        tree.link_to("sys/class/net/lo", "sys/devices/virtual/net/lo");
        tree.attr("sys/devices/virtual/net/br0/address", "aa:bb:cc:dd:ee:ff");
        tree.link_to("sys/class/net/br0", "sys/devices/virtual/net/br0");
        let einval = std::io::Error::from_raw_os_error(22);
        let list = UnreadableList {
            errors: vec![RecordedError::new(Operation::Read, Path::new("sys/class/net/eno2/speed"), &einval)],
        };
        tree.file(UNREADABLE_PATH, serde_json::to_string(&list).expect("json"));
        let dir = tempfile::tempdir().expect("tempdir");
        tree.write(&dir.path().join("t")).expect("write");
        let replay = ReplayTree::open(&dir.path().join("t")).expect("open");
        let mut probe = Probe::new(&replay);
        let ports = read_net_ports(&mut probe);
        assert_eq!(probe.into_problems(), vec![], "EINVAL on a down link's speed is not a problem");
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["eno1", "eno2"]);
        assert!(ports.iter().all(|p| p.speed_mbps.is_none() && p.state.as_deref() == Some("down")));
        assert!(ports[0].pci_address.is_some_and(|a| a == "0000:01:00.0"));
        assert_eq!(ports[0].driver.as_deref(), Some("i40e"));
        assert_eq!(ports[0].firmware, None, "no RDMA device, no firmware");
    }

    #[test]
    fn infiniband_values() {
        assert_eq!(port_state("4: ACTIVE\n").as_deref(), Ok("active"));
        assert_eq!(port_state("1: DOWN").as_deref(), Ok("down"));
        assert!(port_state("4: \u{1}\u{2}").is_err());
        assert_eq!(rate_mbps("400 Gb/sec (4X NDR)\n"), Ok(400_000));
        assert_eq!(rate_mbps("2.5 Gb/sec (1X SDR)"), Ok(2_500));
        assert!(rate_mbps("fast").is_err());
        assert_eq!(gid_interface_id("fe80:0000:0000:0000:a088:c203:0047:1234\n").as_deref(), Ok("a088:c203:0047:1234"));
        assert!(gid_interface_id("fe80::1").is_err());
    }
}
