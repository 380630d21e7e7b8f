//! NVLink: every GPU has the expected number of links, all active, fast
//! enough, with error counters inside their budgets.
//!
//! A spec with `[nvlink]` never passes a node whose NVLinks were not
//! inspected: DCGM once passed nodes with NVLinks down because its threshold
//! defaulted to zero (DCGM issue 198); kiln reports an error instead.

use super::common::{error, fail, pass, ratio, skipped, warn, Ctx, INSTALL_DRIVER, REREAD};
use crate::checks::finding::{Component, Finding};
use crate::checks::platform::{NvLinkErrorBudget, NvLinkRules, Platform};
use crate::model::{Gpu, NvLink};

const ACTIVE: &str = "nvlink.active";
const SPEED: &str = "nvlink.speed";
const ERRORS: &str = "nvlink.errors";

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let Some(rules) = &spec.nvlink else { return Vec::new() };
    let gpus = match ctx.nvml_gpus() {
        Ok(g) => g,
        Err(reason) => {
            return vec![error(ACTIVE, nvlink_node(), format!("nvlink not inspected: {reason}"), INSTALL_DRIVER)];
        }
    };
    if gpus.is_empty() {
        return vec![skipped(ACTIVE, nvlink_node(), "NVML lists no GPU; see gpu.count")];
    }
    let mut out = Vec::new();
    let mut judged: Vec<(&Gpu, &[NvLink])> = Vec::new();
    for gpu in gpus {
        match &gpu.nvlinks {
            Some(links) => judged.push((gpu, links)),
            None => out.push(not_reported(ctx, gpu)),
        }
    }
    out.extend(active(ctx, rules, &judged, gpus.len()));
    if let Some(min) = rules.min_speed_mbps {
        out.extend(speed(ctx, min, &judged));
    }
    if !rules.errors.is_empty() {
        out.extend(errors(ctx, &rules.errors, &judged));
    }
    out
}

fn nvlink_node() -> Component {
    Component { kind: "nvlink".into(), ..Component::node() }
}

fn not_reported(ctx: &Ctx<'_>, gpu: &Gpu) -> Finding {
    let comp = ctx.gpu_component(gpu);
    match ctx.gpu_problem(gpu, "nvlink") {
        Some(p) => {
            error(ACTIVE, comp, format!("could not read NVLink state of GPU {}: {}", gpu.index, p.message), REREAD)
        }
        None => fail(
            ACTIVE,
            comp,
            format!("NVML reports no NVLink on GPU {} at {}", gpu.index, gpu.address_label()),
            "check that this GPU model matches the platform spec; update the driver and re-run",
        ),
    }
}

fn active(ctx: &Ctx<'_>, rules: &NvLinkRules, judged: &[(&Gpu, &[NvLink])], total: usize) -> Vec<Finding> {
    let want = rules.links_per_gpu as usize;
    let mut out = Vec::new();
    for (gpu, links) in judged {
        let up = links.iter().filter(|l| l.active).count();
        if up >= want {
            continue;
        }
        let down: Vec<String> = links.iter().filter(|l| !l.active).map(|l| l.link.to_string()).collect();
        let down_note = if down.is_empty() { String::new() } else { format!(" (down: {})", down.join(", ")) };
        out.push(
            fail(
                ACTIVE,
                ctx.gpu_component(gpu),
                format!("GPU {} at {}: {up}/{want} NVLinks active{down_note}", gpu.index, gpu.address_label()),
                format!(
                    "NVLinks down on GPU {}: check `nvidia-smi nvlink -s` and the fabric manager log, reset the GPU; \
                     if links stay down, reseat the GPU/baseboard connectors or RMA",
                    gpu.index
                ),
            )
            .expected(want)
            .actual(up),
        );
    }
    if out.is_empty() && judged.len() == total {
        out.push(
            pass(ACTIVE, nvlink_node(), format!("{} with {want}/{want} NVLinks active", ratio(total, total, "GPUs")))
                .expected(want),
        );
    }
    out
}

/// `GPU 2 (serial 1652…, tray 4 slot 7 module 3)`: the GPU as a technician finds it.
pub fn gpu_where(ctx: &Ctx<'_>, gpu: &Gpu) -> String {
    let c = ctx.gpu_component(gpu);
    let mut parts = Vec::new();
    if let Some(serial) = &c.serial {
        parts.push(format!("serial {serial}"));
    }
    match c.slot {
        Some(slot) => parts.push(slot),
        None => parts.push(gpu.address_label()),
    }
    format!("GPU {} ({})", gpu.index, parts.join(", "))
}

fn speed(ctx: &Ctx<'_>, min: u64, judged: &[(&Gpu, &[NvLink])]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unknown = 0;
    let mut links = 0;
    for (gpu, gpu_links) in judged {
        let slow: Vec<(u32, u64)> = gpu_links
            .iter()
            .filter(|l| l.active)
            .filter_map(|l| l.speed_mbps.filter(|s| *s < min).map(|s| (l.link, s)))
            .collect();
        unknown += gpu_links.iter().filter(|l| l.active && l.speed_mbps.is_none()).count();
        links += gpu_links.iter().filter(|l| l.active && l.speed_mbps.is_some()).count();
        if !slow.is_empty() {
            let named: Vec<String> = slow.iter().map(|(l, s)| format!("link {l} at {s} MB/s")).collect();
            let numbers: Vec<String> = slow.iter().map(|(l, _)| l.to_string()).collect();
            out.push(
                fail(
                    SPEED,
                    ctx.gpu_component(gpu),
                    format!("{}: NVLink below {min} MB/s: {}", gpu_where(ctx, gpu), named.join(", ")),
                    format!(
                        "a slow NVLink is a cable, connector or switch-tray fault: check `nvidia-smi nvlink -s -i {}` \
                         for link {}, reseat the cable cartridge of that link, reset the GPU and re-run; if it stays \
                         slow, check the switch tray at the far end",
                        gpu.index,
                        numbers.join(", ")
                    ),
                )
                .expected(format!(">= {min} MB/s"))
                .actual(named.join(", ")),
            );
        }
    }
    if out.is_empty() {
        if unknown > 0 {
            out.push(skipped(SPEED, nvlink_node(), format!("NVML did not report the speed of {unknown} active links")));
        } else if !judged.is_empty() {
            out.push(pass(SPEED, nvlink_node(), format!("all {links} active NVLinks at >= {min} MB/s")));
        }
    }
    out
}

fn errors(ctx: &Ctx<'_>, budget: &NvLinkErrorBudget, judged: &[(&Gpu, &[NvLink])]) -> Vec<Finding> {
    type Counter = fn(&NvLink) -> Option<u64>;
    let counters: [(&str, Option<u64>, Counter); 4] = [
        ("replay", budget.replay_max, |l| l.errors.replay),
        ("recovery", budget.recovery_max, |l| l.errors.recovery),
        ("CRC flit", budget.crc_flit_max, |l| l.errors.crc_flit),
        ("CRC data", budget.crc_data_max, |l| l.errors.crc_data),
    ];
    let mut out = Vec::new();
    let mut judged_any = false;
    // (GPU, counter) pairs where an active link did not report a budgeted counter: never a pass.
    let mut unreported: Vec<String> = Vec::new();
    for (gpu, links) in judged {
        for (name, max, read) in &counters {
            let Some(max) = max else { continue };
            if links.iter().any(|l| l.active && read(l).is_none()) {
                unreported.push(format!("GPU {} {name}", gpu.index));
            }
            let values: Vec<(u32, u64)> = links.iter().filter_map(|l| read(l).map(|v| (l.link, v))).collect();
            if values.is_empty() {
                continue;
            }
            judged_any = true;
            let sum: u64 = values.iter().map(|(_, v)| v).sum();
            if sum > *max {
                let counted: Vec<String> =
                    values.iter().filter(|(_, v)| *v > 0).map(|(l, v)| format!("link {l} {v}")).collect();
                out.push(
                    warn(
                        ERRORS,
                        ctx.gpu_component(gpu),
                        format!(
                            "{}: {sum} NVLink {name} errors over its links (budget {max}): {}",
                            gpu_where(ctx, gpu),
                            counted.join(", ")
                        ),
                        format!(
                            "growing {name} counters are a cable, connector or switch-tray problem: check \
                             `nvidia-smi nvlink -e -i {}`, reseat the cable cartridge of the links named, reset the \
                             GPU and re-run the NVLink burn-in; if errors grow, service the switch tray at the far end",
                            gpu.index
                        ),
                    )
                    .expected(format!("<= {max}"))
                    .actual(sum),
                );
            }
        }
    }
    if out.is_empty() {
        if !unreported.is_empty() {
            out.push(skipped(
                ERRORS,
                nvlink_node(),
                format!(
                    "NVML did not report every budgeted error counter of the active links: {}",
                    unreported.join(", ")
                ),
            ));
        } else if judged_any {
            out.push(pass(ERRORS, nvlink_node(), "NVLink error counters within budget on every GPU"));
        } else {
            out.push(skipped(ERRORS, nvlink_node(), "NVML reported no NVLink error counters"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, gpu_mut, of, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::{GpuInventory, ReadProblem};

    #[test]
    fn all_links_active_passes() {
        let f = validate(&testnode::hgx_b200(), &spec("hgx-b200"));
        let a = of(&f, "nvlink.active");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].outcome, Outcome::Pass);
        assert_eq!(a[0].message, "8/8 GPUs with 18/18 NVLinks active");
    }

    #[test]
    fn links_down_fail_for_that_gpu_naming_the_links() {
        let mut node = testnode::hgx_b200();
        let links = gpu_mut(&mut node, 4).nvlinks.as_mut().expect("links");
        links[3].active = false;
        links[11].active = false;
        let f = validate(&node, &spec("hgx-b200"));
        let a = of(&f, "nvlink.active");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].outcome, a[0].component.gpu_index), (Outcome::Fail, Some(4)));
        assert!(a[0].message.contains("16/18 NVLinks active (down: 3, 11)"), "{}", a[0].message);
        assert_eq!((a[0].expected.as_deref(), a[0].actual.as_deref()), (Some("18"), Some("16")));
    }

    #[test]
    fn no_driver_is_an_error_never_a_pass() {
        let mut node = testnode::hgx_b200();
        node.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        let f = validate(&node, &spec("hgx-b200"));
        let a = of(&f, "nvlink.active");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].outcome, Outcome::Error);
        assert_eq!(a[0].message, "nvlink not inspected: no NVIDIA driver");
        assert_eq!(a[0].action.as_deref(), Some("install the NVIDIA driver and re-run"));
        assert!(f.iter().filter(|x| x.check.starts_with("nvlink")).all(|x| x.outcome != Outcome::Pass));
    }

    #[test]
    fn gpu_without_nvlink_info_fails_or_errors() {
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 0).nvlinks = None;
        gpu_mut(&mut node, 1).nvlinks = None;
        gpu_mut(&mut node, 1).problems.push(ReadProblem::new("nvml", "nvmlDeviceGetNvLinkState", "unknown error"));
        let f = validate(&node, &spec("hgx-b200"));
        let got: Vec<_> = of(&f, "nvlink.active").iter().map(|x| (x.outcome, x.component.gpu_index)).collect();
        assert_eq!(got, [(Outcome::Fail, Some(0)), (Outcome::Error, Some(1))]);
    }

    #[test]
    fn error_budgets_and_speed_are_judged_when_the_spec_sets_them() {
        let mut node = testnode::hgx_b200();
        let links = gpu_mut(&mut node, 2).nvlinks.as_mut().expect("links");
        links[0].errors.recovery = Some(3);
        links[5].speed_mbps = Some(25000);
        let mut s = spec("hgx-b200");
        let nv = s.nvlink.as_mut().expect("nvlink section");
        nv.errors.recovery_max = Some(0);
        nv.min_speed_mbps = Some(50000);
        let f = validate(&node, &s);
        let e = of(&f, "nvlink.errors");
        assert_eq!((e.len(), e[0].outcome, e[0].component.gpu_index), (1, Outcome::Fail, Some(2)));
        assert_eq!(e[0].actual.as_deref(), Some("3"));
        let sp = of(&f, "nvlink.speed");
        assert_eq!((sp.len(), sp[0].outcome), (1, Outcome::Fail));
        assert!(sp[0].message.contains("link 5 at 25000 MB/s"), "{}", sp[0].message);
        assert!(sp[0].message.contains("GPU 2 (serial "), "{}", sp[0].message);
        assert!(e[0].message.contains("link 0 3"), "{}", e[0].message);
    }

    #[test]
    fn the_gb200_spec_fails_a_quarter_speed_link_and_thousands_of_crc_errors_naming_link_and_tray() {
        let mut node = testnode::gb200_tray();
        let s = spec("gb200-nvl72-tray");
        let f = validate(&node, &s);
        assert_eq!(of(&f, "nvlink.speed")[0].outcome, Outcome::Pass);
        assert_eq!(of(&f, "nvlink.errors")[0].outcome, Outcome::Pass);
        let links = gpu_mut(&mut node, 1).nvlinks.as_mut().expect("links");
        links[9].speed_mbps = Some(13281);
        links[4].errors.crc_flit = Some(4200);
        let f = validate(&node, &s);
        let sp = of(&f, "nvlink.speed");
        assert_eq!((sp.len(), sp[0].outcome, sp[0].component.gpu_index), (1, Outcome::Fail, Some(1)));
        assert!(sp[0].message.contains("link 9 at 13281 MB/s"), "{}", sp[0].message);
        assert!(sp[0].message.contains("tray 4 slot 7"), "{}", sp[0].message);
        assert!(sp[0].component.serial.as_deref().is_some_and(|x| sp[0].message.contains(x)));
        assert_eq!(sp[0].expected.as_deref(), Some(">= 53125 MB/s"));
        let e = of(&f, "nvlink.errors");
        assert_eq!((e.len(), e[0].component.gpu_index), (1, Some(1)));
        assert!(e[0].message.contains("4200 NVLink CRC flit errors") && e[0].message.contains("link 4 4200"));
    }

    #[test]
    fn an_error_counter_missing_on_one_gpu_is_not_a_pass() {
        let mut node = testnode::hgx_b200();
        for i in 0..8 {
            for l in gpu_mut(&mut node, i).nvlinks.as_mut().expect("links") {
                l.errors.replay = Some(0);
            }
        }
        gpu_mut(&mut node, 3).nvlinks.as_mut().expect("links")[7].errors.replay = None;
        let mut s = spec("hgx-b200");
        s.nvlink.as_mut().expect("nvlink section").errors.replay_max = Some(0);
        let e = of(&validate(&node, &s), "nvlink.errors").into_iter().cloned().collect::<Vec<_>>();
        assert_eq!((e.len(), e[0].outcome), (1, Outcome::Skipped));
        assert!(e[0].message.ends_with("GPU 3 replay"), "{}", e[0].message);
    }
}
