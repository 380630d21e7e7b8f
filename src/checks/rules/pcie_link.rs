//! PCIe link width and speed of each device in a group.
//!
//! A link can train no faster and no wider than the weaker of its two ends,
//! so the capability of a link is the lower of the device's max and its
//! upstream port's max; every finding says which end set it. Width is judged
//! on the trained (current) width. Speed is judged per the spec's
//! `check_speed`: `max` (the capability must reach the expected speed, and a
//! current speed between the idle Gen1 and the expected one is a link that
//! trained down; the default for GPUs, which drop to Gen1 when idle) or
//! `current`.

use super::common::{error, fail, pass, ratio, skipped, Ctx, REREAD};
use crate::checks::finding::{Component, Finding, Outcome};
use crate::checks::platform::{DeviceGroup, LinkRules, Platform, SpeedCheck};
use crate::model::{pcie_generation, PciDevice};

const WIDTH: &str = "pcie.width";
/// The speed an idle GPU link drops to for power saving (Gen1). A link below
/// its capability but above this did not drop for power: it trained down.
const IDLE_SPEED_GTS: f64 = 2.5;
const SPEED: &str = "pcie.speed";

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let mut out = Vec::new();
    for group in &spec.devices {
        let Some(link) = &group.link else { continue };
        let members = ctx.members(group);
        let summary = Component { kind: group.role.as_str().into(), name: group.label.clone(), ..Component::node() };
        if let Some(width) = link.width {
            let found: Vec<Finding> = members.iter().map(|d| judge_width(ctx, group, d, width)).collect();
            out.extend(summarize(WIDTH, found, &summary, &members, group, &format!("at x{width}")));
        }
        let mode = link.speed_check(group.role);
        if let (Some(speed), true) = (link.speed_gts, mode != SpeedCheck::None) {
            let found: Vec<Finding> = members.iter().map(|d| judge_speed(ctx, group, link, d, speed)).collect();
            let what = match mode {
                SpeedCheck::Max => format!("capable of {}", gts(speed)),
                _ => format!("trained at {}", gts(speed)),
            };
            out.extend(summarize(SPEED, found, &summary, &members, group, &what));
        }
    }
    out
}

/// Keeps the per-device findings that are not passes, and adds one pass for
/// the group when every device passed ("8/8 GPUs at x16").
fn summarize(
    check: &str,
    found: Vec<Finding>,
    summary: &Component,
    members: &[&PciDevice],
    group: &DeviceGroup,
    what: &str,
) -> Vec<Finding> {
    if members.is_empty() {
        return vec![skipped(check, summary.clone(), format!("no {} present to judge", group.describe()))];
    }
    if found.iter().all(|f| f.outcome == Outcome::Pass) {
        let n = members.len();
        return vec![pass(check, summary.clone(), format!("{} {what}", ratio(n, n, &group.describe())))];
    }
    found.into_iter().filter(|f| f.outcome != Outcome::Pass).collect()
}

/// The lower of two ends' maxima, and which end it came from.
struct Capability<T> {
    value: T,
    limited_by: String,
}

fn capability<T: PartialOrd + Copy + std::fmt::Display>(
    ctx: &Ctx<'_>,
    device: &PciDevice,
    own: Option<T>,
    upstream_of: impl Fn(&PciDevice) -> Option<T>,
    show: impl Fn(T) -> String,
) -> Option<Capability<T>> {
    let own = own?;
    let up = ctx.node.upstream_port(device).and_then(|p| upstream_of(p).map(|v| (p.address, v)));
    Some(match up {
        Some((addr, v)) if v < own => Capability {
            value: v,
            limited_by: format!("upstream port {addr} max {}, device max {}", show(v), show(own)),
        },
        Some((addr, v)) => Capability {
            value: own,
            limited_by: format!("device max {}, upstream port {addr} max {}", show(own), show(v)),
        },
        None => Capability { value: own, limited_by: format!("device max {}; no upstream port", show(own)) },
    })
}

fn judge_width(ctx: &Ctx<'_>, group: &DeviceGroup, device: &PciDevice, width: u32) -> Finding {
    let noun = group.role.singular();
    let comp = component(ctx, group, device);
    let Some(link) = &device.link else {
        return unread(ctx, WIDTH, comp, device, "link state");
    };
    let Some(current) = link.current_width else {
        return unread(ctx, WIDTH, comp, device, "current_link_width");
    };
    let cap =
        capability(ctx, device, link.max_width, |p| p.link.as_ref().and_then(|l| l.max_width), |w| format!("x{w}"));
    let cap_note = cap.as_ref().map(|c| format!(" (capability x{}: {})", c.value, c.limited_by)).unwrap_or_default();
    if current >= width {
        return pass(WIDTH, comp, format!("{noun} at {} trained to x{current}{cap_note}", device.address))
            .expected(format!("x{width}"))
            .actual(format!("x{current}"));
    }
    let message = format!("{noun} at {} trained to x{current}, expected x{width}{cap_note}", device.address);
    let action = match &cap {
        Some(c) if c.value < width && c.limited_by.starts_with("upstream") => format!(
            "{noun} at {} can only train to x{}: its upstream port is limited; check the riser/cable and the \
             BIOS bifurcation setting for the slot",
            device.address, c.value
        ),
        _ => format!("{noun} at {} trained to x{current}: reseat the {noun} or check riser", device.address),
    };
    fail(WIDTH, comp, message, action).expected(format!("x{width}")).actual(format!("x{current}"))
}

fn judge_speed(ctx: &Ctx<'_>, group: &DeviceGroup, rules: &LinkRules, device: &PciDevice, speed: f64) -> Finding {
    let noun = group.role.singular();
    let comp = component(ctx, group, device);
    let Some(link) = &device.link else {
        return unread(ctx, SPEED, comp, device, "link state");
    };
    let cap = capability(ctx, device, link.max_speed_gts, |p| p.link.as_ref().and_then(|l| l.max_speed_gts), gts);
    let current = link.current_speed_gts.map(gts).unwrap_or_else(|| "unknown".into());
    match rules.speed_check(group.role) {
        SpeedCheck::Max => {
            let Some(cap) = cap else {
                return unread(ctx, SPEED, comp, device, "max_link_speed");
            };
            let message = format!(
                "{noun} at {} link capable of {} ({}); currently {current}",
                device.address,
                gts(cap.value),
                cap.limited_by
            );
            let trained_down = link.current_speed_gts.filter(|now| *now > IDLE_SPEED_GTS + 0.01 && *now + 0.01 < speed);
            if let (Some(now), true) = (trained_down, cap.value + 0.01 >= speed) {
                // Capable of the expected speed, yet running at an intermediate
                // generation: idle power saving drops a GPU link to Gen1, not to
                // Gen4, so this link trained down (signal integrity, riser).
                fail(
                    SPEED,
                    comp,
                    format!("{message}; trained at {} although capable of {}", gts(now), gts(speed)),
                    format!(
                        "{noun} at {} trained at {} instead of {}: reseat the {noun} or check the riser/cable, \
                         then re-run under load",
                        device.address,
                        gts(now),
                        gts(speed)
                    ),
                )
                .expected(format!(">= {}", gts(speed)))
                .actual(gts(now))
            } else if cap.value + 0.01 >= speed {
                pass(SPEED, comp, message).expected(format!(">= {}", gts(speed))).actual(gts(cap.value))
            } else {
                fail(
                    SPEED,
                    comp,
                    format!("{message}; expected {}", gts(speed)),
                    format!(
                        "{noun} at {} link is limited to {} by the {}: check the BIOS PCIe speed setting for the slot, \
                         then reseat the {noun} or the riser",
                        device.address,
                        gts(cap.value),
                        if cap.limited_by.starts_with("upstream") { "upstream port" } else { "device" }
                    ),
                )
                .expected(format!(">= {}", gts(speed)))
                .actual(gts(cap.value))
            }
        }
        SpeedCheck::Current | SpeedCheck::None => {
            let Some(now) = link.current_speed_gts else {
                return unread(ctx, SPEED, comp, device, "current_link_speed");
            };
            let cap_note = cap.as_ref().map(|c| format!(" (capability {}: {})", gts(c.value), c.limited_by));
            let cap_note = cap_note.unwrap_or_default();
            let message = format!("{noun} at {} trained at {}{cap_note}", device.address, gts(now));
            if now + 0.01 >= speed {
                pass(SPEED, comp, message).expected(format!(">= {}", gts(speed))).actual(gts(now))
            } else {
                fail(
                    SPEED,
                    comp,
                    format!("{message}; expected {}", gts(speed)),
                    format!(
                        "{noun} at {} trained at {} instead of {}: reseat the {noun} or check the riser/cable; check \
                         the BIOS PCIe speed setting for the slot",
                        device.address,
                        gts(now),
                        gts(speed)
                    ),
                )
                .expected(format!(">= {}", gts(speed)))
                .actual(gts(now))
            }
        }
    }
}

fn component(ctx: &Ctx<'_>, group: &DeviceGroup, device: &PciDevice) -> Component {
    ctx.device_component(device, group.role.as_str(), group.label.as_deref())
}

/// A link value inspection did not deliver: an error, never a pass.
fn unread(ctx: &Ctx<'_>, check: &str, comp: Component, device: &PciDevice, what: &str) -> Finding {
    let why = ctx
        .device_problem(device, "link")
        .map(|p| format!(": {}", p.message))
        .unwrap_or_else(|| ": not reported by sysfs".to_string());
    error(check, comp, format!("could not read {what} of {}{why}", device.address), REREAD)
}

/// `32 GT/s (Gen5)`.
pub fn gts(speed: f64) -> String {
    let num = if speed.fract() == 0.0 { format!("{speed:.0}") } else { format!("{speed}") };
    match pcie_generation(speed) {
        Some(g) => format!("{num} GT/s (Gen{g})"),
        None => format!("{num} GT/s"),
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, hgx_gpu_address, hgx_gpu_port, hgx_nic_address, of, pci_mut, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::LinkState;

    fn link_mut<'a>(node: &'a mut crate::model::Node, address: &str) -> &'a mut LinkState {
        pci_mut(node, address).link.as_mut().expect("test device has a link")
    }

    #[test]
    fn healthy_gpus_pass_width_and_speed_despite_idle_downtraining() {
        let f = validate(&testnode::hgx_b200(), &spec("hgx-b200"));
        let w = of(&f, "pcie.width");
        let s = of(&f, "pcie.speed");
        assert_eq!(w.len(), 2, "one summary per group (GPU, NIC)");
        assert_eq!(s.len(), 2);
        assert!(w.iter().chain(&s).all(|x| x.outcome == Outcome::Pass));
        assert_eq!(w[0].message, "8/8 B200 GPUs at x16");
        assert_eq!(s[0].message, "8/8 B200 GPUs capable of 32 GT/s (Gen5)");
    }

    #[test]
    fn gpu_at_x8_is_exactly_one_width_fail_with_an_action() {
        let mut node = testnode::hgx_b200();
        link_mut(&mut node, &hgx_gpu_address(2)).current_width = Some(8);
        let f = validate(&node, &spec("hgx-b200"));
        let w = of(&f, "pcie.width");
        let fails: Vec<_> = w.iter().filter(|x| x.outcome == Outcome::Fail).collect();
        assert_eq!(fails.len(), 1);
        let x = fails[0];
        assert_eq!(x.component.address.as_deref(), Some(hgx_gpu_address(2).as_str()));
        assert_eq!(x.component.gpu_index, Some(2));
        assert_eq!(x.component.serial.as_deref(), Some("1652424000018"));
        assert_eq!((x.expected.as_deref(), x.actual.as_deref()), (Some("x16"), Some("x8")));
        assert_eq!(
            x.action.as_deref(),
            Some(format!("GPU at {} trained to x8: reseat the GPU or check riser", hgx_gpu_address(2)).as_str())
        );
        assert!(x.message.contains("capability x16"), "{}", x.message);
        // The NIC group still passes; the GPU group has no pass summary.
        assert_eq!(w.iter().filter(|x| x.outcome == Outcome::Pass).count(), 1);
    }

    #[test]
    fn gen4_capable_gpu_fails_speed_and_says_which_end_limits_it() {
        let mut node = testnode::hgx_b200();
        link_mut(&mut node, &hgx_gpu_port(6)).max_speed_gts = Some(16.0);
        let f = validate(&node, &spec("hgx-b200"));
        let fails: Vec<_> = of(&f, "pcie.speed").into_iter().filter(|x| x.outcome == Outcome::Fail).collect();
        assert_eq!(fails.len(), 1);
        assert_eq!(fails[0].component.gpu_index, Some(6));
        assert_eq!(fails[0].actual.as_deref(), Some("16 GT/s (Gen4)"));
        assert!(
            fails[0].message.contains(&format!("upstream port {} max 16 GT/s", hgx_gpu_port(6))),
            "{}",
            fails[0].message
        );
        assert!(fails[0].action.as_deref().is_some_and(|a| a.contains("upstream port")));
    }

    #[test]
    fn nic_trained_at_gen4_fails_on_current_speed() {
        let mut node = testnode::hgx_b200();
        link_mut(&mut node, &hgx_nic_address(1)).current_speed_gts = Some(16.0);
        let f = validate(&node, &spec("hgx-b200"));
        let fails: Vec<_> = of(&f, "pcie.speed").into_iter().filter(|x| x.outcome == Outcome::Fail).collect();
        assert_eq!(fails.len(), 1);
        assert_eq!(fails[0].component.kind, "nic");
        assert!(fails[0].message.contains("trained at 16 GT/s (Gen4)"), "{}", fails[0].message);
    }

    #[test]
    fn unreadable_link_is_an_error_not_a_pass() {
        let mut node = testnode::hgx_b200();
        link_mut(&mut node, &hgx_gpu_address(0)).current_width = None;
        let f = validate(&node, &spec("hgx-b200"));
        let w: Vec<_> = of(&f, "pcie.width").into_iter().filter(|x| x.component.gpu_index == Some(0)).collect();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].outcome, Outcome::Error);
    }

    #[test]
    fn gb200_gpus_have_no_pcie_width_asserted() {
        let f = validate(&testnode::gb200_tray(), &spec("gb200-nvl72-tray"));
        assert!(of(&f, "pcie.width").is_empty());
        assert!(of(&f, "pcie.speed").is_empty());
    }
}
