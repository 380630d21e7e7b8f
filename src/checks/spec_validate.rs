//! Semantic checks of a parsed spec: what TOML and serde cannot catch.

use std::collections::BTreeMap;

use super::burnin_spec;
use super::platform::{DeviceGroup, NvlinkDomain, Platform, Role};
use super::spec_error::FieldPath;
use super::version::{self, Radix};
use crate::model::pcie_generation;
use crate::truncate::quote;

/// Widths a PCIe link can train to.
const PCIE_WIDTHS: [u32; 7] = [1, 2, 4, 8, 12, 16, 32];

/// Every problem found, each with the field it is about. Empty when the spec
/// is sound.
pub fn check(spec: &Platform) -> Vec<(FieldPath, String)> {
    let mut out = Vec::new();
    let root = FieldPath::root();
    if spec.name.is_empty() {
        out.push((root.key("name"), "must not be empty".to_string()));
    } else if !valid_name(&spec.name) {
        out.push((root.key("name"), format!("{}: use lowercase letters, digits and '-'", quote(&spec.name))));
    }
    if spec.description.trim().is_empty() {
        out.push((root.key("description"), "must not be empty".to_string()));
    }
    check_match(spec, &root.key("match"), &mut out);
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, group) in spec.devices.iter().enumerate() {
        let path = root.key("devices").index(i);
        check_group(group, &path, &mut out);
        for (j, id) in group.ids.iter().enumerate() {
            if let Some(first) = owner.insert(id.to_string(), i) {
                out.push((
                    path.key("ids").index(j),
                    format!("{id} is already in devices[{first}]; a device counts once"),
                ));
            }
        }
    }
    if let Some(nv) = &spec.nvlink {
        if nv.links_per_gpu == 0 {
            out.push((root.key("nvlink").key("links_per_gpu"), "must be at least 1; drop [nvlink] if none".into()));
        }
        if nv.min_speed_mbps == Some(0) {
            out.push((
                root.key("nvlink").key("min_speed_mbps"),
                "a speed of 0 passes a link at any speed: give the per-link speed (53125 on NVLink 5) or drop the field"
                    .into(),
            ));
        }
    }
    if let Some(c2c) = &spec.c2c {
        let path = root.key("c2c");
        if c2c.min_links == 0 {
            out.push((path.key("min_links"), "must be at least 1; drop [c2c] if the GPU has no C2C link".into()));
        }
        if c2c.min_bandwidth_mbps == Some(0) {
            out.push((
                path.key("min_bandwidth_mbps"),
                "a bandwidth of 0 passes any link: give one or drop the field".into(),
            ));
        }
    }
    if spec.fallback && !spec.detect.is_empty() {
        out.push((
            root.key("fallback"),
            "a fallback spec is chosen when nothing matches: drop its [match] rules".into(),
        ));
    }
    if let Some(domain) = &spec.nvlink_domain {
        check_domain(spec, domain, &root.key("nvlink_domain"), &mut out);
    }
    if let Some(burnin) = &spec.burnin {
        burnin_spec::check(burnin, &root.key("burnin"), &mut out);
    }
    check_complete(spec, &root, &mut out);
    if let Some(fw) = &spec.firmware {
        let path = root.key("firmware");
        for (key, value) in [("bios_min", &fw.bios_min), ("driver_min", &fw.driver_min)] {
            if let Some(v) = value {
                if version::segments(v, Radix::Decimal).is_none() {
                    out.push((path.key(key), format!("{} is not a dotted decimal version", quote(v))));
                }
            }
        }
    }
    out
}

/// A spec that parses can still be too little to judge its platform (a file
/// cut short by a bad copy or an editor's crash reads as valid TOML): what it
/// detects it must count, GPUs it expects must have their memory health
/// judged, NVLink rules need GPUs, and a multi-node domain needs its NVLink
/// rules. The fallback and other specs with no devices pass as
/// long as they judge something.
fn check_complete(spec: &Platform, root: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    let judges_anything = !spec.devices.is_empty()
        || spec.aer.is_some()
        || spec.nvlink.is_some()
        || spec.fabric.is_some()
        || spec.gpu_health.is_some()
        || spec.firmware.is_some()
        || spec.nvlink_domain.is_some();
    if !judges_anything {
        out.push((
            root.key("description"),
            "the spec judges nothing: give the [[devices]] it expects, or [aer], [gpu_health], [firmware]".into(),
        ));
    }
    for (i, presence) in spec.detect.pci.iter().enumerate() {
        for (j, id) in presence.ids.iter().enumerate() {
            if !spec.devices.iter().any(|g| g.ids.contains(id)) {
                out.push((
                    root.key("match").key("pci").index(i).key("ids").index(j),
                    format!("{id} detects this platform, but no [[devices]] group counts it"),
                ));
            }
        }
    }
    let first_gpu_group = spec.devices.iter().position(|g| g.role == Role::Gpu && g.expected_at_least() > 0);
    if let Some(i) = first_gpu_group {
        if spec.gpu_health.is_none() {
            out.push((
                root.key("devices").index(i).key("role"),
                "the spec expects GPUs but does not judge their memory health (ECC, retired pages, row remaps): \
                 add [gpu_health]"
                    .into(),
            ));
        }
    } else {
        for (key, present) in [("nvlink", spec.nvlink.is_some()), ("fabric", spec.fabric.is_some())] {
            if present {
                out.push((root.key(key), format!("[{key}] judges GPUs, but [[devices]] expects none")));
            }
        }
    }
    // A site may judge its trays without the fabric rule; never a domain without its links.
    if spec.nvlink_domain.is_some() && spec.nvlink.is_none() {
        out.push((
            root.key("nvlink_domain"),
            "a multi-node NVLink domain is judged over its links: add [nvlink]".into(),
        ));
    }
}

/// A domain of at least two trays whose GPUs split evenly over them, as many
/// per tray as the spec's GPU groups expect on one node.
fn check_domain(spec: &Platform, d: &NvlinkDomain, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    if d.trays < 2 {
        out.push((path.key("trays"), "a multi-node domain has at least 2 trays; drop [nvlink_domain] if none".into()));
        return;
    }
    if d.gpus == 0 || d.gpus % d.trays != 0 {
        out.push((path.key("gpus"), format!("{} GPUs do not split evenly over {} trays", d.gpus, d.trays)));
        return;
    }
    let exact: Option<u32> = spec.gpu_groups().map(|g| g.count).sum();
    if let Some(per_node) = exact.filter(|n| *n > 0) {
        if per_node != d.gpus_per_tray() {
            out.push((
                path.key("gpus"),
                format!(
                    "{} GPUs in {} trays is {} per tray, but [[devices]] expects {per_node} GPUs on a node",
                    d.gpus,
                    d.trays,
                    d.gpus_per_tray()
                ),
            ));
        }
    }
}

fn valid_name(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn check_match(spec: &Platform, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    let m = &spec.detect;
    if let Some(arch) = &m.architecture {
        if arch != "x86_64" && arch != "aarch64" {
            out.push((path.key("architecture"), format!("{}: expected \"x86_64\" or \"aarch64\"", quote(arch))));
        }
    }
    for (i, p) in m.pci.iter().enumerate() {
        if p.ids.is_empty() {
            out.push((path.key("pci").index(i).key("ids"), "must list at least one id".into()));
        }
        if p.min_count == 0 {
            out.push((path.key("pci").index(i).key("min_count"), "must be at least 1".into()));
        }
    }
    for key in ["dmi_product_name", "dmi_board_name"] {
        let list = if key == "dmi_product_name" { &m.dmi_product_name } else { &m.dmi_board_name };
        for (i, s) in list.iter().enumerate() {
            if s.trim().is_empty() {
                out.push((path.key(key).index(i), "must not be empty (it would match anything)".into()));
            }
        }
    }
}

fn check_group(group: &DeviceGroup, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    if group.ids.is_empty() {
        out.push((path.key("ids"), "must list at least one id".into()));
    }
    if group.label.as_deref().is_some_and(|l| l.trim().is_empty()) {
        out.push((path.key("label"), "must not be empty".into()));
    }
    match (group.count, group.min_count) {
        (Some(_), Some(_)) => out.push((path.key("min_count"), "give either count or min_count, not both".into())),
        (None, None) => out.push((path.key("count"), "give count (exact) or min_count (at least)".into())),
        _ => {}
    }
    if let Some(numa) = &group.numa {
        match group.count {
            Some(c) if c as usize == numa.len() => {}
            Some(c) => out.push((path.key("numa"), format!("lists {} nodes but count is {c}", numa.len()))),
            None => out.push((path.key("numa"), "needs an exact count to line devices up with nodes".into())),
        }
    }
    if let Some(link) = &group.link {
        let lpath = path.key("link");
        if let Some(s) = link.speed_gts {
            if pcie_generation(s).is_none() {
                out.push((lpath.key("speed_gts"), format!("{s} is not a PCIe speed (2.5, 5, 8, 16, 32, 64)")));
            }
        }
        if let Some(w) = link.width {
            if !PCIE_WIDTHS.contains(&w) {
                out.push((lpath.key("width"), format!("x{w} is not a PCIe width (1, 2, 4, 8, 12, 16, 32)")));
            }
        }
    }
    if let Some(fw) = &group.firmware_min {
        let radix = match group.role {
            Role::Gpu => Some(Radix::Hex),
            Role::Nic | Role::Dpu | Role::Nvme => Some(Radix::Decimal),
            Role::Nvswitch | Role::PcieSwitch => None,
        };
        match radix {
            None => out.push((
                path.key("firmware_min"),
                format!("kiln does not read firmware of {} functions", group.role.as_str()),
            )),
            Some(r) if version::segments(fw, r).is_none() => {
                out.push((path.key("firmware_min"), format!("{} is not a dotted version", quote(fw))))
            }
            Some(_) => {}
        }
    }
}
