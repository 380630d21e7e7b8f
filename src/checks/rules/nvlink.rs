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
            format!("NVML reports no NVLink on GPU {} at {}", gpu.index, gpu.pci_address),
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
                format!("GPU {} at {}: {up}/{want} NVLinks active{down_note}", gpu.index, gpu.pci_address),
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

fn speed(ctx: &Ctx<'_>, min: u64, judged: &[(&Gpu, &[NvLink])]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut unknown = 0;
    for (gpu, links) in judged {
        let slow: Vec<String> = links
            .iter()
            .filter(|l| l.active)
            .filter_map(|l| l.speed_mbps.filter(|s| *s < min).map(|s| format!("link {} {s} MB/s", l.link)))
            .collect();
        unknown += links.iter().filter(|l| l.active && l.speed_mbps.is_none()).count();
        if !slow.is_empty() {
            out.push(
                fail(
                    SPEED,
                    ctx.gpu_component(gpu),
                    format!("GPU {}: NVLinks below {min} MB/s: {}", gpu.index, slow.join(", ")),
                    format!("reset GPU {} and re-check; if the links stay slow, reseat or RMA", gpu.index),
                )
                .expected(format!(">= {min} MB/s")),
            );
        }
    }
    if out.is_empty() {
        if unknown > 0 {
            out.push(skipped(SPEED, nvlink_node(), format!("NVML did not report the speed of {unknown} active links")));
        } else if !judged.is_empty() {
            out.push(pass(SPEED, nvlink_node(), format!("every active NVLink at >= {min} MB/s")));
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
    for (gpu, links) in judged {
        for (name, max, read) in &counters {
            let Some(max) = max else { continue };
            let values: Vec<u64> = links.iter().filter_map(read).collect();
            if values.is_empty() {
                continue;
            }
            judged_any = true;
            let sum: u64 = values.iter().sum();
            if sum > *max {
                out.push(
                    warn(
                        ERRORS,
                        ctx.gpu_component(gpu),
                        format!("GPU {}: {sum} NVLink {name} errors over its links (budget {max})", gpu.index),
                        format!(
                            "check `nvidia-smi nvlink -e` on GPU {}; reset the GPU and re-run the NVLink burn-in; if \
                             errors grow, reseat or RMA",
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
        if judged_any {
            out.push(pass(ERRORS, nvlink_node(), "NVLink error counters within budget on every GPU"));
        } else {
            out.push(skipped(ERRORS, nvlink_node(), "NVML reported no NVLink error counters"));
        }
    }
    out
}
