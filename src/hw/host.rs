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
    let dimms = super::dimm::read_dimms(probe);
    Memory { total_kib, dimms }
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
    use crate::hw::fixture::FixtureTree;
    use crate::hw::replay::{Operation, RecordedError, ReplayTree, UnreadableList, UNREADABLE_PATH};

    #[test]
    fn dmi_permission_denied_is_quiet_and_io_errors_are_problems() {
        let mut tree = FixtureTree::new();
        tree.link_to("sys/class/dmi/id", "sys/devices/virtual/dmi/id");
        for (name, value) in
            [("sys_vendor", "Supermicro"), ("product_serial", ""), ("board_serial", ""), ("bios_date", " ")]
        {
            tree.attr(format!("sys/devices/virtual/dmi/id/{name}"), value);
        }
        let denied = std::io::Error::from_raw_os_error(13);
        let eio = std::io::Error::from_raw_os_error(5);
        let list = UnreadableList {
            errors: vec![
                RecordedError::new(Operation::Read, Path::new("sys/class/dmi/id/product_serial"), &denied),
                RecordedError::new(Operation::Read, Path::new("sys/class/dmi/id/board_serial"), &eio),
            ],
        };
        tree.file(UNREADABLE_PATH, serde_json::to_string(&list).expect("json"));
        tree.file("proc/meminfo", "MemFree: 12 kB\n");
        let dir = tempfile::tempdir().expect("tempdir");
        tree.write(&dir.path().join("t")).expect("write");
        let replay = ReplayTree::open(&dir.path().join("t")).expect("open");
        let mut probe = Probe::new(&replay);
        let dmi = read_dmi(&mut probe);
        assert_eq!(dmi.system_vendor.as_deref(), Some("Supermicro"));
        assert_eq!((dmi.product_serial, dmi.board_serial, dmi.bios_date), (None, None, None));
        assert_eq!(read_memory(&mut probe).total_kib, 0);
        assert_eq!(read_hostname(&mut probe), "");
        assert_eq!(read_architecture(&mut probe), "unknown");
        let problems: Vec<(String, String)> = probe.into_problems().into_iter().map(|p| (p.path, p.message)).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!(problems[0].0, "sys/class/dmi/id/board_serial");
        assert!(problems[0].1.contains("os error 5"), "{}", problems[0].1);
        assert_eq!(problems[1], ("proc/meminfo".to_string(), "no MemTotal line".to_string()));
        assert_eq!(problems[2], ("proc/sys/kernel/hostname".to_string(), "missing".to_string()));
        assert_eq!(problems[3].0, "kiln/arch");
    }

    #[test]
    fn cpuinfo_tells_arm_from_x86() {
        assert_eq!(arch_from_cpuinfo("processor\t: 0\nCPU implementer\t: 0x41\n"), Some("aarch64"));
        assert_eq!(arch_from_cpuinfo("processor\t: 0\nvendor_id\t: GenuineIntel\n"), Some("x86_64"));
        assert_eq!(arch_from_cpuinfo("garbage"), None);
    }
}
