//! What the lab needs installed: OpenSSH's server, iproute2, util-linux, openssl, and sushy-tools in a venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::process::run;

/// DMTF's Redfish utilities (`rf_firmware_inventory.py`), which the firmware benchmark runs
/// beside kiln.
pub const REDFISH_UTILITIES: &str = "redfish-utilities==3.5.2";

/// The sushy-tools release the lab is known to work with.
const SUSHY_TOOLS: &str = "sushy-tools==2.2.0";

/// True when this process runs as root (the lab creates namespaces and links).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

/// Installs the Debian packages the lab needs when a tool is missing.
pub fn ensure_system_tools(bmc: bool) -> anyhow::Result<()> {
    let mut wanted: Vec<(&str, &str)> = vec![
        ("/usr/sbin/sshd", "openssh-server"),
        ("ssh-keygen", "openssh-client"),
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("sha256sum", "coreutils"),
    ];
    if bmc {
        wanted.push(("openssl", "openssl"));
    }
    let mut missing: Vec<&str> = wanted.iter().filter(|(p, _)| !have(p)).map(|(_, pkg)| *pkg).collect();
    // Debian splits venv and ensurepip out of python3 itself.
    let venv_works = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if bmc && !venv_works {
        missing.push("python3-venv");
    }
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    install_packages(&missing)
}

/// `apt-get install` of Debian packages the lab or its benchmark needs.
pub fn install_packages(packages: &[&str]) -> anyhow::Result<()> {
    if !have("apt-get") {
        bail!("these packages are needed and there is no apt-get to install them: {}", packages.join(" "));
    }
    eprintln!("lab: installing {}", packages.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// The sushy-emulator program, installing sushy-tools into `venv` first if needed.
pub fn ensure_sushy(venv: &Path) -> anyhow::Result<PathBuf> {
    let program = venv.join("bin/sushy-emulator");
    if program.exists() {
        return Ok(program);
    }
    eprintln!("lab: installing {SUSHY_TOOLS} into {}", venv.display());
    let python = venv.join("bin/python3");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv)).context("create the sushy-tools venv")?;
    }
    // The venv module on Debian may leave out pip; ensurepip brings it back.
    if !venv.join("bin/pip").exists() {
        run(Command::new(&python).args(["-m", "ensurepip", "--upgrade"]))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", SUSHY_TOOLS])).context("pip install sushy-tools")?;
    Ok(program)
}
