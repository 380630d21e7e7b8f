//! Host identity: DMI (`sys/class/dmi/id`), hostname, kernel release, memory, architecture.
//!
//! Only static values are read (MemTotal, not MemFree), so that replaying a
//! capture inspects exactly as the live machine did.

use std::path::Path;

use super::parse;
use super::probe::{is_permission_denied, Probe};
use crate::model::{Dmi, Memory};

const DMI: &str = "sys/class/dmi/id";

/// Where a capture records the architecture of the machine it came from,
/// relative to the capture root. The live machine has no such file: there the
/// architecture is the inspecting binary's own.
pub const ARCH_PATH: &str = "kiln/arch";

/// Reads DMI identity. Serials and the UUID are readable only by root: a
/// permission error is `None` without a problem, since it says nothing about
/// the machine.
pub fn read_dmi(probe: &mut Probe) -> Dmi {
    let mut field = |name: &str| probe.string_tolerating(&Path::new(DMI).join(name), None, is_permission_denied);
    Dmi {
        system_vendor: field("sys_vendor"),
        product_name: field("product_name"),
        product_serial: field("product_serial"),
        product_uuid: field("product_uuid"),
        board_vendor: field("board_vendor"),
        board_name: field("board_name"),
        board_serial: field("board_serial"),
        chassis_serial: field("chassis_serial"),
        bios_vendor: field("bios_vendor"),
        bios_version: field("bios_version"),
        bios_date: field("bios_date"),
    }
}

/// The hostname, or an empty string with a problem when it cannot be read.
pub fn read_hostname(probe: &mut Probe) -> String {
    let rel = Path::new("proc/sys/kernel/hostname");
    match probe.string(rel, None) {
        Some(name) => name,
        None => {
            if !probe.exists(rel) {
                probe.problem(rel, None, "missing");
            }
            String::new()
        }
    }
}

pub fn read_kernel(probe: &mut Probe) -> Option<String> {
    probe.string(Path::new("proc/sys/kernel/osrelease"), None)
}

/// Total memory from `proc/meminfo`; 0 with a problem when unreadable.
pub fn read_memory(probe: &mut Probe) -> Memory {
    let rel = Path::new("proc/meminfo");
    let total_kib = match probe.raw(rel, None) {
        Some(text) => probe.parse_text(rel, None, &text, |t| parse::meminfo_kib(t, "MemTotal")).unwrap_or(0),
        None => {
            if !probe.exists(rel) {
                probe.problem(rel, None, "missing");
            }
            0
        }
    };
    Memory { total_kib }
}

/// The CPU architecture. Live (root `/`): the inspecting binary's, since kiln
/// runs natively. Anywhere else: the `kiln/arch` file the capture wrote; a
/// tree without it (a raw copy of `/sys`) is judged from `proc/cpuinfo`.
pub fn read_architecture(probe: &mut Probe) -> String {
    if probe.tree().root() == Path::new("/") {
        return std::env::consts::ARCH.to_string();
    }
    if let Some(arch) = probe.string(Path::new(ARCH_PATH), None) {
        return arch;
    }
    let cpuinfo = Path::new("proc/cpuinfo");
    if let Some(arch) = probe.raw(cpuinfo, None).and_then(|text| arch_from_cpuinfo(&text)) {
        return arch.to_string();
    }
    probe.problem(Path::new(ARCH_PATH), None, "missing, and proc/cpuinfo does not say the architecture");
    "unknown".to_string()
}

/// Tells x86 from Arm by the keys each kernel writes in `proc/cpuinfo`.
fn arch_from_cpuinfo(text: &str) -> Option<&'static str> {
    let has = |key: &str| text.lines().any(|l| l.split(':').next().map(str::trim) == Some(key));
    if has("CPU implementer") {
        Some("aarch64")
    } else if has("vendor_id") {
        Some("x86_64")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_tells_arm_from_x86() {
        assert_eq!(arch_from_cpuinfo("processor\t: 0\nCPU implementer\t: 0x41\n"), Some("aarch64"));
        assert_eq!(arch_from_cpuinfo("processor\t: 0\nvendor_id\t: GenuineIntel\n"), Some("x86_64"));
        assert_eq!(arch_from_cpuinfo("garbage"), None);
    }
}
