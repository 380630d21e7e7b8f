//! NVLink-C2C, per GPU: the link between each GPU and its Grace CPU (GB200).
//! Every link NVML lists is active, at least as many as the spec says, each
//! fast enough, and the error counters inside their budgets.

use super::common::{error, fail, pass, ratio, skipped, warn, Ctx, INSTALL_DRIVER, REREAD};
use super::nvlink::gpu_where;
use crate::checks::finding::{Component, Finding};
use crate::checks::platform::{C2cRules, Platform};
use crate::model::{C2c, Gpu};

pub const ACTIVE: &str = "c2c.active";
pub const BANDWIDTH: &str = "c2c.bandwidth";
pub const ERRORS: &str = "c2c.errors";

const RESEAT: &str = "the C2C link joins the GPU to its Grace CPU on the board: reset the GPU and re-run; if it \
                      stays down or slow, power-cycle the tray (AC) and re-run; if it persists, the compute board \
                      needs service";

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let Some(rules) = &spec.c2c else { return Vec::new() };
    let gpus = match ctx.nvml_gpus() {
        Ok(g) => g,
        Err(reason) => return vec![error(ACTIVE, node(), format!("C2C not inspected: {reason}"), INSTALL_DRIVER)],
    };
    if gpus.is_empty() {
        return vec![skipped(ACTIVE, node(), "NVML lists no GPU; see gpu.count")];
    }
    let mut out = Vec::new();
    let mut judged: Vec<(&Gpu, &C2c)> = Vec::new();
    let mut unreported = Vec::new();
    for gpu in gpus {
        match (&gpu.c2c, ctx.gpu_problem(gpu, "C2C")) {
            (Some(c), _) => judged.push((gpu, c)),
            (None, Some(p)) => out.push(error(
                ACTIVE,
                ctx.gpu_component(gpu),
                format!("could not read the C2C links of GPU {}: {}", gpu.index, p.message),
                REREAD,
            )),
            (None, None) => unreported.push(gpu.index.to_string()),
        }
    }
    if !unreported.is_empty() {
        out.push(skipped(
            ACTIVE,
            node(),
            format!(
                "NVML reports no C2C link on GPU {} (the driver does not report NVML_FI_DEV_C2C_LINK_COUNT)",
                unreported.join(", ")
            ),
        ));
    }
    out.extend(active(ctx, rules, &judged, gpus.len()));
    if let Some(min) = rules.min_bandwidth_mbps {
        out.extend(bandwidth(ctx, min, &judged));
    }
    if !rules.errors.is_empty() {
        out.extend(errors(ctx, rules, &judged));
    }
    out
}

fn node() -> Component {
    Component { kind: "c2c".into(), ..Component::node() }
}

fn active(ctx: &Ctx<'_>, rules: &C2cRules, judged: &[(&Gpu, &C2c)], total: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    for (gpu, c) in judged {
        let up = c.links.iter().filter(|l| l.active).count();
        let down: Vec<String> = c.links.iter().filter(|l| !l.active).map(|l| l.link.to_string()).collect();
        if down.is_empty() && up >= rules.min_links as usize {
            continue;
        }
        let down_note = if down.is_empty() { String::new() } else { format!(" (down: {})", down.join(", ")) };
        out.push(
            fail(
                ACTIVE,
                ctx.gpu_component(gpu),
                format!("{}: {up}/{} C2C links active{down_note}", gpu_where(ctx, gpu), c.links.len()),
                RESEAT,
            )
            .expected(format!("all active, at least {}", rules.min_links))
            .actual(up),
        );
    }
    if out.is_empty() && judged.len() == total {
        out.push(pass(ACTIVE, node(), format!("{} with every C2C link active", ratio(total, total, "GPUs"))));
    }
    out
}

fn bandwidth(ctx: &Ctx<'_>, min: u64, judged: &[(&Gpu, &C2c)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unknown = 0;
    for (gpu, c) in judged {
        let slow: Vec<String> = c
            .links
            .iter()
            .filter(|l| l.active)
            .filter_map(|l| l.bandwidth_mbps.filter(|b| *b < min).map(|b| format!("link {} at {b} MB/s", l.link)))
            .collect();
        unknown += c.links.iter().filter(|l| l.active && l.bandwidth_mbps.is_none()).count();
        if !slow.is_empty() {
            out.push(
                fail(
                    BANDWIDTH,
                    ctx.gpu_component(gpu),
                    format!("{}: C2C below {min} MB/s: {}", gpu_where(ctx, gpu), slow.join(", ")),
                    RESEAT,
                )
                .expected(format!(">= {min} MB/s"))
                .actual(slow.join(", ")),
            );
        }
    }
    if out.is_empty() {
        if unknown > 0 {
            out.push(skipped(BANDWIDTH, node(), format!("NVML did not report the bandwidth of {unknown} C2C links")));
        } else if !judged.is_empty() {
            out.push(pass(BANDWIDTH, node(), format!("every active C2C link at >= {min} MB/s")));
        }
    }
    out
}

fn errors(ctx: &Ctx<'_>, rules: &C2cRules, judged: &[(&Gpu, &C2c)]) -> Vec<Finding> {
    type Counter = fn(&C2c) -> Option<u64>;
    let b = &rules.errors;
    let counters: [(&str, Option<u64>, Counter); 3] = [
        ("error interrupt", b.interrupts_max, |c| c.errors.interrupts),
        ("replay", b.replay_max, |c| c.errors.replay),
        ("back-to-back replay", b.replay_b2b_max, |c| c.errors.replay_b2b),
    ];
    let mut out = Vec::new();
    let mut judged_any = false;
    for (gpu, c) in judged {
        for (name, max, read) in &counters {
            let (Some(max), Some(value)) = (max, read(c)) else { continue };
            judged_any = true;
            if value > *max {
                out.push(
                    warn(
                        ERRORS,
                        ctx.gpu_component(gpu),
                        format!("{}: {value} C2C {name} errors (budget {max})", gpu_where(ctx, gpu)),
                        RESEAT,
                    )
                    .expected(format!("<= {max}"))
                    .actual(value),
                );
            }
        }
    }
    if out.is_empty() {
        if judged_any {
            out.push(pass(ERRORS, node(), "C2C error counters within budget on every GPU"));
        } else {
            out.push(skipped(ERRORS, node(), "NVML reported no C2C error counters"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::platform::{C2cErrorBudget, C2cRules};
    use crate::checks::testnode::{self, gpu_mut, of, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::{GpuInventory, ReadProblem};

    fn c2c_mut(node: &mut crate::model::Node, i: u32) -> &mut crate::model::C2c {
        gpu_mut(node, i).c2c.as_mut().expect("c2c")
    }

    #[test]
    fn a_healthy_tray_has_every_c2c_link_active() {
        let f = validate(&testnode::gb200_tray(), &spec("gb200-nvl72-tray"));
        let a = of(&f, super::ACTIVE);
        assert_eq!((a.len(), a[0].outcome), (1, Outcome::Pass), "{a:?}");
    }

    #[test]
    fn a_down_slow_or_erroring_link_fails_that_gpu_naming_it() {
        let mut node = testnode::gb200_tray();
        c2c_mut(&mut node, 2).links[3].active = false;
        c2c_mut(&mut node, 1).links[0].bandwidth_mbps = Some(9000);
        c2c_mut(&mut node, 0).errors.replay = Some(12);
        let mut s = spec("gb200-nvl72-tray");
        s.c2c = Some(C2cRules {
            min_links: 1,
            min_bandwidth_mbps: Some(20_000),
            errors: C2cErrorBudget { replay_max: Some(0), ..Default::default() },
        });
        let f = validate(&node, &s);
        let a = of(&f, super::ACTIVE);
        assert_eq!((a.len(), a[0].outcome, a[0].component.gpu_index), (1, Outcome::Fail, Some(2)));
        assert!(a[0].message.contains("(down: 3)") && a[0].message.contains("tray 4 slot 7"), "{}", a[0].message);
        let b = of(&f, super::BANDWIDTH);
        assert_eq!((b.len(), b[0].component.gpu_index), (1, Some(1)));
        assert!(b[0].message.contains("link 0 at 9000 MB/s"), "{}", b[0].message);
        let e = of(&f, super::ERRORS);
        assert_eq!((e.len(), e[0].component.gpu_index, e[0].actual.as_deref()), (1, Some(0), Some("12")));
    }

    #[test]
    fn fewer_links_than_the_spec_fails_and_unreported_is_skipped_or_an_error() {
        let mut node = testnode::gb200_tray();
        c2c_mut(&mut node, 3).links.truncate(2);
        gpu_mut(&mut node, 0).c2c = None;
        gpu_mut(&mut node, 1).c2c = None;
        gpu_mut(&mut node, 1).problems.push(ReadProblem::new(
            "nvml",
            "nvmlDeviceGetFieldValues(NVML_FI_DEV_C2C_LINK_COUNT, scope 0)",
            "unknown error",
        ));
        let mut s = spec("gb200-nvl72-tray");
        s.c2c = Some(C2cRules { min_links: 4, min_bandwidth_mbps: None, errors: C2cErrorBudget::default() });
        let f = validate(&node, &s);
        let got: Vec<_> = of(&f, super::ACTIVE).iter().map(|x| (x.outcome, x.component.gpu_index)).collect();
        assert_eq!(got, [(Outcome::Error, Some(1)), (Outcome::Skipped, None), (Outcome::Fail, Some(3))]);
    }

    #[test]
    fn no_driver_is_an_error() {
        let mut node = testnode::gb200_tray();
        node.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        let f = validate(&node, &spec("gb200-nvl72-tray"));
        assert_eq!(of(&f, super::ACTIVE)[0].outcome, Outcome::Error);
    }
}
