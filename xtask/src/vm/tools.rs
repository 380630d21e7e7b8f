//! The host programs the VM test needs, where they are, and which Debian
//! package provides each (the list `cargo xtask test` installs is
//! `TEST_PACKAGES`, kept in step with this one).

use std::path::{Path, PathBuf};

/// `(program or absolute path, Debian package)`.
pub const REQUIRED: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("/usr/lib/ipxe/qemu/efi-virtio.rom", "ipxe-qemu"),
    ("dnsmasq", "dnsmasq-base"),
    ("busybox", "busybox-static"),
    ("mkfs.fat", "dosfstools"),
    ("mcopy", "mtools"),
    ("syslinux", "syslinux"),
    ("/usr/lib/syslinux/mbr/mbr.bin", "syslinux-common"),
    ("strip", "binutils"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("ip", "iproute2"),
    ("/dev/net/tun", "(the tun driver: qemu's tap network)"),
];

/// A program on `PATH`, or in the sbin directories that a non-login root
/// shell may leave off it (mkfs.fat, dnsmasq and ip live there).
pub fn find(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        return Path::new(program).exists().then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `find`, or the name itself (so that running it fails with "not found").
pub fn program(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| PathBuf::from(name))
}

/// What is missing, as `program (Debian package)`.
pub fn missing() -> Vec<String> {
    REQUIRED.iter().filter(|(p, _)| find(p).is_none()).map(|(p, pkg)| format!("{p} ({pkg})")).collect()
}
