//! NUMA placement: each device of a group on the node the spec lists for its
//! position in PCI address order.

use super::common::{fail, pass, ratio, skipped, Ctx};
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
