//! Killing `kiln burnin` ends its stress-ng and leaves nothing behind; a second burn-in is refused.
//!
//! Through the real binary and the real stress-ng. Each test has its own lock
//! (`KILN_BURNIN_LOCK`) and temporary directory, so tests and other checkouts
//! running at the same time never see each other's burn-ins.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kiln() -> PathBuf {
    std::env::var_os("KILN_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

fn have_stress_ng() -> bool {
    Command::new("stress-ng").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// A burn-in's private lock and temporary directory.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tmp")).expect("mkdir tmp");
        Sandbox { dir }
    }

    fn lock(&self) -> PathBuf {
        self.dir.path().join("burnin.lock")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn burnin(&self, duration: &str) -> Command {
        let mut c = Command::new(kiln());
        c.args(["burnin", "--tests", "host", "--duration", duration, "--host-memory", "2", "--json"])
            .env("KILN_BURNIN_LOCK", self.lock())
            .env("TMPDIR", self.tmp())
            .stdin(Stdio::null());
        c
    }

    /// What kiln and stress-ng left in the temporary directory.
    fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.tmp())
            .expect("list tmp")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// One line of /proc/PID/stat: (state, parent pid, process group).
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc").expect("list /proc").filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Live (not zombie) processes of process group `group`.
fn live_members(group: u32) -> Vec<u32> {
    pids().into_iter().filter(|&p| matches!(stat(p), Some((s, _, g)) if g == group && s != 'Z')).collect()
}

/// The processes descending from `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = pids().into_iter().filter_map(|p| Some((p, stat(p)?.1))).collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &all {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// The stress-ng processes of one run: stress-ng and its workers.
struct StressRun {
    main: u32,
    all: Vec<u32>,
}

impl StressRun {
    /// Those still alive (zombies are dead: they only wait to be reaped).
    fn live(&self) -> Vec<u32> {
        self.all.iter().copied().filter(|&p| matches!(stat(p), Some((s, _, _)) if s != 'Z')).collect()
    }
}

/// Waits for `kiln`'s stress-ng to start and its workers to appear.
fn stress_run_of(kiln: &Child) -> StressRun {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let main = pids().into_iter().find(|&p| {
            stat(p).is_some_and(|(_, parent, _)| parent == kiln.id())
                && std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "stress-ng")
        });
        if let Some(main) = main {
            let mut all = descendants(main);
            if all.len() >= 3 {
                all.push(main);
                return StressRun { main, all };
            }
        }
        assert!(Instant::now() < deadline, "stress-ng and its workers did not start within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kiln did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a long host burn-in, sends kiln `signal`, and checks that no process
/// of its stress-ng group lives on and nothing is left on disk.
fn killing_kiln_ends_stress_ng(signal: i32) {
    if !have_stress_ng() {
        eprintln!("SKIPPED: stress-ng not installed");
        return;
    }
    let sandbox = Sandbox::new();
    let mut kiln = sandbox.burnin("10m").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start kiln");
    let run = stress_run_of(&kiln);
    let group = stat(run.main).map(|(_, _, g)| g);
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(kiln.id() as i32, signal) }, 0, "signal kiln");
    let status = wait_with_deadline(&mut kiln, Duration::from_secs(20));
    assert!(!status.success(), "a killed burn-in does not pass: {status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = run.live();
        if live.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for p in &live {
                // SAFETY: cleaning up after a failed test: processes this test's kiln started.
                unsafe { libc::kill(*p as i32, libc::SIGKILL) };
            }
            panic!("stress-ng processes {live:?} survived kiln's signal {signal} by 10 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(group, Some(run.main), "stress-ng led a process group of its own");
    assert_eq!(sandbox.leftovers(), Vec::<String>::new(), "nothing left in the temporary directory");
    // The lock is free again: a new burn-in runs.
    let out = sandbox.burnin("1s").output().expect("run kiln");
    assert_ne!(out.status.code(), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sigterm_to_kiln_ends_its_stress_ng() {
    killing_kiln_ends_stress_ng(libc::SIGTERM);
}

#[test]
fn sigkill_of_kiln_ends_its_stress_ng() {
    killing_kiln_ends_stress_ng(libc::SIGKILL);
}

#[test]
fn sigint_to_kiln_ends_its_stress_ng() {
    killing_kiln_ends_stress_ng(libc::SIGINT);
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_burn_in_is_refused_while_one_runs() {
    if !have_stress_ng() {
        eprintln!("SKIPPED: stress-ng not installed");
        return;
    }
    let sandbox = Sandbox::new();
    let mut first = sandbox.burnin("10m").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start kiln");
    let run = stress_run_of(&first);
    let second = sandbox.burnin("1s").output().expect("run kiln");
    let err = stderr_of(&second);
    assert_eq!(second.status.code(), Some(9), "refused with BUSY: {err}");
    assert!(err.contains("another burn-in is running"), "{err}");
    assert!(err.contains(&sandbox.lock().display().to_string()), "names the lock: {err}");
    assert!(err.contains(&format!("kill {}", first.id())), "says what to stop: {err}");
    assert!(second.stdout.is_empty(), "no report for a run that did not run");
    assert_eq!(run.live().len(), run.all.len(), "the first burn-in was left alone");
    // SAFETY: the kiln this test started.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    wait_with_deadline(&mut first, Duration::from_secs(20));
}

/// A stress-ng that outlived the kiln that started it (an older kiln, without
/// the parent-death signal) still holds the burn-in lock: a new burn-in says
/// so and names it instead of running beside it. flock(1) plays that kiln:
/// it takes the lock, starts stress-ng with the lock open, and is killed.
#[test]
fn a_leftover_stress_ng_is_found_and_refused() {
    if !have_stress_ng() || Command::new("flock").arg("--version").output().is_err() {
        eprintln!("SKIPPED: stress-ng or flock(1) not installed");
        return;
    }
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.lock(), "4194304\n").expect("lock file of a kiln long gone");
    let mut old = Command::new("flock")
        .arg(sandbox.lock())
        .args(["stress-ng", "--cpu", "1", "--timeout", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start flock");
    let group = old.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while live_members(group).len() < 3 {
        assert!(Instant::now() < deadline, "stress-ng did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    old.kill().expect("kill flock");
    old.wait().expect("reap flock");
    let out = sandbox.burnin("1s").output().expect("run kiln");
    let err = stderr_of(&out);
    // SAFETY: the process group this test started.
    unsafe { libc::kill(-(group as i32), libc::SIGKILL) };
    assert_eq!(out.status.code(), Some(9), "{err}");
    assert!(err.contains("left running") && err.contains("stress-ng (pid"), "{err}");
    assert!(err.contains(&format!("kill -- -{group}")), "{err}");
}

/// A stress-ng left by a kiln from before the lock (it named the metrics
/// file `kiln-stress-ng-PID.yaml` in the temporary directory and did not
/// pass the lock on) is found by its command line and refused too.
#[test]
fn a_stress_ng_left_by_an_older_kiln_is_found_and_refused() {
    if !have_stress_ng() {
        eprintln!("SKIPPED: stress-ng not installed");
        return;
    }
    let sandbox = Sandbox::new();
    let yaml = sandbox.tmp().join("kiln-stress-ng-4194303.yaml");
    let mut old = Command::new("stress-ng")
        .args(["--cpu", "1", "--timeout", "120s", "--yaml"])
        .arg(&yaml)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start stress-ng");
    let group = old.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while descendants(group).is_empty() {
        assert!(Instant::now() < deadline, "stress-ng did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = sandbox.burnin("1s").output().expect("run kiln");
    let err = stderr_of(&out);
    // SAFETY: the process group this test started.
    unsafe { libc::kill(-(group as i32), libc::SIGKILL) };
    let _ = old.wait();
    assert_eq!(out.status.code(), Some(9), "{err}");
    assert!(err.contains("left by kiln pid 4194303") && err.contains(&format!("kill -- -{group}")), "{err}");
    // Another temporary directory is another node's business (or another test's).
    let elsewhere = Sandbox::new();
    let mut other = Command::new("stress-ng")
        .args(["--cpu", "1", "--timeout", "120s", "--yaml"])
        .arg(&yaml)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start stress-ng");
    let out = elsewhere.burnin("1s").output().expect("run kiln");
    // SAFETY: the process group this test started.
    unsafe { libc::kill(-(other.id() as i32), libc::SIGKILL) };
    let _ = other.wait();
    assert_ne!(out.status.code(), Some(9), "{}", stderr_of(&out));
}

#[test]
fn a_lock_path_kiln_cannot_use_is_an_error_not_a_run() {
    let sandbox = Sandbox::new();
    let dir_as_lock = sandbox.dir.path().join("a-directory");
    std::fs::create_dir(&dir_as_lock).expect("mkdir");
    let out = sandbox.burnin("1s").env("KILN_BURNIN_LOCK", &dir_as_lock).output().expect("run kiln");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(err.contains(&dir_as_lock.display().to_string()), "{err}");
    assert!(Path::new(&dir_as_lock).is_dir());
}
