//! Judging a burn-in: results and telemetry against the platform's thresholds, into `Finding`s.
//!
//! Pure functions over plain data: everything here is tested without a GPU.

use super::collective::Op;
use super::options::{GemmDtype, TestKind};
use super::report::{Figure, GpuTelemetry, TestResult, TestStatus, Watch};
use super::thresholds::{gemm_limit, Thresholds};
use super::xid::XidCatalog;
use crate::checks::burnin_spec::{Chosen, Limit, TelemetryLimits};
use crate::checks::rules::common;
use crate::checks::{Component, Finding, Outcome, Severity};

/// Throttle reasons that fail a burn-in (NVML clocks-event reason bits).
pub const HW_SLOWDOWN: u64 = 0x8;
pub const SW_THERMAL_SLOWDOWN: u64 = 0x20;
pub const HW_THERMAL_SLOWDOWN: u64 = 0x40;
pub const HW_POWER_BRAKE_SLOWDOWN: u64 = 0x80;
pub const SW_POWER_CAP: u64 = 0x4;

const FAILING_THROTTLE: [(u64, &str); 4] = [
    (HW_SLOWDOWN, "hardware slowdown"),
    (HW_THERMAL_SLOWDOWN, "hardware thermal slowdown"),
    (HW_POWER_BRAKE_SLOWDOWN, "hardware power-brake slowdown"),
    (SW_THERMAL_SLOWDOWN, "software thermal slowdown"),
];

const ACTION_DATA: &str = "the GPU returned wrong data: re-run once; if wrong values repeat, RMA the GPU";
const ACTION_RERUN: &str = "read the message, fix the cause and re-run the burn-in";

/// Writes the platform's thresholds into the figures they judge, so that the
/// report shows each number beside its limit and reason.
pub fn annotate(results: &mut [TestResult], t: &Thresholds, dtype: GemmDtype) {
    for r in results.iter_mut() {
        for f in r.figures.iter_mut() {
            if let Some(l) = limit_for(t, r.test, &f.name, dtype) {
                f.min = l.min;
                f.expected = l.expected;
                f.threshold_reason = Some(l.reason.clone());
            }
        }
    }
    // The collective's bus bandwidth at each op's largest size, against the limit for its GPUs.
    for i in judged_collective(results) {
        let r = &mut results[i];
        let Some(c) = r.collective else { continue };
        let Some(Chosen::Limit(l)) = t.burnin.collective.as_ref().map(|s| s.limit(c.op, c.gpus)) else { continue };
        if let Some(f) = r.figures.iter_mut().find(|f| f.name == "busbw") {
            f.min = l.min;
            f.expected = l.expected;
            f.threshold_reason = Some(format!("{}: {}", l.figure(), l.reason));
        }
    }
}

/// The collective results that are judged: per op, the largest size that ran (as the rack's
/// collective judges its largest; smaller sizes are reported).
fn judged_collective(results: &[TestResult]) -> Vec<usize> {
    Op::ALL
        .into_iter()
        .filter_map(|op| {
            results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.test == TestKind::Collective && r.status == TestStatus::Ran)
                .filter_map(|(i, r)| r.collective.filter(|c| c.op == op).map(|c| (i, c.bytes)))
                .max_by_key(|(_, bytes)| *bytes)
                .map(|(i, _)| i)
        })
        .collect()
}

/// The node's collective at each op's largest size against the spec's limit for its GPUs
/// (`burnin.collective.all_reduce`, as the rack's collective names the domain's).
fn collective_rates(results: &[TestResult], t: &Thresholds) -> Vec<Finding> {
    judged_collective(results)
        .into_iter()
        .filter_map(|i| {
            let r = &results[i];
            let c = r.collective?;
            let busbw = r.figure("busbw")?.value;
            let said = format!(
                "{} of {} over this node's {} GPUs: {busbw:.1} GB/s bus bandwidth",
                c.op.as_str(),
                crate::burnin::collective::human(c.bytes),
                c.gpus
            );
            Some(crate::burnin::collective::against_limit(
                &format!("burnin.collective.{}", c.op.as_str()),
                Component::node(),
                &said,
                busbw,
                t.burnin.collective.as_ref(),
                (c.op, c.gpus),
                rate_action(TestKind::Collective),
            ))
        })
        .collect()
}

fn limit_for<'t>(t: &'t Thresholds, test: TestKind, figure: &str, dtype: GemmDtype) -> Option<&'t Limit> {
    let t = &t.burnin;
    match (test, figure) {
        (TestKind::Gemm, "tflops") => gemm_limit(&t.gemm, dtype),
        (TestKind::Hbm, "copy_kernel") => t.hbm.copy_kernel.as_ref(),
        (TestKind::Hbm, "copy_engine") => t.hbm.copy_engine.as_ref(),
        (TestKind::HostLink, "h2d") => t.host_link.h2d.as_ref(),
        (TestKind::HostLink, "d2h") => t.host_link.d2h.as_ref(),
        (TestKind::HostLink, "h2d_together") => t.host_link.h2d_together.as_ref(),
        (TestKind::HostLink, "d2h_together") => t.host_link.d2h_together.as_ref(),
        (TestKind::P2p, "p2p") => t.p2p.pair.as_ref(),
        _ => None,
    }
}

fn component(r: &TestResult) -> Component {
    match &r.gpu {
        Some(g) => g.component(),
        None if r.test == TestKind::Host => Component { kind: "cpu".into(), ..Component::node() },
        None => Component::node(),
    }
}

fn who(r: &TestResult) -> String {
    match &r.gpu {
        Some(g) => g.describe(),
        None if r.test == TestKind::Host => "the host".into(),
        None => "this node".into(),
    }
}

/// Findings for every test result.
pub fn judge_results(results: &[TestResult], t: &Thresholds, dtype: GemmDtype) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in results {
        let test = r.test.as_str();
        match &r.status {
            TestStatus::Skipped { reason, applicable } => {
                let msg = if *applicable {
                    format!("{test} on {} did not run: {reason}", who(r))
                } else {
                    format!("{test} does not apply here: {reason}")
                };
                out.push(Finding::new(
                    &format!("burnin.{}", check_name(r.test)),
                    Outcome::Skipped,
                    Severity::Info,
                    component(r),
                    msg,
                ));
                continue;
            }
            TestStatus::Error { message } => {
                out.push(
                    Finding::new(
                        &format!("burnin.{}", check_name(r.test)),
                        Outcome::Error,
                        Severity::Critical,
                        component(r),
                        format!("{test} on {} could not finish: {message}", who(r)),
                    )
                    .action(ACTION_RERUN),
                );
                continue;
            }
            TestStatus::Ran => {}
        }
        out.push(data_finding(r));
        match r.test {
            TestKind::Memtest => out.push(coverage_finding(r, t)),
            TestKind::P2p if r.figure("p2p").is_none() => out.push(
                Finding::new(
                    "burnin.p2p.access",
                    Outcome::Fail,
                    Severity::Critical,
                    component(r),
                    format!("{}: {}", who(r), r.notes.join("; ")),
                )
                .action("check NVLink state (nvidia-smi nvlink -s) and that the fabric manager runs; reset the GPUs and re-run"),
            ),
            TestKind::Host => {}
            _ => {}
        }
        for f in &r.figures {
            if let Some(finding) = rate_finding(r, f, t, dtype) {
                out.push(finding);
            }
        }
    }
    out.extend(outliers(results, t));
    out.extend(collective_rates(results, t));
    out
}

fn check_name(t: TestKind) -> &'static str {
    match t {
        TestKind::HostLink => "host_link",
        other => other.as_str(),
    }
}

fn data_finding(r: &TestResult) -> Finding {
    let check = format!("burnin.{}.data", check_name(r.test));
    if r.data_error_count == 0 {
        let what = match r.test {
            TestKind::Host => "stress-ng reported no failure".to_string(),
            _ => "every value verified".to_string(),
        };
        return Finding::new(
            &check,
            Outcome::Pass,
            Severity::Info,
            component(r),
            format!("{} {}: {what}", r.test, who(r)),
        );
    }
    let first = r
        .data_errors
        .first()
        .map(|e| {
            let addr = e.device_address.as_deref().map(|a| format!(" (address {a})")).unwrap_or_default();
            format!("; first in {}: {}{addr}, expected {}, read {}", e.phase, e.location, e.expected, e.actual)
        })
        .unwrap_or_default();
    let action = match r.test {
        TestKind::Memtest => {
            "HBM returned wrong data at the listed addresses: reset the GPU (to remap rows) and re-run; RMA if errors repeat"
        }
        TestKind::Host => "the host failed stress-ng verification: run a full memory test (memtest86+) and check DIMMs and CPU; replace the failing part",
        TestKind::HostLink => "data was corrupted crossing the host link: check the PCIe/C2C link (kiln validate) and re-run; RMA if it repeats",
        TestKind::P2p => "data was corrupted crossing NVLink: check the NVLink fabric, reset the GPUs and re-run; RMA if it repeats",
        TestKind::Collective => "the NCCL collective returned wrong data: check the NVLink fabric (kiln validate), reset the GPUs and re-run; run p2p to find the pair if it repeats",
        _ => ACTION_DATA,
    };
    Finding::new(
        &check,
        Outcome::Fail,
        Severity::Critical,
        component(r),
        format!("{} found {} wrong value(s) in {}{first}", who(r), r.data_error_count, r.test),
    )
    .expected("0 wrong values")
    .actual(r.data_error_count)
    .action(action)
}

fn coverage_finding(r: &TestResult, t: &Thresholds) -> Finding {
    let min = 100.0 * t.burnin.memtest.min_coverage;
    match r.figure("coverage") {
        Some(c) if c.value >= min => Finding::new(
            "burnin.memtest.coverage",
            Outcome::Pass,
            Severity::Info,
            component(r),
            format!("memtest on {} covered {:.1}% of free memory", who(r), c.value),
        ),
        Some(c) => Finding::new(
            "burnin.memtest.coverage",
            Outcome::Error,
            Severity::Warning,
            component(r),
            format!("memtest on {} covered only {:.1}% of free memory (needs {min:.0}%)", who(r), c.value),
        )
        .expected(format!(">= {min:.0}%"))
        .actual(format!("{:.1}%", c.value))
        .action("stop other programs using the GPU (nvidia-smi) and re-run"),
        None => Finding::new(
            "burnin.memtest.coverage",
            Outcome::Error,
            Severity::Warning,
            component(r),
            format!("memtest on {} reported no coverage", who(r)),
        )
        .action(ACTION_RERUN),
    }
}

fn rate_action(test: TestKind) -> &'static str {
    match test {
        TestKind::Gemm => "check cooling, power cables and the power limit (nvidia-smi -q -d POWER,PERFORMANCE); re-run; RMA if it repeats",
        TestKind::Hbm => "reset the GPU and re-run; a GPU whose memory bandwidth stays low needs RMA",
        TestKind::HostLink => "check the PCIe link speed and width (kiln validate), the riser or cable seating and BIOS PCIe settings; re-run",
        TestKind::P2p => "check NVLink state (nvidia-smi nvlink -s), the NVSwitches and the fabric manager; re-run; RMA the baseboard or GPU if it repeats",
        TestKind::Collective => "check NVLink state (nvidia-smi nvlink -s), the NVSwitches and the fabric manager; run p2p to find a slow pair; re-run",
        _ => ACTION_RERUN,
    }
}

/// A rate against its threshold: pass, fail, or skipped when the platform
/// has no threshold for it (never a silent pass).
fn rate_finding(r: &TestResult, f: &Figure, t: &Thresholds, dtype: GemmDtype) -> Option<Finding> {
    let what = match (r.test, f.name.as_str()) {
        (TestKind::Gemm, "tflops") => format!("{} gemm", dtype.as_str()),
        (TestKind::Hbm, "copy_kernel") => "HBM copy (kernel)".into(),
        (TestKind::Hbm, "copy_engine") => "HBM copy (copy engine)".into(),
        (TestKind::HostLink, n) if n.starts_with("h2d") || n.starts_with("d2h") => {
            let dir = if n.starts_with("h2d") { "host-to-device" } else { "device-to-host" };
            if n.ends_with("_together") {
                format!("{dir} copy with every GPU copying")
            } else {
                format!("{dir} copy")
            }
        }
        (TestKind::P2p, "p2p") => format!("peer copy to GPU {}", f.peer_gpu.map(|p| p.to_string()).unwrap_or_default()),
        _ => return None,
    };
    let check = format!("burnin.{}.{}", check_name(r.test), f.name);
    let value = format!("{:.2} {}", f.value, f.unit);
    let limit = limit_for(t, r.test, &f.name, dtype);
    let Some(min) = limit.and_then(|l| l.min) else {
        return Some(Finding::new(
            &check,
            Outcome::Skipped,
            Severity::Info,
            component(r),
            format!("{} ran {what} at {value}; platform {} has no threshold for it", who(r), t.platform()),
        ));
    };
    let reason = limit.map(|l| l.reason.as_str()).unwrap_or_default();
    if f.value >= min {
        Some(
            Finding::new(
                &check,
                Outcome::Pass,
                Severity::Info,
                component(r),
                format!("{} ran {what} at {value}", who(r)),
            )
            .expected(format!(">= {min} {} ({reason})", f.unit))
            .actual(value),
        )
    } else {
        Some(
            Finding::new(
                &check,
                Outcome::Fail,
                Severity::Critical,
                component(r),
                format!("{} ran {what} at {value}, under the minimum {min} {}", who(r), f.unit),
            )
            .expected(format!(">= {min} {} ({reason})", f.unit))
            .actual(value)
            .action(rate_action(r.test)),
        )
    }
}

/// A GPU more than `1 - outlier_fraction` under the node's best GEMM rate.
fn outliers(results: &[TestResult], t: &Thresholds) -> Vec<Finding> {
    let rates: Vec<(&TestResult, f64)> = results
        .iter()
        .filter(|r| r.test == TestKind::Gemm && r.status == TestStatus::Ran)
        .filter_map(|r| r.figure("tflops").map(|f| (r, f.value)))
        .collect();
    if rates.len() < 2 {
        return Vec::new();
    }
    let best = rates.iter().map(|(_, v)| *v).fold(f64::MIN, f64::max);
    let floor = best * t.burnin.gemm.outlier_fraction;
    rates
        .into_iter()
        .map(|(r, v)| {
            let below = if best > 0.0 { 100.0 * (1.0 - v / best) } else { 0.0 };
            if v >= floor {
                Finding::new(
                    "burnin.gemm.outlier",
                    Outcome::Pass,
                    Severity::Info,
                    component(r),
                    format!("{} ran gemm at {v:.0} TFLOP/s, {below:.0}% below the best GPU", who(r)),
                )
            } else {
                Finding::new(
                    "burnin.gemm.outlier",
                    Outcome::Fail,
                    Severity::Warning,
                    component(r),
                    format!("{} ran gemm at {v:.0} TFLOP/s, {below:.0}% below its siblings (best {best:.0})", who(r)),
                )
                .expected(format!(
                    ">= {floor:.0} TFLOP/s ({:.0}% of the best GPU)",
                    100.0 * t.burnin.gemm.outlier_fraction
                ))
                .actual(format!("{v:.0} TFLOP/s"))
                .action("check cooling and power cables; re-run; RMA if it repeats")
            }
        })
        .collect()
}

/// Findings from telemetry, per GPU: one small check each. `minutes` is the
/// run's length.
pub fn judge_telemetry(tel: &[GpuTelemetry], t: &Thresholds, xids: &XidCatalog, minutes: f64) -> Vec<Finding> {
    judge_telemetry_with(tel, &t.burnin.telemetry, xids, minutes)
}

/// `judge_telemetry` against the telemetry limits alone: what a caller without a whole
/// burn-in's thresholds judges (the collective's controller, each tray's rank).
pub fn judge_telemetry_with(
    tel: &[GpuTelemetry],
    limits: &TelemetryLimits,
    xids: &XidCatalog,
    minutes: f64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in tel {
        let on = OnGpu { component: g.gpu.component(), who: g.gpu.describe() };
        out.push(throttle(g, &on));
        out.push(ecc(g, &on));
        out.push(row_remap(g, &on));
        out.push(xid(g, &on, xids));
        out.extend(nvlink_errors(g, &on, limits));
        out.extend(pcie_replay(g, &on, limits, minutes));
        out.extend(read_problems(g, &on));
    }
    out
}

/// The GPU a telemetry finding is about, as findings name it.
struct OnGpu {
    component: Component,
    who: String,
}

impl OnGpu {
    fn pass(&self, check: &str, message: String) -> Finding {
        common::pass(check, self.component.clone(), message)
    }

    fn skipped(&self, check: &str, message: String) -> Finding {
        common::skipped(check, self.component.clone(), message)
    }

    fn fail(&self, check: &str, message: String, action: &str) -> Finding {
        common::fail(check, self.component.clone(), message, action)
    }
}

const THROTTLE: &str = "burnin.telemetry.throttle";

/// Hardware, thermal or power-brake slowdown in any sample fails; the
/// software power cap alone passes.
fn throttle(g: &GpuTelemetry, on: &OnGpu) -> Finding {
    let seen: u64 = g.samples.iter().filter_map(|s| s.throttle_reasons).fold(0, |a, b| a | b);
    if !g.samples.iter().any(|s| s.throttle_reasons.is_some()) {
        return on.skipped(THROTTLE, format!("{}: NVML gave no clocks-event reasons", on.who));
    }
    let bad: Vec<&str> = FAILING_THROTTLE.iter().filter(|(b, _)| seen & b != 0).map(|(_, n)| *n).collect();
    let samples_with =
        |mask: &dyn Fn(u64) -> bool| g.samples.iter().filter(|s| s.throttle_reasons.is_some_and(mask)).count();
    if !bad.is_empty() {
        let n = samples_with(&|r| FAILING_THROTTLE.iter().any(|(b, _)| r & b != 0));
        return on
            .fail(
                THROTTLE,
                format!("{} throttled under load: {} in {n} of {} samples", on.who, bad.join(", "), g.samples.len()),
                "check airflow, fans, heatsink contact and the power supply/power-brake signal; re-run; RMA if it repeats",
            )
            .expected("no hardware, thermal or power-brake slowdown")
            .actual(bad.join(", "));
    }
    // Reaching the power cap under a full-power GEMM is the expected state:
    // the firmware holds the board at its power limit. It says nothing is
    // wrong; hardware or thermal slowdowns would.
    let capped = samples_with(&|r| r & SW_POWER_CAP != 0);
    let note = if capped > 0 {
        format!("; at its software power cap in {capped} of {} samples (expected at full load)", g.samples.len())
    } else {
        String::new()
    };
    on.pass(THROTTLE, format!("{}: no hardware or thermal slowdown{note}", on.who))
}

const ECC: &str = "burnin.telemetry.ecc";

/// Any new volatile uncorrectable ECC error, in the counters or any sample.
fn ecc(g: &GpuTelemetry, on: &OnGpu) -> Finding {
    let sampled = g.samples.iter().filter_map(|s| s.ecc_volatile_uncorrected).max();
    let after = [g.after.ecc_volatile_uncorrected, sampled].into_iter().flatten().max();
    match (g.before.ecc_volatile_uncorrected, after) {
        (Some(b), Some(a)) if a > b => on
            .fail(
                ECC,
                format!("{}: {} new uncorrectable ECC error(s) during the burn-in", on.who, a - b),
                "reset the GPU (to remap rows) and re-run; RMA if uncorrectable errors repeat",
            )
            .expected("no new uncorrectable ECC error")
            .actual(a - b),
        (Some(_), Some(_)) => on.pass(ECC, format!("{}: no new uncorrectable ECC error", on.who)),
        _ => on.skipped(ECC, format!("{}: ECC counters not available (ECC off or not supported)", on.who)),
    }
}

const ROW_REMAP: &str = "burnin.telemetry.row_remap";

/// A remap pending (new, or already before the run) or a failed remap.
fn row_remap(g: &GpuTelemetry, on: &OnGpu) -> Finding {
    match (g.before.remap_pending, g.after.remap_pending, g.after.remap_failure) {
        (_, _, Some(true)) => on.fail(
            ROW_REMAP,
            format!("{}: row remapping failed", on.who),
            "the GPU ran out of spare rows: RMA the GPU",
        ),
        (Some(false), Some(true), _) => on.fail(
            ROW_REMAP,
            format!("{}: a row remap became pending during the burn-in", on.who),
            "reset the GPU to apply the remap, then re-run the burn-in; RMA if it repeats",
        ),
        (Some(true), Some(true), _) => on.fail(
            ROW_REMAP,
            format!("{}: a row remap was already pending before the burn-in", on.who),
            "reset the GPU to apply the pending remap, then re-run the burn-in",
        ),
        (_, Some(false), Some(false)) => on.pass(ROW_REMAP, format!("{}: no pending or failed row remap", on.who)),
        (_, Some(false), None) => {
            on.skipped(ROW_REMAP, format!("{}: no pending row remap; a failed remap is not reported by NVML", on.who))
        }
        _ => on.skipped(ROW_REMAP, format!("{}: row remapping not reported by NVML", on.who)),
    }
}

const XID: &str = "burnin.telemetry.xid";

/// An Xid the catalog calls fatal, or one it does not know, fails.
fn xid(g: &GpuTelemetry, on: &OnGpu, xids: &XidCatalog) -> Finding {
    match &g.xid_watch {
        Watch::Watched => {}
        Watch::NotSupported { reason } => {
            return on.skipped(XID, format!("{}: Xid events not watched: {reason}", on.who));
        }
        Watch::Failed { reason } => {
            return common::error(
                XID,
                on.component.clone(),
                format!("{}: Xid events could not be watched: {reason}", on.who),
                "check the kernel log (dmesg | grep -i xid) for the run's time window",
            );
        }
    }
    let fatal: Vec<String> = g
        .xids
        .iter()
        .filter(|x| xids.is_fatal(x.xid))
        .map(|x| match xids.get(x.xid) {
            Some(e) => format!("Xid {} ({}): {}", x.xid, e.name, e.action),
            None => format!("Xid {} (not in kiln's catalog)", x.xid),
        })
        .collect();
    if !fatal.is_empty() {
        return on.fail(
            XID,
            format!("{} reported {}", on.who, fatal.join("; ")),
            "follow the action of each Xid listed; collect nvidia-bug-report.sh output before resetting",
        );
    }
    let other: Vec<String> = g.xids.iter().map(|x| format!("Xid {}", x.xid)).collect();
    let extra = if other.is_empty() { String::new() } else { format!(" (seen, not fatal: {})", other.join(", ")) };
    on.pass(XID, format!("{}: no fatal Xid{extra}", on.who))
}

const NVLINK_ERRORS: &str = "burnin.telemetry.nvlink_errors";

/// NVLink replay, recovery and CRC counters grown past the budget; not
/// judged when either reading is missing.
fn nvlink_errors(g: &GpuTelemetry, on: &OnGpu, t: &TelemetryLimits) -> Option<Finding> {
    let new = g.after.nvlink_errors?.saturating_sub(g.before.nvlink_errors?);
    let budget = t.nvlink_error_budget;
    if new <= budget {
        return Some(on.pass(NVLINK_ERRORS, format!("{}: {new} new NVLink error count(s) (budget {budget})", on.who)));
    }
    let links = g.after.nvlink_links.unwrap_or(0);
    Some(
        on.fail(
            NVLINK_ERRORS,
            format!("{}: {new} new NVLink error count(s) over {links} links (budget {budget})", on.who),
            "check the NVLink path (nvidia-smi nvlink -e), reseat the GPU or cable cartridge; RMA if it repeats",
        )
        .expected(format!("<= {budget} ({})", t.reason))
        .actual(new),
    )
}

const PCIE_REPLAY: &str = "burnin.telemetry.pcie_replay";

/// PCIe replays past the per-minute budget over the run (a warning-severity
/// fail: a soft budget).
fn pcie_replay(g: &GpuTelemetry, on: &OnGpu, t: &TelemetryLimits, minutes: f64) -> Option<Finding> {
    let new = g.after.pcie_replay?.saturating_sub(g.before.pcie_replay?);
    let budget = (t.pcie_replays_per_minute * minutes.max(1.0)).ceil() as u64;
    if new <= budget {
        return Some(on.pass(PCIE_REPLAY, format!("{}: {new} PCIe replays (budget {budget})", on.who)));
    }
    Some(
        common::warn(
            PCIE_REPLAY,
            on.component.clone(),
            format!("{}: {new} PCIe replays during the run (budget {budget})", on.who),
            "check the PCIe link (riser, cable, slot) and re-run; a link that keeps replaying needs its riser or GPU \
             replaced",
        )
        .expected(format!("<= {budget} ({})", t.reason))
        .actual(new),
    )
}

/// What could not be read is not healthy: say so.
fn read_problems(g: &GpuTelemetry, on: &OnGpu) -> Option<Finding> {
    (!g.problems.is_empty()).then(|| {
        common::error(
            "burnin.telemetry.read",
            on.component.clone(),
            format!("{}: NVML queries failed: {}", on.who, g.problems.join("; ")),
            "check the driver (nvidia-smi -q) and re-run",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burnin::report::{DataError, GpuIdentity, HealthCounters, Sample, XidEvent};
    use crate::checks::select::SpecChoice;
    use crate::checks::Verdict;

    fn gpu(i: u32) -> GpuIdentity {
        GpuIdentity {
            index: i,
            pci_address: crate::model::PciAddress::new(0, 0x1b + i as u8, 0, 0).expect("address"),
            serial: Some(format!("165{i}")),
            uuid: None,
            name: Some("NVIDIA H100 80GB HBM3".into()),
            numa_node: Some(0),
            slot: None,
        }
    }

    fn gemm(i: u32, tflops: f64) -> TestResult {
        let mut r = TestResult::ran(TestKind::Gemm, Some(gpu(i)));
        r.figures.push(Figure::new("tflops", tflops, "TFLOP/s"));
        r
    }

    fn thresholds(platform: &str) -> Thresholds {
        let choice = SpecChoice { platform: Some(platform), ..Default::default() };
        Thresholds::select(&crate::checks::testnode::vm(), &choice).expect("built-in platform")
    }

    fn h100() -> Thresholds {
        thresholds("h100-sxm")
    }

    fn find<'a>(f: &'a [Finding], check: &str, gpu: u32) -> &'a Finding {
        f.iter()
            .find(|x| x.check == check && x.component.gpu_index == Some(gpu))
            .unwrap_or_else(|| panic!("no {check} for gpu {gpu} in {f:#?}"))
    }

    #[test]
    fn a_gpu_far_under_its_siblings_is_an_outlier_with_an_action() {
        let results = vec![gemm(0, 790.0), gemm(1, 785.0), gemm(2, 612.0)];
        let f = judge_results(&results, &h100(), GemmDtype::Bf16);
        let o = find(&f, "burnin.gemm.outlier", 2);
        assert_eq!(o.outcome, Outcome::Fail);
        assert!(
            o.message.contains("GPU 2 (serial 1652) at 0000:1d:00.0 ran gemm at 612 TFLOP/s, 23% below its siblings"),
            "{}",
            o.message
        );
        assert!(o.action.as_deref().is_some_and(|a| a.contains("cooling")));
        assert_eq!(find(&f, "burnin.gemm.outlier", 1).outcome, Outcome::Pass);
        // 612 is above the H100 minimum (596): only the outlier check fails.
        assert_eq!(find(&f, "burnin.gemm.tflops", 2).outcome, Outcome::Pass);
        assert_eq!(Verdict::of(&f), Verdict::Fail);
    }

    #[test]
    fn rates_under_the_minimum_fail_and_missing_thresholds_are_skipped_not_passed() {
        let results = vec![gemm(0, 500.0)];
        let f = judge_results(&results, &h100(), GemmDtype::Bf16);
        let r = find(&f, "burnin.gemm.tflops", 0);
        assert_eq!(r.outcome, Outcome::Fail);
        assert!(r.expected.as_deref().is_some_and(|e| e.contains("596")), "{r:?}");
        let generic = thresholds("generic");
        let f = judge_results(&results, &generic, GemmDtype::Bf16);
        assert_eq!(find(&f, "burnin.gemm.tflops", 0).outcome, Outcome::Skipped);
        assert!(!f.iter().any(|x| x.check == "burnin.gemm.outlier"), "one GPU has no siblings");
    }

    #[test]
    fn wrong_data_fails_with_the_location() {
        let mut r = gemm(3, 790.0);
        r.data_error_count = 1;
        r.data_errors.push(DataError {
            phase: "iteration 3".into(),
            location: "element 16385 (row 1, col 2) of the output".into(),
            device_address: Some("0x7f0000010004".into()),
            offset: 65540,
            expected: "0x41f00000 (30)".into(),
            actual: "0x41f01000 (30.0078)".into(),
        });
        let f = judge_results(&[r], &h100(), GemmDtype::Bf16);
        let d = find(&f, "burnin.gemm.data", 3);
        assert_eq!(d.outcome, Outcome::Fail);
        assert!(
            d.message.contains("GPU 3") && d.message.contains("row 1, col 2") && d.message.contains("0x7f0000010004"),
            "{}",
            d.message
        );
    }

    #[test]
    fn skipped_and_error_results_become_findings() {
        let results = vec![
            TestResult::skipped(TestKind::Gemm, None, "no NVIDIA driver", true),
            TestResult::error(TestKind::Hbm, Some(gpu(0)), "launching copy_u4 on GPU 0: CUDA_ERROR_ILLEGAL_ADDRESS"),
        ];
        let f = judge_results(&results, &h100(), GemmDtype::Bf16);
        assert!(f.iter().any(|x| x.outcome == Outcome::Skipped && x.message.contains("no NVIDIA driver")));
        assert!(f.iter().any(|x| x.outcome == Outcome::Error && x.action.is_some()));
        assert_eq!(Verdict::of(&f), Verdict::Error);
    }

    /// The node's collective over `gpus` GPUs: all-reduce at 64 MiB (slow, as small sizes are)
    /// and 8 GiB at `busbw`, all-gather at 8 GiB; `wrong` output words in the largest
    /// all-reduce.
    fn collective(gpus: u32, busbw: f64, wrong: u64) -> Vec<TestResult> {
        let size = |op, bytes: u64, busbw: f64, wrong| crate::burnin::collective::SizeResult {
            op,
            bytes,
            iterations: 20,
            time_us: 1000.0,
            algbw_gbps: busbw / op.bus_factor(gpus),
            busbw_gbps: busbw,
            checked_words: 3 << 20,
            wrong_words: wrong,
        };
        [
            size(Op::AllReduce, 64 << 20, 90.0, 0),
            size(Op::AllReduce, 8 << 30, busbw, wrong),
            size(Op::AllGather, 8 << 30, 500.0, 0),
        ]
        .iter()
        .map(|m| crate::burnin::collective::node_result(m, gpus, 1))
        .collect()
    }

    fn checks<'a>(f: &'a [Finding], check: &str) -> Vec<&'a Finding> {
        f.iter().filter(|x| x.check == check).collect()
    }

    #[test]
    fn the_nodes_collective_is_judged_at_its_largest_size_against_the_figure_for_its_gpus() {
        // One GB200 tray: 4 GPUs, judged against the spec's 4-GPU entry (min 510).
        let gb200 = thresholds("gb200-nvl72-tray");
        let mut results = collective(4, 600.0, 0);
        annotate(&mut results, &gb200, GemmDtype::Bf16);
        let f = judge_results(&results, &gb200, GemmDtype::Bf16);
        let ar = checks(&f, "burnin.collective.all_reduce");
        assert_eq!(ar.len(), 1, "the 64 MiB size is reported, not judged: {f:#?}");
        assert_eq!(ar[0].outcome, Outcome::Pass);
        assert!(
            ar[0].message.contains("8 GiB over this node's 4 GPUs")
                && ar[0].message.contains("judged against the 4-GPU figure"),
            "{}",
            ar[0].message
        );
        let busbw_min = |r: &TestResult| r.figure("busbw").and_then(|f| f.min);
        assert_eq!((busbw_min(&results[0]), busbw_min(&results[1])), (None, Some(510.0)));
        assert!(results[1]
            .figure("busbw")
            .and_then(|f| f.threshold_reason.as_deref())
            .is_some_and(|r| r.starts_with("the 4-GPU figure")));
        // No all-gather figure is published: skipped, never passed.
        assert_eq!(checks(&f, "burnin.collective.all_gather")[0].outcome, Outcome::Skipped);
        assert_eq!(Verdict::of(&f), Verdict::Pass);
        // Under the 4-GPU min it fails, with an action.
        let f = judge_results(&collective(4, 400.0, 0), &gb200, GemmDtype::Bf16);
        let ar = checks(&f, "burnin.collective.all_reduce");
        assert_eq!(ar[0].outcome, Outcome::Fail);
        assert!(ar[0].action.as_deref().is_some_and(|a| a.contains("nvlink")), "{:?}", ar[0]);
        // Two GPUs: no entry is that small.
        let f = judge_results(&collective(2, 600.0, 0), &gb200, GemmDtype::Bf16);
        let ar = checks(&f, "burnin.collective.all_reduce");
        assert_eq!(ar[0].outcome, Outcome::Skipped);
        assert!(ar[0].message.contains("no threshold for 2 GPUs (the spec's smallest is 4)"), "{}", ar[0].message);
        // HGX B200, 8 GPUs: no published figure, so no threshold.
        let f = judge_results(&collective(8, 700.0, 0), &thresholds("hgx-b200"), GemmDtype::Bf16);
        assert!(checks(&f, "burnin.collective.all_reduce")[0].message.contains("no threshold in the spec"));
    }

    #[test]
    fn wrong_words_in_the_collective_fail_with_their_count() {
        let gb200 = thresholds("gb200-nvl72-tray");
        let f = judge_results(&collective(4, 600.0, 3), &gb200, GemmDtype::Bf16);
        let wrong: Vec<&Finding> =
            checks(&f, "burnin.collective.data").into_iter().filter(|x| x.outcome == Outcome::Fail).collect();
        assert_eq!(wrong.len(), 1, "{f:#?}");
        assert!(wrong[0].message.contains("3 wrong value(s) in collective"), "{}", wrong[0].message);
        assert_eq!(wrong[0].actual.as_deref(), Some("3"));
        assert_eq!(Verdict::of(&f), Verdict::Fail);
        // A collective that could not run is skipped with why.
        let skipped = TestResult::skipped(TestKind::Collective, None, crate::burnin::collective::NO_NCCL, true);
        let f = judge_results(&[skipped], &gb200, GemmDtype::Bf16);
        assert_eq!(f[0].check, "burnin.collective");
        assert_eq!(f[0].outcome, Outcome::Skipped);
        assert!(f[0].message.contains("did not run: no NCCL"), "{}", f[0].message);
    }

    #[test]
    fn memtest_coverage_under_ninety_percent_is_an_error() {
        let mut r = TestResult::ran(TestKind::Memtest, Some(gpu(0)));
        r.figures.push(Figure::new("coverage", 80.0, "% of free"));
        let f = judge_results(&[r], &h100(), GemmDtype::Bf16);
        assert_eq!(find(&f, "burnin.memtest.coverage", 0).outcome, Outcome::Error);
    }

    fn telemetry(samples: Vec<Sample>, before: HealthCounters, after: HealthCounters, xids: Vec<u64>) -> GpuTelemetry {
        GpuTelemetry {
            gpu: gpu(0),
            before,
            after,
            samples,
            xids: xids.into_iter().map(|x| XidEvent { at_unix_ms: 1, xid: x }).collect(),
            xid_watch: Watch::Watched,
            power_limit_w: Some(700.0),
            problems: vec![],
        }
    }

    fn clean() -> HealthCounters {
        HealthCounters {
            ecc_volatile_uncorrected: Some(0),
            ecc_volatile_corrected: Some(0),
            remap_pending: Some(false),
            remap_failure: Some(false),
            pcie_replay: Some(0),
            nvlink_errors: Some(0),
            nvlink_links: Some(18),
        }
    }

    fn sample(reasons: u64) -> Sample {
        Sample { throttle_reasons: Some(reasons), ..Default::default() }
    }

    #[test]
    fn power_cap_passes_and_hardware_slowdown_fails() {
        let catalog = XidCatalog::builtin().expect("catalog");
        let t = telemetry(vec![sample(SW_POWER_CAP), sample(0)], clean(), clean(), vec![]);
        let f = judge_telemetry(&[t], &h100(), &catalog, 1.0);
        let th = find(&f, "burnin.telemetry.throttle", 0);
        assert_eq!(th.outcome, Outcome::Pass);
        assert!(th.message.contains("power cap in 1 of 2"), "{}", th.message);
        assert_eq!(Verdict::of(&f), Verdict::Pass);
        let t = telemetry(vec![sample(SW_POWER_CAP | HW_POWER_BRAKE_SLOWDOWN)], clean(), clean(), vec![]);
        let f = judge_telemetry(&[t], &h100(), &catalog, 1.0);
        assert_eq!(find(&f, "burnin.telemetry.throttle", 0).outcome, Outcome::Fail);
    }

    #[test]
    fn new_ecc_pending_remap_fatal_xid_and_nvlink_errors_fail() {
        let catalog = XidCatalog::builtin().expect("catalog");
        let mut after = clean();
        after.ecc_volatile_uncorrected = Some(2);
        after.remap_pending = Some(true);
        after.nvlink_errors = Some(5);
        after.pcie_replay = Some(1000);
        let t = telemetry(vec![sample(0)], clean(), after, vec![79, 13]);
        let f = judge_telemetry(&[t], &h100(), &catalog, 1.0);
        for check in [
            "burnin.telemetry.ecc",
            "burnin.telemetry.row_remap",
            "burnin.telemetry.xid",
            "burnin.telemetry.nvlink_errors",
            "burnin.telemetry.pcie_replay",
        ] {
            assert_eq!(find(&f, check, 0).outcome, Outcome::Fail, "{check}");
        }
        let x = find(&f, "burnin.telemetry.xid", 0);
        assert!(
            x.message.contains("Xid 79") && x.message.contains("reboot") && !x.message.contains("Xid 13"),
            "{}",
            x.message
        );
    }

    #[test]
    fn unreadable_counters_are_skipped_and_failed_reads_are_errors() {
        let catalog = XidCatalog::builtin().expect("catalog");
        let mut t = telemetry(vec![Sample::default()], HealthCounters::default(), HealthCounters::default(), vec![]);
        t.problems.push("power: Unknown".into());
        let f = judge_telemetry(&[t], &h100(), &catalog, 1.0);
        assert_eq!(find(&f, "burnin.telemetry.ecc", 0).outcome, Outcome::Skipped);
        assert_eq!(find(&f, "burnin.telemetry.throttle", 0).outcome, Outcome::Skipped);
        assert_eq!(find(&f, "burnin.telemetry.read", 0).outcome, Outcome::Error);
        // Half of the remap state is not the whole: a failure NVML did not report is no pass.
        let mut after = clean();
        after.remap_failure = None;
        let f = judge_telemetry(&[telemetry(vec![sample(0)], clean(), after, vec![])], &h100(), &catalog, 1.0);
        assert_eq!(find(&f, "burnin.telemetry.row_remap", 0).outcome, Outcome::Skipped);
    }
}
