//! PCIe Advanced Error Reporting: fatal, non-fatal and correctable error
//! counts since boot, over every function that reports them.

use std::collections::BTreeMap;

use super::common::{error, fail, pass, skipped, warn, Ctx, REREAD};
use crate::checks::finding::{Component, Finding};
use crate::checks::platform::{Platform, Role};
use crate::model::{AerCounters, PciDevice};

#[derive(Clone, Copy)]
enum Kind {
    Fatal,
    NonFatal,
    Correctable,
}

impl Kind {
    fn check(self) -> &'static str {
        match self {
            Kind::Fatal => "aer.fatal",
            Kind::NonFatal => "aer.nonfatal",
            Kind::Correctable => "aer.correctable",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Kind::Fatal => "fatal",
            Kind::NonFatal => "non-fatal",
            Kind::Correctable => "correctable",
        }
    }

    fn counts(self, aer: &AerCounters) -> &BTreeMap<String, u64> {
        match self {
            Kind::Fatal => &aer.fatal,
            Kind::NonFatal => &aer.nonfatal,
            Kind::Correctable => &aer.correctable,
        }
    }
}

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let Some(rules) = &spec.aer else { return Vec::new() };
    let mut out = Vec::new();
    let budgets = [
        (Kind::Fatal, Some(rules.fatal_max)),
        (Kind::NonFatal, rules.nonfatal_max),
        (Kind::Correctable, rules.correctable_max),
    ];
    for (kind, budget) in budgets {
        if let Some(max) = budget {
            out.extend(judge(ctx, spec, kind, max));
        }
    }
    out
}

fn judge(ctx: &Ctx<'_>, spec: &Platform, kind: Kind, max: u64) -> Vec<Finding> {
    let check = kind.check();
    let reporting: Vec<&PciDevice> = ctx.node.pci.iter().filter(|d| d.aer.is_some()).collect();
    let mut out = Vec::new();
    // A device whose AER files exist but could not be read is not known clean.
    for device in ctx.node.pci.iter().filter(|d| d.aer.is_none()) {
        if let Some(p) = ctx.device_problem(device, "aer_dev") {
            out.push(error(
                check,
                component(ctx, spec, device),
                format!("could not read AER counters of {}: {}", device.address, p.message),
                REREAD,
            ));
        }
    }
    if reporting.is_empty() && out.is_empty() {
        return vec![skipped(
            check,
            Component::node(),
            "no PCI function reports AER counters (virtual machines and kernels without AER do not)",
        )];
    }
    for device in &reporting {
        let Some(aer) = &device.aer else { continue };
        let counts = kind.counts(aer);
        let total = AerCounters::total(counts);
        if total <= max {
            continue;
        }
        let named: Vec<String> = counts
            .iter()
            .filter(|(k, v)| **v > 0 && !k.starts_with("TOTAL_ERR"))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let message = format!(
            "{} {} AER errors on {} since boot (budget {max}){}",
            total,
            kind.words(),
            device.address,
            if named.is_empty() { String::new() } else { format!(": {}", named.join(", ")) }
        );
        let comp = component(ctx, spec, device);
        let finding = match kind {
            Kind::Fatal | Kind::NonFatal => fail(
                check,
                comp,
                message,
                format!(
                    "PCIe {} errors on {}: read the AER report in `dmesg`, reseat the device and its riser/cable; if \
                     they recur after a reboot, replace the part",
                    kind.words(),
                    device.address
                ),
            ),
            Kind::Correctable => warn(
                check,
                comp,
                message,
                format!(
                    "the link of {} is noisy: reseat the device and its riser/cable, then clear by reboot and watch \
                     the count under load",
                    device.address
                ),
            ),
        };
        out.push(finding.expected(format!("<= {max}")).actual(total));
    }
    if out.is_empty() {
        let without = ctx.node.pci.len() - reporting.len();
        out.push(
            pass(
                check,
                Component::node(),
                format!(
                    "no {} AER errors over budget on {} functions ({without} without AER reporting)",
                    kind.words(),
                    reporting.len()
                ),
            )
            .expected(format!("<= {max}")),
        );
    }
    out
}

/// The component of a function: its role in the spec when a group claims it.
fn component(ctx: &Ctx<'_>, spec: &Platform, device: &PciDevice) -> Component {
    let group = spec.devices.iter().find(|g| g.matches(device));
    let kind = group.map(|g| g.role.as_str()).unwrap_or(if ctx.gpu_at(&device.address).is_some() {
        Role::Gpu.as_str()
    } else {
        "pci"
    });
    ctx.device_component(device, kind, group.and_then(|g| g.label.as_deref()))
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, hgx_gpu_address, hgx_nic_address, of, pci_mut, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::ReadProblem;

    #[test]
    fn fatal_error_on_a_nic_fails_for_that_nic() {
        let mut node = testnode::hgx_b200();
        let aer = pci_mut(&mut node, &hgx_nic_address(4)).aer.as_mut().expect("aer");
        aer.fatal.insert("SDES".into(), 1);
        aer.fatal.insert("TOTAL_ERR_FATAL".into(), 1);
        let f = validate(&node, &spec("hgx-b200"));
        let a = of(&f, "aer.fatal");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].outcome, Outcome::Fail);
        assert_eq!(a[0].component.kind, "nic");
        assert_eq!(a[0].component.address.as_deref(), Some(hgx_nic_address(4).as_str()));
        assert!(a[0].message.contains("SDES 1"), "{}", a[0].message);
        assert!(a[0].action.is_some());
    }

    #[test]
    fn clean_node_passes_with_a_summary() {
        let f = validate(&testnode::hgx_b200(), &spec("hgx-b200"));
        let a = of(&f, "aer.fatal");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].outcome, Outcome::Pass);
        // Non-fatal and correctable are not judged by the shipped spec.
        assert!(of(&f, "aer.nonfatal").is_empty());
    }

    #[test]
    fn unreadable_aer_is_an_error_for_that_device() {
        let mut node = testnode::hgx_b200();
        let addr = hgx_gpu_address(7);
        pci_mut(&mut node, &addr).aer = None;
        node.problems.push(
            ReadProblem::new("sysfs", format!("sys/bus/pci/devices/{addr}/aer_dev_fatal"), "permission denied")
                .on(addr.clone()),
        );
        let f = validate(&node, &spec("hgx-b200"));
        let a = of(&f, "aer.fatal");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].outcome, a[0].component.gpu_index), (Outcome::Error, Some(7)));
    }

    #[test]
    fn vm_without_aer_is_skipped() {
        let f = validate(&testnode::vm(), &spec("generic"));
        assert_eq!(of(&f, "aer.fatal")[0].outcome, Outcome::Skipped);
    }
}
