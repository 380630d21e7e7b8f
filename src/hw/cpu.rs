//! CPUs and NUMA nodes: model from `proc/cpuinfo`, counts from `sys/devices/system/cpu`,
//! nodes from `sys/devices/system/node`.

use std::collections::BTreeSet;
use std::path::Path;

use super::parse;
use super::probe::Probe;
use crate::model::{Cpus, NumaNode};

const CPU: &str = "sys/devices/system/cpu";
const NODE: &str = "sys/devices/system/node";

pub fn read_cpus(probe: &mut Probe, architecture: String) -> Cpus {
    let model = read_model(probe);
    let online = online_cpus(probe);
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    for cpu in &online {
        let topology = Path::new(CPU).join(format!("cpu{cpu}")).join("topology");
        let component = format!("cpu{cpu}");
        let package = probe.parsed(&topology.join("physical_package_id"), Some(&component), parse::int);
        let core = probe.parsed(&topology.join("core_id"), Some(&component), parse::int);
        if let (Some(package), Some(core)) = (package, core) {
            packages.insert(package);
            cores.insert((package, core));
        }
    }
    Cpus {
        architecture,
        model,
        sockets: count(packages.len()),
        cores: count(cores.len()),
        threads: count(online.len()),
        numa_nodes: read_numa_nodes(probe),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The online cpus from `online`; without that file (some containers), the
/// `cpuN` directories.
fn online_cpus(probe: &mut Probe) -> Vec<u32> {
    let rel = Path::new(CPU).join("online");
    if probe.exists(&rel) {
        return probe.parsed(&rel, None, parse::cpulist).unwrap_or_default();
    }
    let mut cpus: Vec<u32> = probe
        .list(Path::new(CPU), None)
        .iter()
        .filter_map(|n| n.strip_prefix("cpu"))
        .filter_map(|n| parse::uint32(n).ok())
        .collect();
    cpus.sort_unstable();
    cpus
}

/// The CPU model: x86 names it in `model name`; Arm kernels give only the
/// implementer and part numbers, which are named from a short table.
fn read_model(probe: &mut Probe) -> Option<String> {
    let text = probe.raw(Path::new("proc/cpuinfo"), None)?;
    model_from_cpuinfo(&text)
}

fn model_from_cpuinfo(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if let Some(name) = value("model name").filter(|v| !v.is_empty()) {
        return Some(name);
    }
    let implementer = value("CPU implementer")?;
    let part = value("CPU part")?;
    let known = match (implementer.as_str(), part.as_str()) {
        ("0x41", "0xd0c") => Some("Arm Neoverse-N1"),
        ("0x41", "0xd40") => Some("Arm Neoverse-V1"),
        ("0x41", "0xd49") => Some("Arm Neoverse-N2"),
        ("0x41", "0xd4f") => Some("Arm Neoverse-V2"),
        ("0x41", "0xd84") => Some("Arm Neoverse-V3"),
        ("0x41", "0xd8e") => Some("Arm Neoverse-N3"),
        _ => None,
    };
    Some(known.map(str::to_string).unwrap_or_else(|| format!("Arm implementer {implementer} part {part}")))
}

/// NUMA nodes with their cpus and memory, sorted by id. A node without cpus
/// (GPU memory on Grace with driver 570) has an empty cpulist.
fn read_numa_nodes(probe: &mut Probe) -> Vec<NumaNode> {
    let mut nodes = Vec::new();
    for name in probe.list(Path::new(NODE), None) {
        let Some(id) = name.strip_prefix("node").and_then(|n| parse::uint32(n).ok()) else { continue };
        let dir = Path::new(NODE).join(&name);
        let cpulist = probe.raw(&dir.join("cpulist"), Some(&name)).map(|t| t.trim().to_string()).unwrap_or_default();
        let memory_kib = probe.parsed(&dir.join("meminfo"), Some(&name), |t| parse::meminfo_kib(t, "MemTotal"));
        nodes.push(NumaNode { id, cpulist, memory_kib });
    }
    nodes.sort_by_key(|n| n.id);
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_model_name() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8570\n";
        assert_eq!(model_from_cpuinfo(text).as_deref(), Some("Intel(R) Xeon(R) Platinum 8570"));
    }

    #[test]
    fn arm_model_from_part_numbers() {
        let grace = "processor\t: 0\nBogoMIPS\t: 2000.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd4f\n";
        assert_eq!(model_from_cpuinfo(grace).as_deref(), Some("Arm Neoverse-V2"));
        let other = "CPU implementer\t: 0x61\nCPU part\t: 0x022\n";
        assert_eq!(model_from_cpuinfo(other).as_deref(), Some("Arm implementer 0x61 part 0x022"));
        assert_eq!(model_from_cpuinfo("garbage\0\u{1}"), None);
    }
}
