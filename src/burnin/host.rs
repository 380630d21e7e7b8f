//! Host burn-in: CPU and memory stress through stress-ng with verification, parsed into a result.
//!
//! stress-ng is the real backend; without it the test is skipped with the
//! reason, never passed. Its exit status and its "fail:" lines decide the
//! outcome; its metrics become figures (bogo ops per second per stressor).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
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

/// The most of stress-ng's log and YAML kiln reads back (both are a few KiB).
const MAX_OUTPUT: u64 = 16 << 20;

/// Runs the host burn-in for `duration` and judges stress-ng's own verdict.
///
/// stress-ng dies with kiln: it runs in its own process group with a
/// parent-death signal, and SIGTERM, SIGINT or SIGHUP to kiln kill that group
/// first. Its log and YAML are anonymous memory files, so a run killed at any
/// point leaves no file behind.
pub fn run(duration: Duration, memory_percent: u32) -> TestResult {
    let Some(binary) = find_stress_ng() else {
        return TestResult::skipped(TestKind::Host, None, NO_STRESS_NG, true);
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    run_with(&binary, duration, cpus, memory_percent)
}

fn run_with(binary: &Path, duration: Duration, cpus: usize, memory_percent: u32) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult::ran(TestKind::Host, None);
    let error = |message: String| TestResult::error(TestKind::Host, None, message);
    let (log, yaml) = match (MemoryFile::new("kiln-stress-ng-log"), MemoryFile::new("kiln-stress-ng-yaml")) {
        (Ok(l), Ok(y)) => (l, y),
        (Err(e), _) | (_, Err(e)) => return error(format!("creating stress-ng's output files: {e}")),
    };
    // stress-ng opens the YAML by name at its end: the memory file, through
    // its descriptor, which the child keeps open.
    let yaml_name = PathBuf::from(format!("/proc/self/fd/{}", yaml.fd()));
    let args = stress_ng_args(duration, cpus, memory_percent, &yaml_name);
    result.notes.push(format!("{} {}", binary.display(), args.join(" ")));
    let (stdout, stderr) = match (log.file.try_clone(), log.file.try_clone()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return error(format!("opening stress-ng's log: {e}")),
    };
    let mut command = Command::new(binary);
    command.args(&args).stdin(Stdio::null()).stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
    let mut group = match ChildGroup::spawn(command, &[yaml.fd()]) {
        Ok(g) => g,
        Err(e) => return error(format!("starting {}: {e}", binary.display())),
    };
    // stress-ng stops itself at --timeout; the watchdog only catches a hang.
    // A duration past what the clock holds has no watchdog rather than a panic.
    let deadline = started.checked_add(duration.saturating_add(Duration::from_secs(120)));
    let status = loop {
        match group.child.try_wait() {
            Ok(Some(s)) => {
                group.reaped();
                break Ok(s);
            }
            Ok(None) if deadline.is_some_and(|d| Instant::now() > d) => {
                group.kill();
                break Err(format!("stress-ng did not stop {} s after its timeout; killed it", 120));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => break Err(format!("waiting for stress-ng: {e}")),
        }
    };
    drop(group);
    result.seconds = started.elapsed().as_secs_f64();
    let log_text = log.read_back().unwrap_or_default();
    let status = match status {
        Ok(s) => s,
        Err(message) => return TestResult { status: TestStatus::Error { message }, ..result },
    };
    let yaml_text = yaml.read_back().ok().filter(|t| !t.is_empty());
    judge_run(result, status.code(), &log_text, yaml_text.as_deref())
}

/// An anonymous file in memory (`memfd_create`): nothing on disk to leave behind.
struct MemoryFile {
    file: File,
}

impl MemoryFile {
    fn new(name: &str) -> std::io::Result<MemoryFile> {
        let name = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
        // SAFETY: `name` is a valid C string; the descriptor returned is owned below.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        Ok(MemoryFile { file: unsafe { File::from_raw_fd(fd) } })
    }

    fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// What was written, from the start, at most `MAX_OUTPUT` bytes.
    fn read_back(&self) -> std::io::Result<String> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        f.take(MAX_OUTPUT).read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The pid of the stress-ng group now running, for the signal handler; 0 for none.
static RUNNING_GROUP: AtomicI32 = AtomicI32::new(0);

/// Kills the running stress-ng group, then lets the signal do what it would
/// have done (kiln ends with it). Only async-signal-safe calls.
extern "C" fn kill_group_and_die(signal: libc::c_int) {
    let group = RUNNING_GROUP.load(Ordering::SeqCst);
    // SAFETY: kill, signal and raise are async-signal-safe.
    unsafe {
        if group > 0 {
            libc::kill(-group, libc::SIGKILL);
        }
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

const FORWARDED: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// stress-ng and its workers as one process group that cannot outlive kiln:
/// killed when this is dropped, when kiln gets SIGTERM, SIGINT or SIGHUP, and
/// (through the parent-death signal) when kiln itself is killed.
struct ChildGroup {
    child: Child,
    reaped: bool,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl ChildGroup {
    /// Starts `command` in a new process group; `keep` are descriptors the
    /// child inherits (they are close-on-exec in kiln). The burn-in lock, when
    /// held, is inherited too, so a stress-ng that outlives kiln still holds it.
    fn spawn(mut command: Command, keep: &[i32]) -> std::io::Result<ChildGroup> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let mut keep = keep.to_vec();
        keep.extend(super::lock::held_fd());
        command.process_group(0);
        // SAFETY: the closure runs between fork and exec and makes only
        // async-signal-safe calls (prctl, getppid, fcntl); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                // Parent death is the death of the thread that forked: `run`
                // waits on that thread until stress-ng has exited.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // kiln died between fork and prctl: the signal was never armed.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                for &fd in &keep {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let mut group = ChildGroup { child, reaped: false, previous: Vec::new() };
        RUNNING_GROUP.store(group.child.id() as i32, Ordering::SeqCst);
        for signal in FORWARDED {
            // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = kill_group_and_die as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut old) == 0 {
                    group.previous.push((signal, old));
                }
            }
        }
        Ok(group)
    }

    /// stress-ng has been waited for: its pid (the group's id) may now be
    /// reused, so nothing may signal it any more.
    fn reaped(&mut self) {
        self.reaped = true;
        RUNNING_GROUP.store(0, Ordering::SeqCst);
    }

    /// SIGKILL to the whole group, then reap stress-ng.
    fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: the group id is stress-ng's pid, which is not reaped yet,
            // so it cannot name another process group.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
            self.reaped();
        }
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        self.kill();
        for (signal, old) in self.previous.drain(..) {
            // SAFETY: restores the disposition saved when the group started.
            unsafe { libc::sigaction(signal, &old, std::ptr::null_mut()) };
        }
    }
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
