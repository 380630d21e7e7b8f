//! Deriving a spec from a golden node: what a known-good machine has becomes
//! what every machine of its kind must have.
//!
//! Counts are taken as found; links as trained (GPU speed as the capability
//! of both ends, since idle GPUs downtrain); NUMA placement as found;
//! firmware versions found become minimums. Health thresholds that do not
//! come from the node (AER, GPU memory) are the same public figures the
//! shipped specs use.

use std::collections::BTreeMap;

use super::pci_id::PciId;
use super::platform::{
    AerRules, C2cErrorBudget, C2cRules, DeviceGroup, FabricRules, FirmwareRules, GpuHealthRules, LinkRules, MatchRules,
    NvLinkRules, PciPresence, Platform, Role, SpeedCheck,
};
use super::rules::common::Ctx;
use super::version::{self, Radix};
use crate::model::{FabricState, GpuInventory, Node, PciDevice};

/// BlueField DPU NIC functions (BlueField-2, BlueField-3): counted as DPUs,
/// not NICs.
const DPU_IDS: [PciId; 2] = [PciId { vendor: 0x15b3, device: 0xa2d6 }, PciId { vendor: 0x15b3, device: 0xa2dc }];

/// GPUs joined to their CPU by NVLink-C2C (GB200, GH200): sysfs shows a
/// narrow PCIe link that says nothing about the GPU's host bandwidth, so no
/// link is derived for them (DCGM requires only width 1 there).
const C2C_GPU_IDS: [PciId; 2] = [PciId { vendor: 0x10de, device: 0x2941 }, PciId { vendor: 0x10de, device: 0x2342 }];

/// DCGM fails a GPU at 63 retired pages (see the shipped specs).
const RETIRED_PAGES_MAX: u64 = 62;

/// The role kiln gives a PCI function in a derived spec, or `None` when the
/// function is not counted (bridges, host controllers, audio...).
pub fn role_of(device: &PciDevice) -> Option<Role> {
    let id = PciId::of(device);
    match (device.vendor_id, device.base_class(), device.class_subclass()) {
        (0x10de, 0x03, _) => Some(Role::Gpu),
        (0x10de, _, 0x0680) => Some(Role::Nvswitch),
        _ if DPU_IDS.contains(&id) => Some(Role::Dpu),
        (_, 0x02, _) => Some(Role::Nic),
        (_, _, 0x0108) => Some(Role::Nvme),
        _ => None,
    }
}

/// A spec that the given node passes, named `name`.
pub fn spec_from_node(node: &Node, name: &str) -> Platform {
    let ctx = Ctx::new(node);
    let mut by_id: BTreeMap<(Role, PciId), Vec<&PciDevice>> = BTreeMap::new();
    for d in &node.pci {
        if let Some(role) = role_of(d) {
            by_id.entry((role, PciId::of(d))).or_default().push(d);
        }
    }
    let devices: Vec<DeviceGroup> =
        by_id.into_iter().map(|((role, id), members)| group(&ctx, role, id, &members)).collect();
    let gpu_ids: Vec<PciId> = devices.iter().filter(|g| g.role == Role::Gpu).flat_map(|g| g.ids.clone()).collect();
    let detect = MatchRules {
        architecture: Some(node.cpus.architecture.clone()).filter(|a| !a.is_empty()),
        pci: if gpu_ids.is_empty() { Vec::new() } else { vec![PciPresence { ids: gpu_ids, min_count: 1 }] },
        dmi_product_name: node.dmi.product_name.iter().filter(|p| !p.trim().is_empty()).cloned().collect(),
        dmi_board_name: Vec::new(),
    };
    let gpus = node.gpus.gpus();
    let nvlink = mode(gpus.iter().filter_map(|g| g.nvlinks.as_ref()).map(|l| l.iter().filter(|l| l.active).count()))
        .filter(|n| *n > 0)
        .map(|n| NvLinkRules { links_per_gpu: n as u32, min_speed_mbps: None, errors: Default::default() });
    let all_registered =
        !gpus.is_empty() && gpus.iter().all(|g| g.fabric.as_ref().is_some_and(|f| f.state == FabricState::Completed));
    let driver_min = match &node.gpus {
        GpuInventory::Inspected { driver_version, .. } => {
            Some(driver_version.clone()).filter(|v| version::segments(v, Radix::Decimal).is_some())
        }
        GpuInventory::NotInspected { .. } => None,
    };
    let bios_min = node.dmi.bios_version.clone().filter(|v| version::segments(v, Radix::Decimal).is_some());
    let has_gpus = devices.iter().any(|g| g.role == Role::Gpu) || !gpus.is_empty();
    Platform {
        name: name.to_string(),
        description: format!("derived from golden node {}", node.hostname),
        fallback: false,
        detect,
        devices,
        aer: Some(AerRules { fatal_max: 0, nonfatal_max: None, correctable_max: None }),
        nvlink,
        fabric: all_registered.then_some(FabricRules { require_completed: true, same_clique: true, health: true }),
        // Every GPU joined to its CPU by C2C: as many links as the golden node's fewest.
        c2c: gpus
            .iter()
            .map(|g| g.c2c.as_ref().map(|c| c.links.len() as u32))
            .collect::<Option<Vec<u32>>>()
            .and_then(|counts| counts.into_iter().min())
            .filter(|n| *n > 0)
            .map(|min_links| C2cRules { min_links, min_bandwidth_mbps: None, errors: C2cErrorBudget::default() }),
        gpu_health: has_gpus
            .then_some(GpuHealthRules { ecc_volatile_uncorrected_max: 0, retired_pages_max: Some(RETIRED_PAGES_MAX) }),
        firmware: (bios_min.is_some() || driver_min.is_some()).then_some(FirmwareRules { bios_min, driver_min }),
        // One node shows neither the domain it is a tray of nor burn-in rates.
        nvlink_domain: None,
        burnin: None,
    }
}

fn group(ctx: &Ctx<'_>, role: Role, id: PciId, members: &[&PciDevice]) -> DeviceGroup {
    let n = members.len() as u32;
    // NVMe bays are filled to order; the golden node's drives are a floor.
    let (count, min_count) = if role == Role::Nvme { (None, Some(n)) } else { (Some(n), None) };
    let numa: Option<Vec<u32>> = members.iter().map(|d| d.numa_node).collect();
    DeviceGroup {
        role,
        label: members.first().and_then(|d| d.device_name.clone()),
        ids: vec![id],
        count,
        min_count,
        link: if C2C_GPU_IDS.contains(&id) { None } else { link(ctx, role, members) },
        numa: numa.filter(|_| count.is_some()),
        firmware_min: firmware_min(ctx, role, members),
    }
}

fn link(ctx: &Ctx<'_>, role: Role, members: &[&PciDevice]) -> Option<LinkRules> {
    let width = mode(members.iter().filter_map(|d| d.link.as_ref()?.current_width));
    let speed = if role == Role::Gpu {
        // The capability of both ends: idle GPUs downtrain their speed.
        mode_f64(members.iter().filter_map(|d| {
            let own = d.link.as_ref()?.max_speed_gts?;
            let up = ctx.node.upstream_port(d).and_then(|p| p.link.as_ref()?.max_speed_gts);
            Some(up.map_or(own, |u| u.min(own)))
        }))
    } else {
        mode_f64(members.iter().filter_map(|d| d.link.as_ref()?.current_speed_gts))
    };
    if width.is_none() && speed.is_none() {
        return None;
    }
    let check_speed = Some(if role == Role::Gpu { SpeedCheck::Max } else { SpeedCheck::Current });
    Some(LinkRules { speed_gts: speed, width, check_speed })
}

/// The lowest firmware version found among the members, when every member
/// has one that reads as a version.
fn firmware_min(ctx: &Ctx<'_>, role: Role, members: &[&PciDevice]) -> Option<String> {
    let radix = if role == Role::Gpu { Radix::Hex } else { Radix::Decimal };
    let versions: Option<Vec<String>> = members
        .iter()
        .map(|d| {
            let v = match role {
                Role::Gpu => ctx.gpu_at(&d.address).and_then(|g| g.vbios_version.clone()),
                Role::Nic | Role::Dpu => {
                    ctx.node.net.iter().find(|p| p.pci_address == Some(d.address)).and_then(|p| p.firmware.clone())
                }
                Role::Nvme => {
                    ctx.node.disks.iter().find(|b| b.pci_address == Some(d.address)).and_then(|b| b.firmware.clone())
                }
                Role::Nvswitch | Role::PcieSwitch => None,
            }?;
            // Keep only the version word: `28.39.1002 (MT_0000000838)` -> `28.39.1002`.
            let word = v.split_whitespace().next()?.to_string();
            version::segments(&word, radix).map(|_| word)
        })
        .collect();
    versions?.into_iter().min_by(|a, b| version::compare(a, b, radix).unwrap_or(std::cmp::Ordering::Equal))
}

/// The most common value; ties go to the larger (a golden node's odd one
/// out is more likely a fault than the rule).
fn mode<T: Ord + Copy>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut tally: BTreeMap<T, usize> = BTreeMap::new();
    for v in values {
        *tally.entry(v).or_default() += 1;
    }
    tally.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))).map(|(v, _)| v)
}

fn mode_f64(values: impl Iterator<Item = f64>) -> Option<f64> {
    // Link speeds are a handful of exact values; compare them in tenths.
    mode(values.map(|v| (v * 10.0).round() as i64)).map(|t| t as f64 / 10.0)
}

/// The spec as TOML, with a header saying where it came from.
pub fn render(platform: &Platform, node: &Node, capture: &str) -> Result<String, toml::ser::Error> {
    let body = toml::to_string(platform)?;
    let mut header = String::new();
    header.push_str("# Derived by `kiln spec from-capture` from a golden node; review before use.\n");
    header.push_str(&format!("# capture: {capture}\n# hostname: {}\n", node.hostname));
    let serial = node.dmi.product_serial.as_deref().or(node.dmi.board_serial.as_deref());
    if let Some(s) = serial {
        header.push_str(&format!("# serial: {s}\n"));
    }
    if let Some(p) = &node.dmi.product_name {
        header.push_str(&format!("# product: {p}\n"));
    }
    header.push_str(
        "# Counts, links, NUMA placement and NVLinks are as found on that node; its firmware\n\
         # versions are minimums. AER: any fatal error fails (PCIe base spec). GPU memory:\n\
         # DCGM's limits (any volatile uncorrectable ECC error, 63 retired pages, any pending\n\
         # or failed row remap).\n\n",
    );
    Ok(header + &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::spec_load::parse_spec;
    use crate::checks::testnode::{self, gpu_mut, hgx_gpu_address, pci_mut};
    use crate::checks::{validate, Outcome, Verdict};
    use std::path::Path;

    #[test]
    fn derives_counts_links_numa_and_nvlink_from_a_b200() {
        let mut node = testnode::hgx_b200();
        // Idle GPUs downtrain their link speed; the width stays.
        for i in 0..8 {
            pci_mut(&mut node, &hgx_gpu_address(i)).link.as_mut().expect("link").current_speed_gts = Some(2.5);
        }
        let spec = spec_from_node(&node, "golden-b200");
        let roles: Vec<(Role, String, Option<u32>)> =
            spec.devices.iter().map(|g| (g.role, g.ids[0].to_string(), g.count)).collect();
        assert_eq!(
            roles,
            [
                (Role::Gpu, "10de:2901".into(), Some(8)),
                (Role::Nic, "15b3:1021".into(), Some(8)),
                (Role::Dpu, "15b3:a2dc".into(), Some(2)),
                (Role::Nvme, "1344:51c3".into(), None),
                (Role::Nvme, "144d:a824".into(), None),
            ]
        );
        let gpu = &spec.devices[0];
        let link = gpu.link.as_ref().expect("gpu link");
        // Speed from capability (the GPUs idle at 2.5 GT/s), width as trained.
        assert_eq!((link.speed_gts, link.width, link.check_speed), (Some(32.0), Some(16), Some(SpeedCheck::Max)));
        assert_eq!(gpu.numa.as_deref(), Some(&[0, 0, 0, 0, 1, 1, 1, 1][..]));
        assert_eq!(gpu.firmware_min.as_deref(), Some("97.00.9C.00.1D"));
        assert_eq!(spec.nvlink.as_ref().map(|n| n.links_per_gpu), Some(18));
        assert!(spec.fabric.is_some());
        assert_eq!(spec.firmware.as_ref().and_then(|f| f.driver_min.as_deref()), Some("570.133.20"));
    }

    #[test]
    fn rendered_spec_parses_back_and_the_golden_node_passes_it() {
        let mut node = testnode::hgx_b200();
        node.dmi.product_serial = Some("SN123".into());
        let spec = spec_from_node(&node, "golden-b200");
        let text = render(&spec, &node, "captures/b200-01").expect("renders");
        assert!(text.contains("# hostname: hgx-b200-01\n# serial: SN123\n"), "{text}");
        let back = parse_spec(&text, Path::new("golden.toml")).expect("derived spec parses");
        assert_eq!(back, spec);
        let f = validate(&node, &back);
        assert_eq!(Verdict::of(&f), Verdict::Pass, "{f:#?}");
    }

    #[test]
    fn a_node_worse_than_the_golden_one_fails_the_derived_spec() {
        let golden = testnode::hgx_b200();
        let spec = spec_from_node(&golden, "golden-b200");
        let mut node = testnode::hgx_b200();
        pci_mut(&mut node, &hgx_gpu_address(1)).link.as_mut().expect("link").current_width = Some(4);
        gpu_mut(&mut node, 7).vbios_version = Some("97.00.01.00.01".into());
        let f = validate(&node, &spec);
        let fails: Vec<&str> = f.iter().filter(|x| x.outcome == Outcome::Fail).map(|x| x.check.as_str()).collect();
        assert_eq!(fails, ["pcie.width", "firmware.vbios"]);
    }

    #[test]
    fn gb200_gpus_get_no_pcie_link_and_the_tray_passes() {
        let node = testnode::gb200_tray();
        let spec = spec_from_node(&node, "golden-tray");
        assert!(spec.devices[0].link.is_none());
        assert_eq!(spec.devices[0].numa.as_deref(), Some(&[0, 0, 1, 1][..]));
        let text = render(&spec, &node, "captures/tray").expect("renders");
        assert!(text.contains("numa = [0, 0, 1, 1]"), "{text}");
        let back = parse_spec(&text, Path::new("tray.toml")).expect("parses");
        assert_eq!(Verdict::of(&validate(&node, &back)), Verdict::Pass);
    }

    #[test]
    fn a_vm_derives_a_spec_it_passes() {
        let node = testnode::vm();
        let spec = spec_from_node(&node, "vm");
        assert!(spec.gpu_health.is_none() && spec.nvlink.is_none());
        assert!(spec.devices.iter().all(|g| g.link.is_none()), "virtio links are not derived");
        let text = render(&spec, &node, "captures/vm").expect("renders");
        let back = parse_spec(&text, Path::new("vm.toml")).expect("parses");
        assert_eq!(Verdict::of(&validate(&node, &back)), Verdict::Pass);
    }
}
