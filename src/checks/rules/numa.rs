//! NUMA placement: each device of a group on the node the spec lists for its
//! position in PCI address order.

use super::common::{error, fail, pass, ratio, skipped, Ctx, REREAD};
use crate::checks::finding::{Component, Finding};
use crate::checks::platform::Platform;

const CHECK: &str = "numa.placement";

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let mut out = Vec::new();
    for group in &spec.devices {
        let Some(expected) = &group.numa else { continue };
        let members = ctx.members(group);
        let summary = Component { kind: group.role.as_str().into(), name: group.label.clone(), ..Component::node() };
        if members.len() != expected.len() {
            // With a device missing, positions no longer line up with the
            // list; judging them would blame the wrong devices.
            out.push(skipped(
                CHECK,
                summary,
                format!(
                    "{} of {} {} present; placement is judged only when all are (see {}.count)",
                    members.len(),
                    expected.len(),
                    group.role.plural(),
                    group.role.as_str()
                ),
            ));
            continue;
        }
        let noun = group.role.singular();
        let mut fails = Vec::new();
        for (device, want) in members.iter().zip(expected) {
            let comp = ctx.device_component(device, group.role.as_str(), group.label.as_deref());
            // A node kiln could not read is not a placement to blame on the BIOS.
            if let Some(problem) = device.numa_node.is_none().then(|| ctx.device_problem(device, "numa_node")).flatten()
            {
                fails.push(error(
                    CHECK,
                    comp,
                    format!("could not read the NUMA node of the {noun} at {}: {}", device.address, problem.message),
                    REREAD,
                ));
                continue;
            }
            let actual = device.numa_node.map(|n| n.to_string()).unwrap_or_else(|| "none (-1)".to_string());
            if device.numa_node != Some(*want) {
                fails.push(
                    fail(
                        CHECK,
                        comp,
                        format!("{noun} at {} is on NUMA node {actual}, expected {want}", device.address),
                        format!(
                            "check the BIOS NUMA setting (NPS/SNC) against the platform spec, and that the {noun} at \
                             {} sits in the slot the platform guide gives",
                            device.address
                        ),
                    )
                    .expected(want)
                    .actual(actual),
                );
            }
        }
        if fails.is_empty() {
            let list: Vec<String> = expected.iter().map(ToString::to_string).collect();
            out.push(
                pass(
                    CHECK,
                    summary,
                    format!("{} on their NUMA nodes", ratio(members.len(), expected.len(), &group.describe())),
                )
                .expected(format!("[{}]", list.join(", "))),
            );
        }
        out.extend(fails);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, hgx_gpu_address, of, pci_mut, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::ReadProblem;

    #[test]
    fn healthy_placement_passes() {
        let f = validate(&testnode::hgx_b200(), &spec("hgx-b200"));
        let n = of(&f, "numa.placement");
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].outcome, Outcome::Pass);
        assert_eq!(n[0].expected.as_deref(), Some("[0, 0, 0, 0, 1, 1, 1, 1]"));
    }

    #[test]
    fn gpu_on_the_wrong_node_fails() {
        let mut node = testnode::hgx_b200();
        pci_mut(&mut node, &hgx_gpu_address(5)).numa_node = Some(0);
        pci_mut(&mut node, &hgx_gpu_address(1)).numa_node = None;
        let f = validate(&node, &spec("hgx-b200"));
        let n = of(&f, "numa.placement");
        let got: Vec<_> = n.iter().map(|x| (x.outcome, x.component.gpu_index, x.actual.clone())).collect();
        assert_eq!(
            got,
            [(Outcome::Fail, Some(1), Some("none (-1)".to_string())), (Outcome::Fail, Some(5), Some("0".to_string()))]
        );
    }

    #[test]
    fn an_unreadable_numa_node_is_an_error_not_a_bios_setting() {
        let mut node = testnode::hgx_b200();
        let gpu = hgx_gpu_address(2);
        pci_mut(&mut node, &gpu).numa_node = None;
        node.problems.push(
            ReadProblem::new("sysfs", format!("sys/bus/pci/devices/{gpu}/numa_node"), "not an integer: \"x\"")
                .on(gpu.clone()),
        );
        let f = validate(&node, &spec("hgx-b200"));
        let n = of(&f, "numa.placement");
        assert_eq!(n.len(), 1, "no pass beside the error: {n:?}");
        assert_eq!((n[0].outcome, n[0].component.gpu_index), (Outcome::Error, Some(2)));
        assert!(n[0].message.contains("could not read the NUMA node") && n[0].message.contains("not an integer"));
        let action = n[0].action.as_deref().unwrap_or_default();
        assert!(!action.contains("BIOS") && action.contains("re-run kiln as root"), "{action}");
    }

    #[test]
    fn placement_is_skipped_when_a_gpu_is_missing() {
        let mut node = testnode::hgx_b200();
        testnode::remove_pci(&mut node, &hgx_gpu_address(0));
        let f = validate(&node, &spec("hgx-b200"));
        let n = of(&f, "numa.placement");
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].outcome, Outcome::Skipped);
    }
}
