//! A compact human summary of a `Node` for `kiln inspect` without `--json`.

use std::fmt::Write as _;

use crate::model::{GpuInventory, LinkState, Node, PciDevice, PortKind};

/// Renders identity, CPUs, memory, GPUs, NICs, disks, the PCIe links of
/// GPUs, NICs and NVMe drives, bridges whose link runs below its maximum,
/// and every problem, as plain text.
pub fn render_node(node: &Node) -> String {
    let mut out = String::new();
    identity(&mut out, node);
    gpus(&mut out, node);
    nics(&mut out, node);
    disks(&mut out, node);
    links(&mut out, node);
    degraded_bridges(&mut out, node);
    problems(&mut out, node);
    out
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
}

fn identity(out: &mut String, node: &Node) {
    let d = &node.dmi;
    let _ = writeln!(
        out,
        "node     {}  kernel {}  {}",
        or_dash(Some(&node.hostname)),
        or_dash(node.kernel.as_deref()),
        node.cpus.architecture
    );
    let _ = writeln!(
        out,
        "system   {} {}  serial {}  board {} {}  bios {} {}",
        or_dash(d.system_vendor.as_deref()),
        or_dash(d.product_name.as_deref()),
        or_dash(d.product_serial.as_deref()),
        or_dash(d.board_name.as_deref()),
        or_dash(d.board_serial.as_deref()),
        or_dash(d.bios_version.as_deref()),
        or_dash(d.bios_date.as_deref()),
    );
    let c = &node.cpus;
    let _ = writeln!(
        out,
        "cpus     {} socket(s) x {}: {} cores, {} threads",
        c.sockets,
        or_dash(c.model.as_deref()),
        c.cores,
        c.threads
    );
    for n in &c.numa_nodes {
        let mem = n.memory_kib.map(gib).unwrap_or_else(|| "-".to_string());
        let _ = writeln!(out, "  numa{:<3} cpus {:<24} memory {}", n.id, or_dash(Some(&n.cpulist)), mem);
    }
    let _ = writeln!(out, "memory   {}{}", gib(node.memory.total_kib), dimm_summary(&node.memory.dimms));
}

fn gpus(out: &mut String, node: &Node) {
    match &node.gpus {
        GpuInventory::NotInspected { reason } => {
            let _ = writeln!(out, "gpus     not inspected: {reason}");
        }
        GpuInventory::Inspected { driver_version, gpus, .. } => {
            let _ = writeln!(out, "gpus     {} (driver {driver_version})", gpus.len());
            let _ = writeln!(
                out,
                "  {:<4}{:<14}{:<26}{:<16}{:<10}{:<9}{:<12}{:<8}",
                "idx", "address", "name", "serial", "pcie", "nvlink", "fabric", "module"
            );
            for g in gpus {
                let pcie = g
                    .pcie
                    .as_ref()
                    .map(|p| {
                        format!(
                            "gen{} x{}",
                            p.current_generation.map_or("?".into(), |v| v.to_string()),
                            p.current_width.map_or("?".into(), |v| v.to_string())
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                let nvlink = g
                    .nvlinks
                    .as_ref()
                    .map(|l| format!("{}/{}", l.iter().filter(|l| l.active).count(), l.len()))
                    .unwrap_or_else(|| "-".into());
                let fabric = g
                    .fabric
                    .as_ref()
                    .map(|f| serde_json::to_value(f.state).ok().and_then(|v| v.as_str().map(str::to_string)))
                    .and_then(|s| s)
                    .unwrap_or_else(|| "-".into());
                let module = g.platform.as_ref().map(|p| p.module_id.to_string()).unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    out,
                    "  {:<4}{:<14}{:<26}{:<16}{:<10}{:<9}{:<12}{:<8}",
                    g.index,
                    or_dash(g.pci_address.map(|a| a.to_string()).as_deref()),
                    or_dash(g.name.as_deref()),
                    or_dash(g.serial.as_deref()),
                    pcie,
                    nvlink,
                    fabric,
                    module
                );
            }
        }
    }
}

fn nics(out: &mut String, node: &Node) {
    let _ = writeln!(out, "network  {} port(s)", node.net.len());
    for p in &node.net {
        let kind = match p.kind {
            PortKind::Ethernet => "eth",
            PortKind::Infiniband => "ib",
            PortKind::Other => "other",
        };
        let speed = p.speed_mbps.map(|s| format!("{}G", s / 1000)).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<16}{:<6}{:<24}{:<14}{:<7}{:<8}fw {}",
            p.name,
            kind,
            or_dash(p.address.as_deref()),
            or_dash(p.pci_address.map(|a| a.to_string()).as_deref()),
            speed,
            or_dash(p.state.as_deref()),
            or_dash(p.firmware.as_deref())
        );
    }
}

fn disks(out: &mut String, node: &Node) {
    let _ = writeln!(out, "disks    {} device(s)", node.disks.len());
    for d in &node.disks {
        let _ = writeln!(
            out,
            "  {:<10}{:>10.1} GB  {:<30}serial {:<22}fw {:<10}pci {}",
            d.name,
            d.size_bytes as f64 / 1e9,
            or_dash(d.model.as_deref()),
            or_dash(d.serial.as_deref()),
            or_dash(d.firmware.as_deref()),
            or_dash(d.pci_address.map(|a| a.to_string()).as_deref())
        );
    }
}

/// GPUs, network controllers and NVMe drives, whose links a bring-up cares about.
fn of_interest(d: &PciDevice) -> bool {
    matches!(d.class_subclass(), 0x0300 | 0x0302 | 0x0200 | 0x0207 | 0x0108 | 0x0680)
}

fn speed_width(link: &LinkState, current: bool) -> String {
    let (s, w) =
        if current { (link.current_speed_gts, link.current_width) } else { (link.max_speed_gts, link.max_width) };
    format!("{} GT/s x{}", s.map_or("?".into(), |s| format!("{s:.1}")), w.map_or("?".into(), |w| w.to_string()))
}

fn links(out: &mut String, node: &Node) {
    let bridges = node.pci.iter().filter(|d| d.is_bridge()).count();
    let _ = writeln!(out, "pci      {} function(s), {} bridge(s)", node.pci.len(), bridges);
    for d in node.pci.iter().filter(|d| of_interest(d)) {
        let link = d
            .link
            .as_ref()
            .map(|l| format!("{} (max {})", speed_width(l, true), speed_width(l, false)))
            .unwrap_or_else(|| "no link".into());
        let name = d.device_name.as_deref().unwrap_or("unknown device");
        let numa = d.numa_node.map_or("-".into(), |n| n.to_string());
        let root = d.upstream.last().map_or_else(|| "-".to_string(), ToString::to_string);
        let _ = writeln!(
            out,
            "  {:<14}{:04x}:{:04x} {:<34}{:<36}numa {:<3}{} hop(s) to {}",
            d.address,
            d.vendor_id,
            d.device_id,
            truncate(name, 33),
            link,
            numa,
            d.upstream.len(),
            root
        );
    }
}

/// Whether a link runs below its maximum, or reports no speed at all.
fn degraded(link: &LinkState) -> bool {
    let slower = matches!((link.current_speed_gts, link.max_speed_gts), (Some(c), Some(m)) if c < m);
    let narrower = matches!((link.current_width, link.max_width), (Some(c), Some(m)) if c < m);
    slower || narrower || link.current_speed_gts.is_none()
}

fn degraded_bridges(out: &mut String, node: &Node) {
    let bridges: Vec<&PciDevice> =
        node.pci.iter().filter(|d| d.is_bridge() && d.link.as_ref().is_some_and(degraded)).collect();
    if bridges.is_empty() {
        return;
    }
    let _ = writeln!(out, "bridges below their maximum link");
    for d in bridges {
        if let Some(l) = &d.link {
            let _ = writeln!(
                out,
                "  {:<14}{:04x}:{:04x} {} (max {})",
                d.address,
                d.vendor_id,
                d.device_id,
                speed_width(l, true),
                speed_width(l, false)
            );
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

fn problems(out: &mut String, node: &Node) {
    let gpu_problems: usize = node.gpus.gpus().iter().map(|g| g.problems.len()).sum();
    let _ = writeln!(out, "problems {}", node.problems.len() + gpu_problems);
    for p in &node.problems {
        let _ = writeln!(out, "  {:<7}{:<14}{}: {}", p.source, or_dash(p.component.as_deref()), p.path, p.message);
    }
    for g in node.gpus.gpus() {
        for p in &g.problems {
            let _ = writeln!(out, "  {:<7}gpu{:<11}{}: {}", p.source, g.index, p.path, p.message);
        }
    }
}

/// `  (32 of 32 DIMM slots: 32 x 64 GiB DDR5-5600)`, or nothing when SMBIOS was not read.
fn dimm_summary(dimms: &[crate::model::Dimm]) -> String {
    if dimms.is_empty() {
        return String::new();
    }
    let populated: Vec<&crate::model::Dimm> = dimms.iter().filter(|d| d.populated()).collect();
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for d in &populated {
        let size = d.size_bytes.map_or("? GiB".to_string(), |b| format!("{} GiB", b >> 30));
        let kind = match (&d.memory_type, d.speed_mts) {
            (Some(t), Some(s)) => format!("{size} {t}-{s}"),
            (Some(t), None) => format!("{size} {t}"),
            _ => size,
        };
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let listed: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} x {k}")).collect();
    format!("  ({} of {} DIMM slots: {})", populated.len(), dimms.len(), listed.join(", "))
}
