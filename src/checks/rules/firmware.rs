//! Minimum firmware and driver versions: VBIOS, NIC/DPU and NVMe firmware per
//! device group, BIOS and NVIDIA driver per node.

use std::cmp::Ordering;

use super::common::{error, fail, pass, skipped, Ctx, INSTALL_DRIVER, REREAD};
use crate::checks::finding::{Component, Finding, Outcome};
use crate::checks::platform::{DeviceGroup, Platform, Role};
use crate::checks::version::{self, Radix};
use crate::model::{GpuInventory, PciAddress};

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let mut out = Vec::new();
    for group in &spec.devices {
        if let Some(min) = &group.firmware_min {
            out.extend(group_firmware(ctx, group, min));
        }
    }
    if let Some(fw) = &spec.firmware {
        if let Some(min) = &fw.bios_min {
            out.push(bios(ctx, min));
        }
        if let Some(min) = &fw.driver_min {
            out.push(driver(ctx, min));
        }
    }
    out
}

/// Where a group's firmware version is read, and its check id.
fn source(role: Role) -> Option<(&'static str, Radix, &'static str)> {
    match role {
        Role::Gpu => Some(("firmware.vbios", Radix::Hex, "VBIOS")),
        Role::Nic => Some(("firmware.nic", Radix::Decimal, "NIC firmware")),
        Role::Dpu => Some(("firmware.dpu", Radix::Decimal, "DPU firmware")),
        Role::Nvme => Some(("firmware.nvme", Radix::Decimal, "NVMe firmware")),
        Role::Nvswitch | Role::PcieSwitch => None,
    }
}

/// The firmware version inspection found for a function, if any.
fn version_of(ctx: &Ctx<'_>, role: Role, address: &PciAddress) -> Option<String> {
    match role {
        Role::Gpu => ctx.gpu_at(address).and_then(|g| g.vbios_version.clone()),
        Role::Nic | Role::Dpu => {
            ctx.node.net.iter().find(|p| p.pci_address.as_ref() == Some(address)).and_then(|p| p.firmware.clone())
        }
        Role::Nvme => {
            ctx.node.disks.iter().find(|d| d.pci_address.as_ref() == Some(address)).and_then(|d| d.firmware.clone())
        }
        Role::Nvswitch | Role::PcieSwitch => None,
    }
}

fn group_firmware(ctx: &Ctx<'_>, group: &DeviceGroup, min: &str) -> Vec<Finding> {
    let Some((check, radix, what)) = source(group.role) else { return Vec::new() };
    let summary = Component { kind: group.role.as_str().into(), name: group.label.clone(), ..Component::node() };
    if group.role == Role::Gpu {
        if let Err(reason) = ctx.nvml_gpus() {
            return vec![error(check, summary, format!("VBIOS not inspected: {reason}"), INSTALL_DRIVER)];
        }
    }
    let members = ctx.members(group);
    if members.is_empty() {
        return vec![skipped(check, summary, format!("no {} present to judge", group.describe()))];
    }
    let mut out = Vec::new();
    for device in &members {
        let comp = ctx.device_component(device, group.role.as_str(), group.label.as_deref());
        let Some(have) = version_of(ctx, group.role, &device.address) else {
            out.push(error(check, comp, format!("{what} version of {} not found", device.address), REREAD));
            continue;
        };
        out.push(compare(check, comp, what, &have, min, radix, &device.address.to_string()));
    }
    if out.iter().all(|f| f.outcome == Outcome::Pass) {
        let n = members.len();
        return vec![pass(check, summary, format!("{n}/{n} {} at {what} >= {min}", group.describe()))
            .expected(format!(">= {min}"))];
    }
    out.retain(|f| f.outcome != Outcome::Pass);
    out
}

fn compare(check: &str, comp: Component, what: &str, have: &str, min: &str, radix: Radix, place: &str) -> Finding {
    match version::compare(have, min, radix) {
        Some(Ordering::Less) => fail(
            check,
            comp,
            format!("{what} {have} on {place} is older than {min}"),
            format!("update the {what} on {place} to {min} or later"),
        )
        .expected(format!(">= {min}"))
        .actual(have),
        Some(_) => pass(check, comp, format!("{what} {have} on {place}")).expected(format!(">= {min}")).actual(have),
        None => error(
            check,
            comp,
            format!("cannot compare {what} {have:?} on {place} with minimum {min:?}"),
            format!("check the {what} version by hand against {min}"),
        )
        .actual(have),
    }
}

fn bios(ctx: &Ctx<'_>, min: &str) -> Finding {
    const CHECK: &str = "firmware.bios";
    let comp = Component { kind: "bios".into(), ..Component::node() };
    match &ctx.node.dmi.bios_version {
        Some(have) => compare(CHECK, comp, "BIOS", have, min, Radix::Decimal, "this node"),
        None => error(CHECK, comp, "BIOS version not read from DMI", REREAD),
    }
}

fn driver(ctx: &Ctx<'_>, min: &str) -> Finding {
    const CHECK: &str = "driver.version";
    let comp = Component { kind: "driver".into(), ..Component::node() };
    match &ctx.node.gpus {
        GpuInventory::Inspected { driver_version, .. } => {
            compare(CHECK, comp, "NVIDIA driver", driver_version, min, Radix::Decimal, "this node")
        }
        GpuInventory::NotInspected { reason } => {
            error(CHECK, comp, format!("NVIDIA driver version not read: {reason}"), INSTALL_DRIVER)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::platform::FirmwareRules;
    use crate::checks::testnode::{self, gpu_mut, hgx_nic_address, of, spec};
    use crate::checks::{validate, Outcome};

    #[test]
    fn old_vbios_fails_for_that_gpu() {
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 4).vbios_version = Some("97.00.09.00.01".into());
        let mut s = spec("hgx-b200");
        s.devices[0].firmware_min = Some("97.00.0A.00.00".into());
        let f = validate(&node, &s);
        let v = of(&f, "firmware.vbios");
        assert_eq!((v.len(), v[0].outcome, v[0].component.gpu_index), (1, Outcome::Fail, Some(4)));
    }

    #[test]
    fn nic_firmware_and_driver_minimums() {
        let mut node = testnode::hgx_b200();
        // The ConnectX-7 beside GPU 0 runs old firmware; its port says so.
        let nic: crate::model::PciAddress = hgx_nic_address(0).parse().expect("address");
        for port in node.net.iter_mut().filter(|p| p.pci_address == Some(nic)) {
            port.firmware = Some("28.39.1002 (MT_0000000838)".into());
        }
        // A BIOS version not read is an error, not a pass.
        node.dmi.bios_version = None;
        let mut s = spec("hgx-b200");
        s.devices[1].firmware_min = Some("28.40.1000".into());
        s.firmware = Some(FirmwareRules { bios_min: Some("1.2".into()), driver_min: Some("570.124.06".into()) });
        let f = validate(&node, &s);
        let n = of(&f, "firmware.nic");
        assert_eq!((n.len(), n[0].outcome), (1, Outcome::Fail));
        assert_eq!(n[0].actual.as_deref(), Some("28.39.1002 (MT_0000000838)"));
        assert_eq!(of(&f, "driver.version")[0].outcome, Outcome::Pass);
        assert_eq!(of(&f, "firmware.bios")[0].outcome, Outcome::Error);
    }
}
