//! Runs the workspace's test binaries one after another, each under a time
//! limit, instead of one `cargo test`: a test that hangs then costs its own
//! binary and a line naming it, not the whole CI run and every result after it.
//!
//! `cargo test --no-run --message-format=json` builds every test target and
//! names its executable; each is started as `cargo test` would start it (in
//! its package's directory, with `CARGO_MANIFEST_DIR` set) in a process group
//! of its own, so a hung binary is killed with the peers it started.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::sh;

/// How long one test binary may run unless `KILN_TEST_BINARY_LIMIT_S` says
/// otherwise: the slowest binary takes about two minutes on two cores.
const DEFAULT_LIMIT: Duration = Duration::from_secs(20 * 60);

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    profile: Option<Profile>,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Profile {
    test: bool,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// One test executable and where `cargo test` would run it.
pub struct TestBinary {
    pub label: String,
    pub executable: PathBuf,
    pub package_dir: PathBuf,
}

/// Build every test target of the workspace and list their executables.
pub fn build(cargo: &str, root: &Path) -> Result<Vec<TestBinary>> {
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("run cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed ({})", out.status);
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Message>(line) else { continue };
        if msg.reason != "compiler-artifact" || !msg.profile.is_some_and(|p| p.test) {
            continue;
        }
        let (Some(executable), Some(manifest), Some(target)) = (msg.executable, msg.manifest_path, msg.target) else {
            continue;
        };
        let package_dir = manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
        let package = package_dir.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        let label = format!("{package} {} {}", target.kind.join(","), target.name);
        found.push(TestBinary { label, executable, package_dir });
    }
    if found.is_empty() {
        bail!("cargo built no test executables");
    }
    Ok(found)
}

/// How one binary ended.
pub enum Outcome {
    Passed,
    Failed(i32),
    TimedOut,
}

/// Run one test binary with `args`, killing its process group after `limit`.
pub fn run_one(
    bin: &TestBinary,
    args: &[&String],
    envs: &[(&str, &std::ffi::OsStr)],
    limit: Duration,
) -> Result<Outcome> {
    use std::os::unix::process::CommandExt;
    println!("\n     Running {} ({})", bin.label, bin.executable.display());
    let mut cmd = Command::new(&bin.executable);
    cmd.current_dir(&bin.package_dir).env("CARGO_MANIFEST_DIR", &bin.package_dir).args(args).process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().with_context(|| format!("start {}", bin.executable.display()))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("wait for a test binary")? {
            return Ok(if status.success() { Outcome::Passed } else { Outcome::Failed(status.code().unwrap_or(1)) });
        }
        if started.elapsed() > limit {
            eprintln!(
                "xtask: {} still running after {} s: killing it and everything it started",
                bin.label,
                limit.as_secs()
            );
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The per-binary limit: `KILN_TEST_BINARY_LIMIT_S` or the default.
pub fn limit() -> Duration {
    std::env::var("KILN_TEST_BINARY_LIMIT_S")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIMIT)
}

/// Run every binary, then the doc tests; print a summary; answer the exit code.
pub fn run_all(args: &[&String], envs: &[(&str, &std::ffi::OsStr)]) -> Result<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = sh::root();
    let binaries = build(&cargo, &root)?;
    let limit = limit();
    let mut bad = Vec::new();
    for bin in &binaries {
        match run_one(bin, args, envs, limit)? {
            Outcome::Passed => {}
            Outcome::Failed(code) => bad.push(format!("{}: failed (exit {code})", bin.label)),
            Outcome::TimedOut => bad.push(format!("{}: killed after {} s", bin.label, limit.as_secs())),
        }
    }
    // Doc tests are not executables of their own; cargo runs them. Skipped
    // when test names were given, since those filter the binaries above.
    if args.is_empty() {
        let mut doc = Command::new(&cargo);
        doc.current_dir(&root).args(["test", "--workspace", "--doc"]);
        for (k, v) in envs {
            doc.env(k, v);
        }
        let code = sh::status(&mut doc)?;
        if code != 0 {
            bad.push(format!("doc tests: failed (exit {code})"));
        }
    }
    println!("\nxtask: {} test binaries run", binaries.len());
    if bad.is_empty() {
        println!("xtask: every test binary passed");
        Ok(0)
    } else {
        for b in &bad {
            println!("xtask: FAILED {b}");
        }
        Ok(1)
    }
}
