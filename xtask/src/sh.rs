//! Small helpers to run commands and find the workspace root.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (the directory above `xtask/`).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs a command, echoing it, and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let code = status(cmd)?;
    if code != 0 {
        bail!("{} exited with {code}", describe(cmd));
    }
    Ok(())
}

/// Runs a command, echoing it, and returns its exit code.
pub fn status(cmd: &mut Command) -> Result<i32> {
    eprintln!("$ {}", describe(cmd));
    let st = cmd.status().with_context(|| format!("could not start {}", describe(cmd)))?;
    Ok(st.code().unwrap_or(128))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    // SAFETY-free check: the effective uid is in /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Installs Debian packages that are missing (by probing `dpkg -s`).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing packages {missing:?} and not root: install them with apt-get");
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut cmd)
}

/// Builds the kiln binary and returns its path.
pub fn build_kiln(release: bool) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args(["build", "--quiet", "--package", "kiln", "--bin", "kiln"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    Ok(target.join(if release { "release" } else { "debug" }).join("kiln"))
}
