//! Device counts: is every expected GPU, NIC, DPU, drive and switch present,
//! and does NVML see every GPU the PCI bus shows?

use std::collections::BTreeSet;

use super::common::{error, fail, pass, ratio, Ctx, INSTALL_DRIVER};
use crate::checks::finding::{Component, Finding};
use crate::checks::pci_id::join_ids;
use crate::checks::platform::{DeviceGroup, Platform, Role};
use crate::model::{PciAddress, PciDevice};

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let mut out = Vec::new();
    for group in &spec.devices {
        out.push(count(ctx, group));
        if group.role == Role::Gpu {
            out.extend(nvml_visible(ctx, group));
        }
    }
    out
}

fn count(ctx: &Ctx<'_>, group: &DeviceGroup) -> Finding {
    let check = format!("{}.count", group.role.as_str());
    let members = ctx.members(group);
    let found = members.len();
    let component = Component { kind: group.role.as_str().into(), name: group.label.clone(), ..Component::node() };
    let ids = join_ids(&group.ids);
    let (ok, expected) = match (group.count, group.min_count) {
        (Some(c), _) => (found == c as usize, format!("{c}")),
        (None, Some(m)) => (found >= m as usize, format!(">= {m}")),
        (None, None) => (true, "any".to_string()),
    };
    let what = group.describe();
    if ok {
        let message = match group.count {
            Some(c) => format!("{} present", ratio(found, c as usize, &what)),
            None => format!("{found} {what} present (expected {expected})"),
        };
        return pass(&check, component, message).expected(&expected).actual(found);
    }
    let message = format!("expected {expected} {} ({ids}), found {found}", group.role.plural());
    let action = if found < group.expected_at_least() as usize {
        let missing = group.expected_at_least() as usize - found;
        let noun = group.role.singular();
        match empty_ports(ctx, &members, missing).as_slice() {
            [] => format!(
                "{noun} missing: check seating and power of every {noun}; compare with the previous inventory \
                 (`kiln report`)"
            ),
            ports => format!(
                "{noun} absent below {} {}? check seating and power; compare with the previous inventory",
                if ports.len() == 1 { "switch port" } else { "switch ports" },
                ports.join(", ")
            ),
        }
    } else {
        format!(
            "more {} than the spec expects: check that the platform spec matches this node (--platform)",
            group.role.plural()
        )
    };
    fail(&check, component, format!("{message}: {}", action_lead(found, group)), action)
        .expected(expected)
        .actual(found)
}

fn action_lead(found: usize, group: &DeviceGroup) -> String {
    if found < group.expected_at_least() as usize {
        format!("{} missing", group.expected_at_least() as usize - found)
    } else {
        "too many".to_string()
    }
}

/// Downstream ports that look like where a missing device should be: bridges
/// of the same kind and depth as the ports the present devices hang from,
/// with nothing at all below them. Only named when there are no more of them
/// than devices missing; otherwise the guess would mislead.
fn empty_ports(ctx: &Ctx<'_>, present: &[&PciDevice], missing: usize) -> Vec<String> {
    let signature = |d: &PciDevice| (d.vendor_id, d.device_id, d.upstream.len());
    let parent_sigs: BTreeSet<_> = present.iter().filter_map(|d| ctx.node.upstream_port(d)).map(signature).collect();
    if parent_sigs.is_empty() {
        return Vec::new();
    }
    let has_children: BTreeSet<&PciAddress> = ctx.node.pci.iter().filter_map(|d| d.upstream.first()).collect();
    let suspects: Vec<String> = ctx
        .node
        .pci
        .iter()
        .filter(|d| d.is_bridge() && parent_sigs.contains(&signature(d)) && !has_children.contains(&d.address))
        .map(|d| d.address.to_string())
        .collect();
    if suspects.len() <= missing {
        suspects
    } else {
        Vec::new()
    }
}

/// Every GPU on the PCI bus must be listed by NVML: a GPU that fell off the
/// bus in the driver's view (Xid 79) still shows in sysfs.
fn nvml_visible(ctx: &Ctx<'_>, group: &DeviceGroup) -> Vec<Finding> {
    const CHECK: &str = "gpu.nvml_visible";
    let members = ctx.members(group);
    if let Err(reason) = ctx.nvml_gpus() {
        if group.expected_at_least() == 0 {
            return Vec::new();
        }
        return vec![error(
            CHECK,
            Component { kind: "gpu".into(), name: group.label.clone(), ..Component::node() },
            format!("GPUs not inspected through NVML: {reason}"),
            INSTALL_DRIVER,
        )];
    }
    if members.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for device in &members {
        if ctx.gpu_at(&device.address).is_none() {
            out.push(fail(
                CHECK,
                ctx.device_component(device, "gpu", group.label.as_deref()),
                format!("GPU at {} is on the PCI bus but NVML does not list it", device.address),
                format!(
                    "check `dmesg` for Xid or RmInit errors on {}; reset the GPU or reboot; if it stays missing, \
                     reseat or RMA it",
                    device.address
                ),
            ));
        }
    }
    if out.is_empty() {
        out.push(pass(
            CHECK,
            Component { kind: "gpu".into(), name: group.label.clone(), ..Component::node() },
            format!("{} visible to NVML", ratio(members.len(), members.len(), &group.describe())),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, hgx_gpu_address, hgx_gpu_port, of, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::GpuInventory;

    #[test]
    fn healthy_b200_has_every_device() {
        let f = validate(&testnode::hgx_b200(), &spec("hgx-b200"));
        for check in ["gpu.count", "nic.count", "dpu.count", "gpu.nvml_visible"] {
            let found = of(&f, check);
            assert_eq!(found.len(), 1, "{check}");
            assert_eq!(found[0].outcome, Outcome::Pass, "{check}: {}", found[0].message);
        }
        assert_eq!(of(&f, "gpu.count")[0].message, "8/8 B200 GPUs present");
    }

    #[test]
    fn missing_gpu_fails_the_count_and_names_the_empty_port() {
        let mut node = testnode::hgx_b200();
        testnode::remove_pci(&mut node, &hgx_gpu_address(3));
        let f = validate(&node, &spec("hgx-b200"));
        let count = of(&f, "gpu.count");
        assert_eq!(count.len(), 1);
        assert_eq!(count[0].outcome, Outcome::Fail);
        assert_eq!((count[0].expected.as_deref(), count[0].actual.as_deref()), (Some("8"), Some("7")));
        assert!(
            count[0].message.starts_with("expected 8 GPUs (10de:2901, 10de:2909), found 7"),
            "{}",
            count[0].message
        );
        let action = count[0].action.as_deref().expect("action");
        assert!(action.contains(&format!("GPU absent below switch port {}?", hgx_gpu_port(3))), "{action}");
        // The other GPUs are all still visible to NVML.
        assert_eq!(of(&f, "gpu.nvml_visible")[0].outcome, Outcome::Pass);
    }

    #[test]
    fn too_many_devices_fail_too() {
        let mut node = testnode::hgx_b200();
        let mut extra = node.pci.iter().find(|d| d.device_id == 0x1021).expect("a NIC").clone();
        extra.address = "0000:f0:00.0".parse().expect("address");
        extra.upstream.clear();
        node.pci.push(extra);
        let f = validate(&node, &spec("hgx-b200"));
        let c = of(&f, "nic.count");
        assert_eq!((c[0].outcome, c[0].actual.as_deref()), (Outcome::Fail, Some("9")));
        assert!(c[0].action.as_deref().is_some_and(|a| a.contains("--platform")));
    }

    #[test]
    fn gpu_on_the_bus_but_not_in_nvml_fails() {
        let mut node = testnode::hgx_b200();
        if let GpuInventory::Inspected { gpus, .. } = &mut node.gpus {
            gpus.retain(|g| g.index != 5);
        }
        let f = validate(&node, &spec("hgx-b200"));
        let v = of(&f, "gpu.nvml_visible");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].outcome, Outcome::Fail);
        assert_eq!(v[0].component.address.as_deref(), Some(hgx_gpu_address(5).as_str()));
        assert_eq!(of(&f, "gpu.count")[0].outcome, Outcome::Pass);
    }

    #[test]
    fn no_driver_still_counts_gpus_on_pci_but_nvml_checks_are_errors() {
        let mut node = testnode::hgx_b200();
        node.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        let f = validate(&node, &spec("hgx-b200"));
        assert_eq!(of(&f, "gpu.count")[0].outcome, Outcome::Pass);
        let v = of(&f, "gpu.nvml_visible");
        assert_eq!(v[0].outcome, Outcome::Error);
        assert_eq!(v[0].action.as_deref(), Some("install the NVIDIA driver and re-run"));
    }
}
