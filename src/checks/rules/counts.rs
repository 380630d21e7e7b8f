//! Device counts: is every expected GPU, NIC, DPU, drive and switch present,
//! and does NVML see every GPU the PCI bus shows?

use std::collections::BTreeSet;

use super::common::{error, fail, pass, ratio, Ctx, INSTALL_DRIVER};
use crate::checks::finding::{Component, Finding};
use crate::checks::pci_id::join_ids;
use crate::checks::platform::{DeviceGroup, Platform, Role};
use crate::model::PciDevice;

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
    let parent_sigs: BTreeSet<_> =
        present.iter().filter_map(|d| ctx.node.upstream_port(d)).map(|p| signature(p)).collect();
    if parent_sigs.is_empty() {
        return Vec::new();
    }
    let has_children: BTreeSet<&str> =
        ctx.node.pci.iter().filter_map(|d| d.upstream.first()).map(String::as_str).collect();
    let suspects: Vec<String> = ctx
        .node
        .pci
        .iter()
        .filter(|d| d.is_bridge() && parent_sigs.contains(&signature(d)) && !has_children.contains(d.address.as_str()))
        .map(|d| d.address.clone())
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
