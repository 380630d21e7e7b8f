//! What inspection could not read: an `error` finding for each problem, so a
//! part that could not be read is never reported healthy.
//!
//! DMI identity fields (serials, BIOS strings) are unreadable to non-root
//! users on many hosts and say nothing about health, so a problem reading
//! them is `skipped` (identity not checked), not an error.

use super::common::{error, pass, skipped, Ctx, REREAD};
use crate::checks::finding::{Component, Finding};
use crate::checks::platform::Platform;
use crate::model::{PciAddress, ReadProblem};

const CHECK: &str = "inspect.read_error";
const IDENTITY: &str = "inspect.identity";

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &ctx.node.problems {
        out.push(judge(ctx, spec, p, None));
    }
    for gpu in ctx.node.gpus.gpus() {
        for p in &gpu.problems {
            out.push(judge(ctx, spec, p, Some(ctx.gpu_component(gpu))));
        }
    }
    if !out.iter().any(|f| f.check == CHECK) {
        let note = if out.is_empty() { "" } else { " (identity fields aside)" };
        out.push(pass(CHECK, Component::node(), format!("inspection read everything it looked for{note}")));
    }
    out
}

fn is_identity(p: &ReadProblem) -> bool {
    p.path.contains("class/dmi/id") || p.component.as_deref() == Some("dmi")
}

fn judge(ctx: &Ctx<'_>, spec: &Platform, p: &ReadProblem, gpu: Option<Component>) -> Finding {
    let comp = gpu.unwrap_or_else(|| component(ctx, spec, p.component.as_deref()));
    let what = format!("{} {}: {}", p.source, p.path, p.message);
    if is_identity(p) {
        return skipped(IDENTITY, comp, format!("identity field not read ({what}); identity is not judged"));
    }
    error(CHECK, comp, format!("could not read {what}"), REREAD)
}

/// The component a problem names: a PCI function, `gpuN`, or the node.
fn component(ctx: &Ctx<'_>, spec: &Platform, name: Option<&str>) -> Component {
    let Some(name) = name else { return Component::node() };
    if let Some(gpu) = name
        .strip_prefix("gpu")
        .and_then(|i| i.parse::<u32>().ok())
        .and_then(|i| ctx.node.gpus.gpus().iter().find(|g| g.index == i))
    {
        return ctx.gpu_component(gpu);
    }
    if let Some(device) = PciAddress::parse(name).ok().and_then(|a| ctx.node.pci_device(&a)) {
        let group = spec.devices.iter().find(|g| g.matches(device));
        let kind = group.map(|g| g.role.as_str()).unwrap_or("pci");
        return ctx.device_component(device, kind, group.and_then(|g| g.label.as_deref()));
    }
    Component { name: Some(name.to_string()), ..Component::node() }
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, gpu_mut, hgx_nic_address, of, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::ReadProblem;

    #[test]
    fn problems_become_errors_on_their_component() {
        let mut node = testnode::hgx_b200();
        let nic = hgx_nic_address(2);
        node.problems.push(
            ReadProblem::new("sysfs", format!("sys/bus/pci/devices/{nic}/numa_node"), "not an integer: \"x\"")
                .on(nic.clone()),
        );
        gpu_mut(&mut node, 3).problems.push(ReadProblem::new("nvml", "nvmlDeviceGetSerial", "unknown error"));
        let f = validate(&node, &spec("hgx-b200"));
        let r = of(&f, "inspect.read_error");
        let got: Vec<_> = r.iter().map(|x| (x.outcome, x.component.kind.as_str(), x.component.gpu_index)).collect();
        assert_eq!(got, [(Outcome::Error, "nic", None), (Outcome::Error, "gpu", Some(3))]);
        assert_eq!(r[0].component.address.as_deref(), Some(nic.as_str()));
    }

    #[test]
    fn unreadable_dmi_identity_is_skipped_not_an_error() {
        let f = validate(&testnode::vm(), &spec("generic"));
        assert_eq!(of(&f, "inspect.identity")[0].outcome, Outcome::Skipped);
        let r = of(&f, "inspect.read_error");
        assert_eq!((r.len(), r[0].outcome), (1, Outcome::Pass));
    }
}
