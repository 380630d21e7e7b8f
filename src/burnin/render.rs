//! The burn-in report as text for a terminal: figures beside their limits, then what needs attention.

use std::fmt::Write;

use super::collective::human;
use super::report::{BurninReport, GpuAccess, TestStatus};
use crate::checks::{Outcome, Verdict};

/// The one-word verdict a technician reads last: pass, fail, error or skipped.
pub fn verdict_word(r: &BurninReport) -> &'static str {
    match r.verdict {
        Verdict::Fail => "fail",
        Verdict::Error => "error",
        Verdict::Pass if r.incomplete => "skipped",
        Verdict::Pass => "pass",
    }
}

pub fn text(r: &BurninReport) -> String {
    let mut s = String::new();
    let gpus = match &r.gpu_access {
        GpuAccess::Available { gpus, driver_version, .. } => {
            let name = gpus.first().and_then(|g| g.name.clone()).unwrap_or_else(|| "GPU".into());
            format!("{} x {name}, driver {driver_version}", gpus.len())
        }
        GpuAccess::Replayed { gpus, driver_version } => {
            let name = gpus.first().and_then(|g| g.name.clone()).unwrap_or_else(|| "GPU".into());
            format!("{} x {name}, driver {driver_version}, replayed from a capture (no kernel runs)", gpus.len())
        }
        GpuAccess::Unavailable { reason } => format!("GPU tests not run: {reason}"),
        GpuAccess::NotRequested => "no GPU test requested".into(),
    };
    let _ = writeln!(
        s,
        "kiln burnin: {gpus}; platform {} ({}); {:.0}s per stress test; gemm {}",
        r.platform,
        r.platform_source,
        r.duration_s,
        r.gemm_dtype.as_str()
    );
    if let Some(f) = &r.inject_fault {
        let _ = writeln!(s, "TEST-ONLY FAULT INJECTED: {f}");
    }
    let _ = writeln!(s);
    let _ =
        writeln!(s, "{:<10} {:<4} {:<16} {:>14} {:>10} {:>10}", "TEST", "GPU", "FIGURE", "VALUE", "MIN", "EXPECTED");
    for res in &r.results {
        let gpu = res.gpu.as_ref().map(|g| g.index.to_string()).unwrap_or_else(|| "-".into());
        match &res.status {
            TestStatus::Skipped { reason, .. } => {
                let _ = writeln!(s, "{:<10} {:<4} skipped: {reason}", res.test.as_str(), gpu);
            }
            TestStatus::Error { message } => {
                let _ = writeln!(s, "{:<10} {:<4} error: {message}", res.test.as_str(), gpu);
            }
            TestStatus::Ran => {
                if res.figures.is_empty() {
                    let _ = writeln!(s, "{:<10} {:<4} ran ({:.0}s)", res.test.as_str(), gpu, res.seconds);
                }
                for f in &res.figures {
                    let name = match (f.peer_gpu, res.collective) {
                        (Some(p), _) => format!("{} ->{p}", f.name),
                        (None, Some(c)) => format!("{} {} {}", c.op.as_str(), human(c.bytes), f.name),
                        (None, None) => f.name.clone(),
                    };
                    let num = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "-".into());
                    let _ = writeln!(
                        s,
                        "{:<10} {:<4} {:<16} {:>14} {:>10} {:>10}",
                        res.test.as_str(),
                        gpu,
                        name,
                        format!("{} {}", fmt_value(f.value), f.unit),
                        num(f.min),
                        num(f.expected)
                    );
                }
            }
        }
    }
    let attention: Vec<_> = r.findings.iter().filter(|f| f.outcome != Outcome::Pass).collect();
    if !attention.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "FINDINGS (not pass)");
        for f in attention {
            let _ = writeln!(s, "  {:<7} {:<32} {}", f.outcome.as_str().to_uppercase(), f.check, f.message);
            if let Some(e) = &f.expected {
                let _ = writeln!(s, "          expected {e}; actual {}", f.actual.as_deref().unwrap_or("-"));
            }
            if let Some(a) = &f.action {
                let _ = writeln!(s, "          action: {a}");
            }
        }
    }
    let passed = r.findings.iter().filter(|f| f.outcome == Outcome::Pass).count();
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "verdict: {} ({} findings: {passed} pass){}",
        verdict_word(r),
        r.findings.len(),
        if r.incomplete { "; incomplete: a requested test did not run" } else { "" }
    );
    s
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burnin::collective::{node_result, Op, SizeResult};
    use crate::burnin::options::{GemmDtype, TestKind};
    use crate::burnin::report::{REPORT_KIND, REPORT_VERSION};

    #[test]
    fn a_collective_figure_says_its_op_and_size() {
        let measured = SizeResult {
            op: Op::AllGather,
            bytes: 4 << 30,
            iterations: 20,
            time_us: 9800.0,
            algbw_gbps: 438.3,
            busbw_gbps: 383.5,
            checked_words: 1 << 20,
            wrong_words: 0,
        };
        let report = BurninReport {
            kind: REPORT_KIND.into(),
            version: REPORT_VERSION,
            kiln_version: "0.1.0".into(),
            hostname: None,
            started_at: String::new(),
            finished_at: String::new(),
            duration_s: 1.0,
            tests_requested: vec![TestKind::Collective],
            gemm_dtype: GemmDtype::Bf16,
            platform: "hgx-b200".into(),
            platform_source: "named".into(),
            gpu_access: GpuAccess::NotRequested,
            inject_fault: None,
            results: vec![node_result(&measured, 8, 0)],
            telemetry: Vec::new(),
            findings: Vec::new(),
            verdict: Verdict::Pass,
            incomplete: false,
        };
        let text = text(&report);
        let line = text.lines().find(|l| l.contains("busbw")).expect("a busbw line");
        assert!(line.starts_with("collective") && line.contains("all_gather 4 GiB busbw"), "{text}");
        assert!(line.contains("384 GB/s"), "{line}");
    }
}
