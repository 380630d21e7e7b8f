//! NVLink fabric health, per GPU: each field of NVML's fabric health mask
//! (degraded bandwidth, route recovery, route unhealthy, access-timeout
//! recovery, incorrect configuration) is its own check with its own action.
//!
//! A field the driver does not report is `skipped`, never `pass`; a value or
//! bit nvml.h does not define is an `error` naming the field, not ignored.
//! Only GPUs whose registration completed are judged: before that the mask
//! says nothing (`fabric.state` fails them).

use super::common::{error, fail, pass, skipped, warn, Ctx};
use crate::checks::finding::{Component, Finding};
use crate::model::{
    incorrect_configuration_name, FabricFlag, FabricHealth, FabricInfo, FabricState, Gpu, FABRIC_HEALTH_KNOWN_BITS,
};

pub const DEGRADED_BANDWIDTH: &str = "fabric.health.degraded_bandwidth";
pub const ROUTE_RECOVERY: &str = "fabric.health.route_recovery";
pub const ROUTE_UNHEALTHY: &str = "fabric.health.route_unhealthy";
pub const ACCESS_TIMEOUT_RECOVERY: &str = "fabric.health.access_timeout_recovery";
pub const CONFIGURATION: &str = "fabric.health.configuration";
pub const MASK: &str = "fabric.health_mask";

/// One two-bit field: its check, what it says in words, whether it stops the
/// node (route and access-timeout recoveries are events the fabric survived),
/// and the technician's action for GPU `{gpu}`.
struct Field {
    check: &'static str,
    what: &'static str,
    /// Bit of the mask the field starts at, for messages about its raw value.
    shift: u32,
    critical: bool,
    read: fn(&FabricHealth) -> FabricFlag,
    action: fn(u32) -> String,
}

const FIELDS: [Field; 4] = [
    Field {
        check: DEGRADED_BANDWIDTH,
        what: "NVLink fabric bandwidth is degraded",
        shift: 0,
        critical: true,
        read: |h| h.degraded_bandwidth,
        action: |g| {
            format!(
                "GPU {g} reaches the NVLink fabric with less bandwidth than it should: check `nvidia-smi nvlink -s -i {g}` \
                 for slow or down links, reseat the tray's NVLink cable cartridges, check the switch trays, then reset \
                 the GPU and re-run"
            )
        },
    },
    Field {
        check: ROUTE_RECOVERY,
        what: "an NVLink fabric route recovery is in progress",
        shift: 2,
        critical: false,
        read: |h| h.route_recovery,
        action: |g| {
            format!(
                "the fabric is rerouting around a fault on GPU {g}'s path: wait for the recovery to finish and re-run; \
                 if it repeats, check the NVLink switch trays and their fabric manager log"
            )
        },
    },
    Field {
        check: ROUTE_UNHEALTHY,
        what: "NVLink fabric routes are unhealthy",
        shift: 4,
        critical: true,
        read: |h| h.route_unhealthy,
        action: |g| {
            format!(
                "GPU {g} has no healthy route through the NVLink switch trays: check the switch trays and the NVLink \
                 Subnet Manager log, restart fabric management, reset the GPU and re-run"
            )
        },
    },
    Field {
        check: ACCESS_TIMEOUT_RECOVERY,
        what: "GPU recovered from an NVLink access timeout",
        shift: 6,
        critical: false,
        read: |h| h.access_timeout_recovery,
        action: |g| {
            format!(
                "GPU {g} timed out reaching a peer over NVLink and recovered: re-run; if it repeats, drain the tray \
                 and check its NVLink cable cartridges and the switch trays"
            )
        },
    },
];

/// The health findings for the GPUs that reported fabric info.
pub fn check(ctx: &Ctx<'_>, reported: &[(&Gpu, &FabricInfo)]) -> Vec<Finding> {
    let registered: Vec<(&Gpu, FabricHealth)> =
        reported.iter().filter(|(_, f)| f.state == FabricState::Completed).map(|(g, f)| (*g, f.health())).collect();
    let mut out = Vec::new();
    if registered.is_empty() {
        for check in FIELDS.iter().map(|f| f.check).chain([CONFIGURATION]) {
            out.push(skipped(check, node(), "no GPU has completed fabric registration; see fabric.state"));
        }
        return out;
    }
    for (gpu, h) in &registered {
        if h.unknown_bits != 0 {
            out.push(unknown(MASK, ctx, gpu, format!("bits 0x{:x} above the fields nvml.h defines", h.unknown_bits)));
        }
    }
    for field in &FIELDS {
        out.extend(judge_field(ctx, field, &registered));
    }
    out.extend(configuration(ctx, &registered));
    out
}

fn node() -> Component {
    Component { kind: "fabric".into(), ..Component::node() }
}

fn mask_of(gpu: &Gpu) -> u32 {
    gpu.fabric.as_ref().map_or(0, |f| f.health_mask)
}

/// A mask value kiln cannot interpret: an error naming the GPU, the field and the raw mask.
fn unknown(check: &str, ctx: &Ctx<'_>, gpu: &Gpu, what: String) -> Finding {
    error(
        check,
        ctx.gpu_component(gpu),
        format!(
            "GPU {}: fabric health mask 0x{:x} (field gpus[{}].fabric.health_mask) has {what}: kiln cannot judge it",
            gpu.index,
            mask_of(gpu),
            gpu.index
        ),
        "the driver reports fabric health fields this kiln does not know: check the NVIDIA driver version against \
         the platform spec, and update kiln",
    )
    .expected(format!("only bits 0x{FABRIC_HEALTH_KNOWN_BITS:x}, with values nvml.h defines"))
    .actual(format!("0x{:x}", mask_of(gpu)))
}

fn list(indices: &[u32]) -> String {
    indices.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn judge_field(ctx: &Ctx<'_>, field: &Field, registered: &[(&Gpu, FabricHealth)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unsupported = Vec::new();
    for (gpu, h) in registered {
        match (field.read)(h) {
            FabricFlag::Clear => {}
            FabricFlag::NotSupported => unsupported.push(gpu.index),
            FabricFlag::Holds => {
                let message = format!("GPU {}: {}", gpu.index, field.what);
                let action = (field.action)(gpu.index);
                let f = if field.critical {
                    fail(field.check, ctx.gpu_component(gpu), message, action)
                } else {
                    warn(field.check, ctx.gpu_component(gpu), message, action)
                };
                out.push(f.expected("false").actual("true"));
            }
            FabricFlag::Unknown => out.push(unknown(
                field.check,
                ctx,
                gpu,
                format!("value 3 in the {} field (bits {}-{})", field.check, field.shift, field.shift + 1),
            )),
        }
    }
    if out.is_empty() {
        if unsupported.is_empty() {
            out.push(pass(field.check, node(), format!("{} GPUs report: not {}", registered.len(), field.what)));
        } else {
            out.push(skipped(
                field.check,
                node(),
                format!(
                    "the driver does not report this field on GPU {} (health mask not supported)",
                    list(&unsupported)
                ),
            ));
        }
    }
    out
}

fn configuration_action(gpu: u32, value: u32) -> String {
    match value {
        2 => format!(
            "GPU {gpu} is registered under another system GUID: check the tray's NVLink cables go to this rack's switch \
             trays, then restart fabric management"
        ),
        3 => format!(
            "the fabric expects another chassis serial for GPU {gpu}: check the tray sits in the rack and slot the \
             manifest says and that the rack's switch trays belong to it"
        ),
        4 => format!(
            "no NVLink partition holds GPU {gpu}: activate a partition for it in fabric management (NVLink Subnet \
             Manager / fabric manager) and re-run"
        ),
        5 => format!(
            "GPU {gpu} trained too few NVLinks for the fabric: see nvlink.active, reseat the tray's NVLink cable \
             cartridges, reset the GPU and re-run"
        ),
        6 => format!("GPU {gpu}'s firmware is incompatible with the fabric: update it to the rack's firmware recipe"),
        _ => format!("check GPU {gpu}'s fabric configuration with `nvidia-smi -q` (Fabric section)"),
    }
}

fn configuration(ctx: &Ctx<'_>, registered: &[(&Gpu, FabricHealth)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unsupported = Vec::new();
    for (gpu, h) in registered {
        let value = h.incorrect_configuration;
        match (value, incorrect_configuration_name(value)) {
            (1, _) => {}
            (0, _) => unsupported.push(gpu.index),
            (_, Some(reason)) => out.push(
                fail(
                    CONFIGURATION,
                    ctx.gpu_component(gpu),
                    format!("GPU {}: NVLink fabric configuration is incorrect: {reason}", gpu.index),
                    configuration_action(gpu.index, value),
                )
                .expected("none")
                .actual(reason),
            ),
            (_, None) => out.push(unknown(
                CONFIGURATION,
                ctx,
                gpu,
                format!("incorrect-configuration value {value} (bits 8-11), which nvml.h does not define"),
            )),
        }
    }
    if out.is_empty() {
        if unsupported.is_empty() {
            out.push(pass(
                CONFIGURATION,
                node(),
                format!("{} GPUs report no fabric configuration fault", registered.len()),
            ));
        } else {
            out.push(skipped(
                CONFIGURATION,
                node(),
                format!(
                    "the driver does not report this field on GPU {} (health mask not supported)",
                    list(&unsupported)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, gpu_mut, of, spec};
    use crate::checks::{validate, Outcome, Severity};
    use crate::model::{FabricState, Node};

    fn mask(node: &mut Node, gpu: u32, mask: u32) {
        gpu_mut(node, gpu).fabric.as_mut().expect("fabric info").health_mask = mask;
    }

    fn gb200() -> (Node, crate::checks::Platform) {
        (testnode::gb200_tray(), spec("gb200-nvl72-tray"))
    }

    #[test]
    fn a_healthy_tray_passes_every_field() {
        let (node, s) = gb200();
        let f = validate(&node, &s);
        for check in [
            super::DEGRADED_BANDWIDTH,
            super::ROUTE_RECOVERY,
            super::ROUTE_UNHEALTHY,
            super::ACCESS_TIMEOUT_RECOVERY,
            super::CONFIGURATION,
        ] {
            let got = of(&f, check);
            assert_eq!(got.len(), 1, "{check}");
            assert_eq!(got[0].outcome, Outcome::Pass, "{check}: {}", got[0].message);
        }
        assert!(of(&f, super::MASK).is_empty());
    }

    #[test]
    fn degraded_bandwidth_fails_that_gpu_with_a_technicians_action() {
        let (mut node, s) = gb200();
        mask(&mut node, 2, 0x1a9);
        let f = validate(&node, &s);
        let d = of(&f, super::DEGRADED_BANDWIDTH);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].outcome, d[0].severity, d[0].component.gpu_index),
            (Outcome::Fail, Severity::Critical, Some(2))
        );
        assert!(d[0].component.serial.is_some());
        assert_eq!(d[0].component.slot.as_deref(), Some("tray 4 slot 7 module 4"));
        assert!(d[0].action.as_deref().is_some_and(|a| a.contains("nvidia-smi nvlink -s -i 2")), "{:?}", d[0].action);
        // The other fields of that GPU still read clear.
        assert_eq!(of(&f, super::ROUTE_UNHEALTHY)[0].outcome, Outcome::Pass);
    }

    #[test]
    fn each_field_is_its_own_finding_and_recoveries_are_warnings() {
        let (mut node, s) = gb200();
        // GPU 0: route recovery and access-timeout recovery; GPU 1: route unhealthy.
        mask(&mut node, 0, 0x1aa & !0xcc | 0x44);
        mask(&mut node, 1, 0x1aa & !0x30 | 0x10);
        let f = validate(&node, &s);
        let rr = of(&f, super::ROUTE_RECOVERY);
        assert_eq!((rr[0].component.gpu_index, rr[0].severity), (Some(0), Severity::Warning));
        let at = of(&f, super::ACCESS_TIMEOUT_RECOVERY);
        assert_eq!((at[0].component.gpu_index, at[0].outcome), (Some(0), Outcome::Fail));
        let ru = of(&f, super::ROUTE_UNHEALTHY);
        assert_eq!((ru.len(), ru[0].component.gpu_index, ru[0].severity), (1, Some(1), Severity::Critical));
        assert_eq!(of(&f, super::DEGRADED_BANDWIDTH)[0].outcome, Outcome::Pass);
    }

    #[test]
    fn an_incorrect_configuration_names_its_reason() {
        let (mut node, s) = gb200();
        mask(&mut node, 3, 0x3aa);
        let f = validate(&node, &s);
        let c = of(&f, super::CONFIGURATION);
        assert_eq!((c.len(), c[0].outcome, c[0].component.gpu_index), (1, Outcome::Fail, Some(3)));
        assert_eq!(c[0].actual.as_deref(), Some("incorrect chassis serial number"));
        assert!(c[0].action.as_deref().is_some_and(|a| a.contains("slot the manifest says")));
    }

    #[test]
    fn a_driver_without_the_mask_is_skipped_never_passed() {
        // An HGX B200 on a driver reporting none of the fields (mask 0).
        let mut node = testnode::hgx_b200();
        for i in 0..8 {
            mask(&mut node, i, 0);
        }
        let f = validate(&node, &spec("hgx-b200"));
        for check in [super::DEGRADED_BANDWIDTH, super::ROUTE_UNHEALTHY, super::CONFIGURATION] {
            let got = of(&f, check);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].outcome, Outcome::Skipped, "{check}");
            assert!(got[0].message.contains("GPU 0, 1, 2, 3, 4, 5, 6, 7"), "{}", got[0].message);
        }
    }

    #[test]
    fn unknown_bits_and_values_are_errors_naming_the_field() {
        let (mut node, s) = gb200();
        mask(&mut node, 1, 0x1aa | 0x4000);
        mask(&mut node, 2, 0x1aa | 0x3);
        mask(&mut node, 3, 0x1aa & !0xf00 | 0xd00);
        let f = validate(&node, &s);
        let e = of(&f, super::MASK);
        assert_eq!(
            e.iter().map(|x| (x.outcome, x.component.gpu_index)).collect::<Vec<_>>(),
            [(Outcome::Error, Some(1))]
        );
        assert!(e[0].message.contains("gpus[1].fabric.health_mask"), "{}", e[0].message);
        assert!(e[0].message.contains("0x4000"), "{}", e[0].message);
        // A field holding a value nvml.h does not define is an error of that field, never a pass.
        let d = of(&f, super::DEGRADED_BANDWIDTH);
        assert_eq!(
            d.iter().map(|x| (x.outcome, x.component.gpu_index)).collect::<Vec<_>>(),
            [(Outcome::Error, Some(2))]
        );
        assert!(d[0].message.contains("bits 0-1"), "{}", d[0].message);
        let c = of(&f, super::CONFIGURATION);
        assert_eq!(
            c.iter().map(|x| (x.outcome, x.component.gpu_index)).collect::<Vec<_>>(),
            [(Outcome::Error, Some(3))]
        );
        assert!(c[0].message.contains("value 13"), "{}", c[0].message);
    }

    #[test]
    fn unregistered_gpus_are_left_to_fabric_state() {
        let (mut node, s) = gb200();
        for i in 0..4 {
            let fabric = gpu_mut(&mut node, i).fabric.as_mut().expect("fabric info");
            fabric.state = FabricState::InProgress;
            fabric.health_mask = 0x1a9;
        }
        let f = validate(&node, &s);
        assert_eq!(of(&f, super::DEGRADED_BANDWIDTH)[0].outcome, Outcome::Skipped);
        assert_eq!(of(&f, "fabric.state").len(), 4);
    }

    #[test]
    fn the_burnin_gate_blocks_a_gpu_with_degraded_bandwidth() {
        let (mut node, s) = gb200();
        mask(&mut node, 1, 0x1a9);
        let g = crate::checks::rules::fabric::gate(&crate::checks::rules::common::Ctx::new(&node), &s);
        assert_eq!(g.blocked.keys().copied().collect::<Vec<_>>(), [1]);
    }
}
