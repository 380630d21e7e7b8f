//! Block devices from `sys/block/*`: NVMe and SCSI disks, not loop, ram, dm, zram or optical.

use std::path::Path;

use super::parse;
use super::probe::Probe;
use crate::model::BlockDevice;

const BLOCK: &str = "sys/block";

/// Kernel name prefixes of devices that are not physical disks.
const VIRTUAL_PREFIXES: [&str; 5] = ["loop", "ram", "dm-", "zram", "sr"];

/// Reads every physical block device, sorted by name.
pub fn read_block_devices(probe: &mut Probe) -> Vec<BlockDevice> {
    let mut disks = Vec::new();
    for name in probe.list(Path::new(BLOCK), None) {
        if VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        disks.push(read_block_device(probe, &name));
    }
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    disks
}

/// `/dev/<name>` of every physical disk, for the booted agent to look for its boot token on.
pub fn disk_paths(tree: &dyn super::root::SysTree) -> Vec<std::path::PathBuf> {
    let mut probe = Probe::new(tree);
    read_block_devices(&mut probe).into_iter().map(|d| Path::new("/dev").join(d.name)).collect()
}

fn read_block_device(probe: &mut Probe, name: &str) -> BlockDevice {
    let dir = Path::new(BLOCK).join(name);
    let at = Some(name);
    // `size` counts 512-byte sectors whatever the device's logical block size.
    let size_bytes = probe.parsed(&dir.join("size"), at, parse::uint).map(|s| s.saturating_mul(512)).unwrap_or(0);
    let rotational = probe.parsed(&dir.join("queue/rotational"), at, parse::uint).map(|r| r != 0).unwrap_or(false);
    let model = probe.string(&dir.join("device/model"), at);
    let serial = probe.string(&dir.join("device/serial"), at);
    // NVMe controllers name it `firmware_rev`, SCSI devices `rev`.
    let firmware =
        probe.string(&dir.join("device/firmware_rev"), at).or_else(|| probe.string(&dir.join("device/rev"), at));
    let pci_address = probe.resolve(&dir, at).and_then(|p| parse::pci_addresses_in_path(&p).pop());
    BlockDevice { name: name.to_string(), model, serial, firmware, size_bytes, rotational, pci_address }
}
