//! `cargo xtask test`: install what the tests need, then run every test.
//!
//! CI calls exactly this on a fresh clone, so every install step lives here:
//! Debian packages for the real peers (sshd, stress-ng, ipmi_sim, lspci, qemu) and a
//! Python venv under `target/venv` with the Redfish emulator (sushy-tools).

use std::ffi::OsStr;
use std::process::Command;

use anyhow::Result;

use crate::{sh, test_runner};

/// Debian packages the test suite uses as real peers or tools.
pub const TEST_PACKAGES: &[&str] = &[
    "pciutils",        // lspci, for comparing inspect with the tool users know
    "stress-ng",       // host burn-in
    "openssh-server",  // sshd in the lab's network namespaces
    "openssh-client",  // ssh-keygen for lab keys
    "iproute2",        // ip netns, bridges, veths
    "python3-venv",    // the venv for sushy-tools
    "python3-libvirt", // sushy-tools on libvirt's test driver: the one that implements SimpleUpdate
    "ipmitool",        // IPMI fallback client
    "openipmi",        // ipmi_sim, the IPMI peer
    "slurm-wlm",       // slurmctld and slurmd for the Slurm hand-off test
    "munge",           // Slurm's authentication
    "chromium",        // headless screenshots of the HTML report
    "qemu-utils",      // qemu-img: image conversion and `qemu-img compare` in the image tests
    "dnsmasq-base",    // dnsmasq --test checks the DHCP/TFTP configuration kiln writes
    // The imaging VM test (tests/image_qemu.rs, xtask/src/vm): qemu with its
    // iPXE option ROMs, undionly.kpxe for the TFTP root, busybox for the VM's
    // initramfs, and what makes its bootable disk without mounting anything.
    // The kernel is not installed: the test downloads Debian's cloud kernel
    // package with `apt-get download` into target/vm/cache.
    "qemu-system-x86", // software-emulated x86 VM (no KVM needed)
    "ipxe-qemu",       // iPXE option ROMs qemu's NICs boot from
    "ipxe",            // undionly.kpxe, served from the test's TFTP root
    "busybox-static",  // the VM's shell, udhcpc, insmod
    "syslinux",        // syslinux --install on a FAT image file
    "syslinux-common", // mbr.bin, the disk's boot code
    "mtools",          // mcopy into the FAT image (syslinux uses it too)
    "dosfstools",      // mkfs.fat on an image file
    "binutils",        // strip: the kiln binary without debug info in the VM
    "xz-utils",        // xz: node binaries packed by `cargo xtask dist`, unpacked on the nodes
    "zstd",            // zstd: the same, the copy a node that has it unpacks fastest
];

/// Python packages installed into `target/venv`.
/// redfish-utilities: DMTF's `rf_firmware_inventory.py`, run beside kiln by the firmware benchmark.
pub const VENV_PACKAGES: &[&str] = &["sushy-tools==2.2.0", xtask::lab::REDFISH_UTILITIES];

pub fn install() -> Result<()> {
    if sh::is_root() {
        sh::apt_install(TEST_PACKAGES)?;
        // One install can remove a package another asked for: Debian's
        // qemu-system-x86 removes a newer qemu-utils from elsewhere. A second
        // pass puts back whatever is missing now, in Debian's matching version.
        sh::apt_install(TEST_PACKAGES)?;
    } else {
        eprintln!("xtask: not root: skipping apt installs; tests needing root will say SKIPPED");
    }
    let venv = sh::root().join("target/venv");
    let installed = ["bin/sushy-emulator", "bin/rf_firmware_inventory.py"].iter().all(|p| venv.join(p).exists());
    if !installed {
        if !venv.join("bin/pip").exists() {
            sh::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        sh::run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(VENV_PACKAGES),
        )?;
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<u8> {
    let (ours, passthrough): (Vec<&String>, Vec<&String>) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].iter().collect(), args[i + 1..].iter().collect()),
        None => (args.iter().collect(), Vec::new()),
    };
    if !ours.iter().any(|a| a.as_str() == "--no-install") {
        install()?;
    }
    let venv = sh::root().join("target/venv");
    let mut envs: Vec<(&str, &OsStr)> = vec![("KILN_TEST_VENV", venv.as_os_str())];
    // As root every peer was installed above, so a test that cannot find its
    // peer (sshd, the Redfish emulator, ipmi_sim) fails instead of skipping.
    if sh::is_root() {
        envs.push(("KILN_REQUIRE_PEERS", OsStr::new("1")));
    }
    let code = test_runner::run_all(&passthrough, &envs)?;
    // kiln must build for every architecture it is pushed to; where CI has
    // another target installed (aarch64 beside x86_64), check it builds.
    if passthrough.is_empty() && !xtask::dist::check_other_targets(&sh::root())? {
        println!("xtask: FAILED cargo check for another installed target");
        return Ok(1);
    }
    Ok(code)
}
