//! GPU memory health: uncorrectable ECC errors, retired pages, row remaps.
//!
//! Thresholds follow DCGM: any volatile uncorrectable error fails, 63 or more
//! retired pages fail, and any pending or failed row remap fails.

use super::common::{error, fail, pass, skipped, Ctx, INSTALL_DRIVER, REREAD};
use crate::checks::finding::{Component, Finding, Outcome};
use crate::checks::platform::{GpuHealthRules, Platform};
use crate::model::Gpu;

/// What one check read from one GPU.
enum Reading {
    /// The value, and whether it is within the rule.
    Value { ok: bool, actual: String },
    /// NVML does not report it for this GPU (not supported, or missing from a dump).
    NotReported,
    /// Reported as not counted (ECC off): why, for a `skipped` finding.
    NotCounted(String),
}

struct Rule {
    check: &'static str,
    /// Passing GPUs are described as "{n}/{m} GPUs {healthy}".
    healthy: &'static str,
    /// Substring of the NVML call a read problem names.
    nvml: &'static str,
    /// What is read, for messages: "retired pages".
    subject: &'static str,
    expected: String,
    read: Box<dyn Fn(&Gpu) -> Reading>,
    message: fn(&Gpu, &str) -> String,
    action: fn(&Gpu) -> String,
}

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let Some(rules) = &spec.gpu_health else { return Vec::new() };
    let gpus = match ctx.nvml_gpus() {
        Ok(g) => g,
        Err(reason) => return not_inspected(ctx, spec, reason),
    };
    if gpus.is_empty() {
        return vec![skipped("gpu.ecc_uncorrected", gpu_node(), "NVML lists no GPU")];
    }
    let mut out = Vec::new();
    for rule in health_rules(rules) {
        out.extend(judge(ctx, gpus, &rule));
    }
    out
}

fn gpu_node() -> Component {
    Component { kind: "gpu".into(), ..Component::node() }
}

/// No NVML: an error when GPUs are expected or on the bus, else nothing to judge.
fn not_inspected(ctx: &Ctx<'_>, spec: &Platform, reason: &str) -> Vec<Finding> {
    let nvidia_gpus_on_bus = ctx.node.pci.iter().any(|d| d.vendor_id == 0x10de && d.base_class() == 0x03);
    if spec.expects_gpus() || nvidia_gpus_on_bus {
        vec![error(
            "gpu.memory_health",
            gpu_node(),
            format!("GPU memory health not inspected: {reason}"),
            INSTALL_DRIVER,
        )]
    } else {
        vec![skipped("gpu.memory_health", gpu_node(), format!("no NVIDIA GPU on the PCI bus ({reason})"))]
    }
}

fn health_rules(rules: &GpuHealthRules) -> Vec<Rule> {
    let ecc_max = rules.ecc_volatile_uncorrected_max;
    let mut v = vec![
        Rule {
            check: "gpu.ecc_uncorrected",
            healthy: "without volatile uncorrectable ECC errors",
            nvml: "ecc",
            subject: "volatile ECC counts",
            expected: format!("<= {ecc_max}"),
            read: Box::new(move |g| match &g.ecc {
                Some(e) if e.enabled => {
                    Reading::Value { ok: e.volatile_uncorrected <= ecc_max, actual: e.volatile_uncorrected.to_string() }
                }
                Some(_) => Reading::NotCounted(format!(
                    "ECC is disabled on GPU {}: its uncorrectable errors are not counted (enable it with \
                     `nvidia-smi -i {} -e 1` and reboot)",
                    g.index, g.index
                )),
                None => Reading::NotReported,
            }),
            message: |g, a| format!("GPU {} has {a} volatile uncorrectable ECC errors", g.index),
            action: |g| {
                format!(
                    "check `dmesg` for Xid 48/63/64 on GPU {}; reset the GPU or reboot and re-run; if errors return, \
                     RMA the GPU",
                    g.index
                )
            },
        },
        Rule {
            check: "gpu.remap_pending",
            healthy: "without a pending row remap",
            nvml: "remap",
            subject: "row remap state",
            expected: "false".into(),
            read: Box::new(|g| match &g.remapped_rows {
                Some(r) => Reading::Value { ok: !r.pending, actual: r.pending.to_string() },
                None => Reading::NotReported,
            }),
            message: |g, _| format!("GPU {} has a row remap pending", g.index),
            action: |g| {
                format!("reset GPU {} (or reboot the node) to apply the pending row remap, then re-run", g.index)
            },
        },
        Rule {
            check: "gpu.remap_failure",
            healthy: "without a failed row remap",
            nvml: "remap",
            subject: "row remap state",
            expected: "false".into(),
            read: Box::new(|g| match &g.remapped_rows {
                Some(r) => Reading::Value { ok: !r.failure, actual: r.failure.to_string() },
                None => Reading::NotReported,
            }),
            message: |g, _| format!("GPU {} has a failed row remap: it is out of spare rows", g.index),
            action: |g| format!("RMA GPU {}: a row remap failed and cannot be repaired in the field", g.index),
        },
        Rule {
            check: "gpu.retired_pending",
            healthy: "without a pending page retirement",
            nvml: "retired",
            subject: "pending page retirement",
            expected: "false".into(),
            read: Box::new(|g| match &g.retired_pages {
                Some(r) => Reading::Value { ok: !r.pending, actual: r.pending.to_string() },
                None => Reading::NotReported,
            }),
            message: |g, _| format!("GPU {} has a page retirement pending", g.index),
            action: |g| format!("reset GPU {} (or reboot the node) to retire the pending pages, then re-run", g.index),
        },
    ];
    if let Some(max) = rules.retired_pages_max {
        v.push(Rule {
            check: "gpu.retired_pages",
            healthy: "with retired pages within budget",
            nvml: "retired",
            subject: "retired pages",
            expected: format!("<= {max}"),
            read: Box::new(move |g| match &g.retired_pages {
                Some(r) => {
                    let n = r.single_bit + r.double_bit;
                    Reading::Value { ok: n <= max, actual: n.to_string() }
                }
                None => Reading::NotReported,
            }),
            message: |g, a| format!("GPU {} has {a} retired pages", g.index),
            action: |g| format!("RMA GPU {}: it has retired more pages than DCGM allows", g.index),
        });
    }
    v
}

/// One rule over every GPU. A GPU whose value is missing never counts as a pass: with a read
/// problem it is an error; without one, when other GPUs of the node report the value, it is an
/// error too (a dump or a driver that lost it); only a value no GPU reports is skipped.
fn judge(ctx: &Ctx<'_>, gpus: &[Gpu], rule: &Rule) -> Vec<Finding> {
    let readings: Vec<(&Gpu, Reading)> = gpus.iter().map(|g| (g, (rule.read)(g))).collect();
    let reported = readings.iter().filter(|(_, r)| matches!(r, Reading::Value { .. })).count();
    let mut out = Vec::new();
    let mut ok = 0;
    for (gpu, reading) in readings {
        match reading {
            Reading::Value { ok: true, .. } => ok += 1,
            Reading::Value { ok: false, actual } => out.push(
                fail(rule.check, ctx.gpu_component(gpu), (rule.message)(gpu, &actual), (rule.action)(gpu))
                    .expected(&rule.expected)
                    .actual(actual),
            ),
            Reading::NotCounted(why) => out.push(skipped(rule.check, ctx.gpu_component(gpu), why)),
            Reading::NotReported => match ctx.gpu_problem(gpu, rule.nvml) {
                Some(p) => out.push(error(
                    rule.check,
                    ctx.gpu_component(gpu),
                    format!("could not read {} of GPU {}: {}", rule.subject, gpu.index, p.message),
                    REREAD,
                )),
                None if reported > 0 => out.push(error(
                    rule.check,
                    ctx.gpu_component(gpu),
                    format!(
                        "NVML reported no {} for GPU {}, though it does for {reported} other GPUs of the node",
                        rule.subject, gpu.index
                    ),
                    REREAD,
                )),
                None => {}
            },
        }
    }
    if out.iter().any(|f| matches!(f.outcome, Outcome::Fail | Outcome::Error)) {
        return out;
    }
    let total = gpus.len();
    if ok == 0 && out.is_empty() {
        return vec![skipped(
            rule.check,
            gpu_node(),
            format!("NVML does not report {} on any of {total} GPUs", rule.subject),
        )];
    }
    if ok > 0 {
        out.insert(
            0,
            pass(rule.check, gpu_node(), format!("{ok}/{total} GPUs {}", rule.healthy)).expected(&rule.expected),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, gpu_mut, of, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::{ReadProblem, RetiredPages};

    #[test]
    fn healthy_gpus_pass_and_unsupported_retired_pages_are_skipped() {
        let f = validate(&testnode::hgx_b200(), &spec("hgx-b200"));
        for check in ["gpu.ecc_uncorrected", "gpu.remap_pending", "gpu.remap_failure"] {
            assert_eq!(of(&f, check)[0].outcome, Outcome::Pass, "{check}");
        }
        assert_eq!(of(&f, "gpu.retired_pages")[0].outcome, Outcome::Skipped);
    }

    #[test]
    fn remap_pending_fails_with_reset_action() {
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 6).remapped_rows.as_mut().expect("rows").pending = true;
        let f = validate(&node, &spec("hgx-b200"));
        let r = of(&f, "gpu.remap_pending");
        assert_eq!((r.len(), r[0].outcome, r[0].component.gpu_index), (1, Outcome::Fail, Some(6)));
        assert!(r[0].action.as_deref().is_some_and(|a| a.starts_with("reset GPU 6")));
        assert_eq!(of(&f, "gpu.remap_failure")[0].outcome, Outcome::Pass);
    }

    #[test]
    fn remap_failure_fails_with_rma_action() {
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 0).remapped_rows.as_mut().expect("rows").failure = true;
        let f = validate(&node, &spec("hgx-b200"));
        let r = of(&f, "gpu.remap_failure");
        assert_eq!((r[0].outcome, r[0].component.gpu_index), (Outcome::Fail, Some(0)));
        assert!(r[0].action.as_deref().is_some_and(|a| a.starts_with("RMA")));
    }

    #[test]
    fn uncorrectable_ecc_and_too_many_retired_pages_fail() {
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 2).ecc.as_mut().expect("ecc").volatile_uncorrected = 1;
        for i in 0..8 {
            gpu_mut(&mut node, i).retired_pages = Some(RetiredPages { single_bit: 10, double_bit: 2, pending: false });
        }
        gpu_mut(&mut node, 3).retired_pages = Some(RetiredPages { single_bit: 60, double_bit: 3, pending: true });
        let f = validate(&node, &spec("hgx-b200"));
        let e = of(&f, "gpu.ecc_uncorrected");
        assert_eq!((e.len(), e[0].outcome, e[0].component.gpu_index), (1, Outcome::Fail, Some(2)));
        let r = of(&f, "gpu.retired_pages");
        assert_eq!((r.len(), r[0].component.gpu_index, r[0].actual.as_deref()), (1, Some(3), Some("63")));
        assert_eq!(of(&f, "gpu.retired_pending")[0].component.gpu_index, Some(3));
    }

    #[test]
    fn unreadable_remap_state_is_an_error() {
        let mut node = testnode::hgx_b200();
        let g = gpu_mut(&mut node, 1);
        g.remapped_rows = None;
        g.problems.push(ReadProblem::new("nvml", "nvmlDeviceGetRemappedRows", "gpu is lost"));
        let f = validate(&node, &spec("hgx-b200"));
        let r = of(&f, "gpu.remap_pending");
        assert_eq!((r.len(), r[0].outcome, r[0].component.gpu_index), (1, Outcome::Error, Some(1)));
    }

    #[test]
    fn memory_health_missing_from_one_gpu_is_never_a_pass() {
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 4).ecc = None;
        gpu_mut(&mut node, 5).remapped_rows = None;
        gpu_mut(&mut node, 6).ecc.as_mut().expect("ecc").enabled = false;
        let f = validate(&node, &spec("hgx-b200"));
        let outcomes = |check: &str| -> Vec<(Outcome, Option<u32>)> {
            of(&f, check).iter().map(|x| (x.outcome, x.component.gpu_index)).collect()
        };
        assert_eq!(outcomes("gpu.ecc_uncorrected"), [(Outcome::Error, Some(4)), (Outcome::Skipped, Some(6))]);
        let ecc = of(&f, "gpu.ecc_uncorrected");
        assert!(ecc[0].message.contains("NVML reported no volatile ECC counts for GPU 4"), "{}", ecc[0].message);
        assert!(ecc[1].message.contains("ECC is disabled on GPU 6"), "{}", ecc[1].message);
        for check in ["gpu.remap_pending", "gpu.remap_failure"] {
            assert_eq!(outcomes(check), [(Outcome::Error, Some(5))], "{check}");
        }
        // ECC off alone: the GPUs that count pass, the one that does not is skipped with why.
        let mut node = testnode::hgx_b200();
        gpu_mut(&mut node, 6).ecc.as_mut().expect("ecc").enabled = false;
        let f = validate(&node, &spec("hgx-b200"));
        let got: Vec<_> = of(&f, "gpu.ecc_uncorrected").iter().map(|x| (x.outcome, x.message.clone())).collect();
        assert_eq!(got[0], (Outcome::Pass, "7/8 GPUs without volatile uncorrectable ECC errors".to_string()));
        assert_eq!(got[1].0, Outcome::Skipped);
    }

    #[test]
    fn vm_without_gpus_is_skipped_not_errored() {
        let f = validate(&testnode::vm(), &spec("generic"));
        let m = of(&f, "gpu.memory_health");
        assert_eq!((m.len(), m[0].outcome), (1, Outcome::Skipped));
    }

    #[test]
    fn gpus_on_the_bus_without_a_driver_are_an_error_even_for_generic() {
        let mut node = testnode::hgx_b200();
        node.gpus = crate::model::GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        let f = validate(&node, &spec("generic"));
        assert_eq!(of(&f, "gpu.memory_health")[0].outcome, Outcome::Error);
    }
}
