//! Host burn-in: CPU and memory stress through stress-ng with verification, parsed into a result.
//!
//! stress-ng is the real backend; without it the test is skipped with the
//! reason, never passed. Its exit status and its "fail:" lines decide the
//! outcome; its metrics become figures (bogo ops per second per stressor).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::options::TestKind;
use super::report::{Figure, TestResult, TestStatus};
use super::stress_ng::{self, ExitMeaning};

/// Why the host test did not run when stress-ng is missing.
pub const NO_STRESS_NG: &str = "stress-ng is not installed (apt-get install stress-ng)";

/// Finds `stress-ng` on `PATH` (or at `KILN_STRESS_NG`).
pub fn find_stress_ng() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_STRESS_NG") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("stress-ng")).find(|p| p.is_file())
}

/// Default share of available memory the vm stressors cover, percent.
pub const DEFAULT_MEMORY_PERCENT: u32 = 25;

/// The stress-ng arguments kiln runs: every CPU on all CPU methods, memory
/// stressors over `memory_percent` of the available memory (stress-ng divides
/// the percentage among the vm workers), mappings kept between passes (else
/// page faulting dominates), verification on, metrics written as YAML.
pub fn stress_ng_args(duration: Duration, cpus: usize, memory_percent: u32, yaml: &Path) -> Vec<String> {
    let vm_workers = (cpus / 8).max(1);
    let seconds = duration.as_secs().max(1);
    vec![
        "--cpu".into(),
        "0".into(),
        "--cpu-method".into(),
        "all".into(),
        "--vm".into(),
        vm_workers.to_string(),
        "--vm-bytes".into(),
        format!("{}%", memory_percent.clamp(1, 90)),
        "--vm-keep".into(),
        "--vm-method".into(),
        "all".into(),
        "--verify".into(),
        "--metrics-brief".into(),
        "--timeout".into(),
        format!("{seconds}s"),
        "--yaml".into(),
        yaml.display().to_string(),
    ]
}

/// Runs the host burn-in for `duration` and judges stress-ng's own verdict.
pub fn run(duration: Duration, memory_percent: u32) -> TestResult {
    let Some(binary) = find_stress_ng() else {
        return TestResult::skipped(TestKind::Host, None, NO_STRESS_NG, true);
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let yaml = std::env::temp_dir().join(format!("kiln-stress-ng-{}.yaml", std::process::id()));
    let log = std::env::temp_dir().join(format!("kiln-stress-ng-{}.log", std::process::id()));
    let result = run_with(&binary, duration, cpus, memory_percent, &yaml, &log);
    let _ = std::fs::remove_file(&yaml);
    let _ = std::fs::remove_file(&log);
    result
}

fn run_with(
    binary: &Path,
    duration: Duration,
    cpus: usize,
    memory_percent: u32,
    yaml: &Path,
    log: &Path,
) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult::ran(TestKind::Host, None);
    let args = stress_ng_args(duration, cpus, memory_percent, yaml);
    result.notes.push(format!("{} {}", binary.display(), args.join(" ")));
    let log_file = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => return TestResult::error(TestKind::Host, None, format!("creating {}: {e}", log.display())),
    };
    let log_err = match log_file.try_clone() {
        Ok(f) => f,
        Err(e) => return TestResult::error(TestKind::Host, None, format!("opening {}: {e}", log.display())),
    };
    let child = Command::new(binary)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_err))
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return TestResult::error(TestKind::Host, None, format!("starting {}: {e}", binary.display())),
    };
    // stress-ng stops itself at --timeout; the watchdog only catches a hang.
    let deadline = started + duration + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("stress-ng did not stop {} s after its timeout; killed it", 120));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => break Err(format!("waiting for stress-ng: {e}")),
        }
    };
    result.seconds = started.elapsed().as_secs_f64();
    let log_text = std::fs::read_to_string(log).unwrap_or_default();
    let status = match status {
        Ok(s) => s,
        Err(message) => return TestResult { status: TestStatus::Error { message }, ..result },
    };
    judge_run(result, status.code(), &log_text, std::fs::read_to_string(yaml).ok().as_deref())
}

/// Turns stress-ng's exit status, log and YAML into the test result.
pub fn judge_run(mut result: TestResult, code: Option<i32>, log: &str, yaml: Option<&str>) -> TestResult {
    let failures = stress_ng::failure_lines(log);
    result.data_error_count = failures.len() as u64;
    for line in failures.iter().take(8) {
        result.data_errors.push(super::report::DataError {
            phase: "stress-ng".into(),
            location: line.clone(),
            device_address: None,
            offset: 0,
            expected: "no failure".into(),
            actual: "fail".into(),
        });
    }
    let mut idle = Vec::new();
    match yaml.map(stress_ng::parse_yaml) {
        Some(Ok(m)) => {
            if let Some(v) = m.version {
                result.notes.push(format!("stress-ng {v}"));
            }
            for s in m.stressors {
                if s.bogo_ops <= 0.0 {
                    idle.push(s.stressor.clone());
                }
                result.figures.push(Figure::new(&format!("{}_bogo_ops", s.stressor), s.bogo_ops_per_s, "bogo ops/s"));
            }
        }
        Some(Err(e)) => result.notes.push(format!("stress-ng metrics unreadable: {e}")),
        None => result.notes.push("stress-ng wrote no metrics file".into()),
    }
    let Some(code) = code else {
        result.status = TestStatus::Error { message: "stress-ng was killed by a signal".into() };
        return result;
    };
    match stress_ng::exit_meaning(code) {
        // A stressor that completed no operation stressed nothing: usually
        // the run was too short to even fill its memory.
        ExitMeaning::Success if failures.is_empty() && !idle.is_empty() => {
            result.status = TestStatus::Error {
                message: format!(
                    "stress-ng stressor {} completed no operation: run longer or lower --host-memory",
                    idle.join(", ")
                ),
            };
        }
        ExitMeaning::Success if failures.is_empty() => {}
        // A "fail:" line with exit 0 still means a verification failed.
        ExitMeaning::Success | ExitMeaning::StressorFailed => {
            result.notes.push(format!("stress-ng exit status {code}: {}", stress_ng::exit_text(code)));
            if result.data_error_count == 0 {
                result.data_error_count = 1;
            }
        }
        ExitMeaning::CouldNotRun => {
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            result.status = TestStatus::Error {
                message: format!(
                    "stress-ng exit status {code} ({}): {}",
                    stress_ng::exit_text(code),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
            };
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = include_str!("../../tests/fixtures/stress-ng/0.15.06-cpu-vm.yaml");

    #[test]
    fn clean_run_has_figures_and_no_errors() {
        let r = judge_run(TestResult::ran(TestKind::Host, None), Some(0), "", Some(YAML));
        assert_eq!(r.status, TestStatus::Ran);
        assert_eq!(r.data_error_count, 0);
        assert!(r.figure("cpu_bogo_ops").is_some_and(|f| f.value > 0.0));
    }

    #[test]
    fn verification_failures_count_and_bad_exits_are_errors() {
        let log = "stress-ng: fail:  [7] vm: detected memory error, offset : 0x10, value: 0x1\n";
        let r = judge_run(TestResult::ran(TestKind::Host, None), Some(2), log, Some(YAML));
        assert_eq!(r.status, TestStatus::Ran);
        assert_eq!(r.data_error_count, 1);
        assert!(r.data_errors[0].location.contains("detected memory error"));
        let r = judge_run(TestResult::ran(TestKind::Host, None), Some(2), "", None);
        assert_eq!(r.data_error_count, 1, "exit 2 without a fail line still fails");
        let r = judge_run(TestResult::ran(TestKind::Host, None), Some(3), "no memory\n", None);
        assert!(matches!(r.status, TestStatus::Error { ref message } if message.contains("resources")));
        let r = judge_run(TestResult::ran(TestKind::Host, None), None, "", None);
        assert!(matches!(r.status, TestStatus::Error { .. }));
        let idle = YAML.replacen("bogo-ops: 3277", "bogo-ops: 0", 1);
        let r = judge_run(TestResult::ran(TestKind::Host, None), Some(0), "", Some(&idle));
        assert!(matches!(r.status, TestStatus::Error { ref message } if message.contains("vm")), "{r:?}");
    }

    /// Runs the real stress-ng for two seconds when it is installed.
    #[test]
    fn real_stress_ng_run_passes_on_a_healthy_host() {
        if find_stress_ng().is_none() {
            eprintln!("SKIPPED: stress-ng not installed");
            return;
        }
        let r = run(Duration::from_secs(3), 2);
        assert_eq!(r.status, TestStatus::Ran, "{r:?}");
        assert_eq!(r.data_error_count, 0, "{r:?}");
        assert!(r.figure("cpu_bogo_ops").is_some_and(|f| f.value > 0.0), "{r:?}");
        assert!(r.figure("vm_bogo_ops").is_some_and(|f| f.value > 0.0), "{r:?}");
    }
}
