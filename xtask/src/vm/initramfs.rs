//! The initramfs of both VM environments: busybox, the kiln binary with the
//! shared libraries it links, the virtio modules, and an `/init` per role.
//!
//! The initrd is two archives back to back, which the kernel unpacks in
//! order: a small uncompressed one holding `/init` (it differs by role) and
//! the shared, gzip-compressed rest. So the large part is compressed once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::cpio::Cpio;
use super::tools::program;

/// Where the environment keeps its own files (not `/etc/kiln`: the agent
/// reads `/etc/kiln/image.json` as the booted image's identity).
const OWN_DIR: &str = "lib/kiln-vm";

/// What the environment's `/init` does after bringing the network up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Network-booted: `kiln agent` writes the disk and reboots the machine.
    Imaging,
    /// Booted from the written disk: `kiln agent --mode booted` reports what
    /// booted, then the machine powers off.
    Booted,
}

/// The part both roles share, compressed: busybox, kiln and its libraries,
/// the modules.
/// `work` holds the stripped kiln binary.
pub fn common(kiln: &Path, busybox: &Path, modules: &[PathBuf], work: &Path) -> Result<Vec<u8>> {
    let mut c = Cpio::new();
    for d in ["proc", "sys", "dev", "tmp", "run", "sbin", "usr/bin", "usr/sbin", "etc"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &read(busybox)?);
    c.symlink("bin/sh", "busybox");
    c.file("bin/kiln", 0o755, &stripped(kiln, work)?);
    let mut libs = shared_libraries(kiln)?;
    for l in shared_libraries(busybox)? {
        if !libs.contains(&l) {
            libs.push(l);
        }
    }
    for lib in libs {
        let inside = lib.to_str().context("library path is not UTF-8")?;
        c.file(inside, 0o755, &read(&lib)?);
    }
    let mut order = String::new();
    for m in modules {
        let name = m.file_name().and_then(|n| n.to_str()).context("module file name")?;
        let inside = format!("{OWN_DIR}/modules/{name}");
        c.file(&inside, 0o644, &read(m)?);
        order.push_str(&format!("/{inside}\n"));
    }
    c.file(&format!("{OWN_DIR}/modules.order"), 0o644, order.as_bytes());
    c.file(&format!("{OWN_DIR}/udhcpc.script"), 0o755, UDHCPC_SCRIPT.as_bytes());
    gzip(&c.finish())
}

/// The small first archive: `/init` for `role`.
pub fn init_archive(role: Role) -> Vec<u8> {
    let mut c = Cpio::new();
    c.file("init", 0o755, init_script(role).as_bytes());
    c.finish()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

/// The binary without debug information: a debug build of kiln is ~160 MiB
/// with it and ~30 MiB without, and every byte crosses the VM's network.
fn stripped(binary: &Path, work: &Path) -> Result<Vec<u8>> {
    let out_file = work.join("kiln.stripped");
    let out = Command::new(program("strip"))
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out_file)
        .arg(binary)
        .output()
        .context("run strip (Debian package binutils)")?;
    if !out.status.success() {
        bail!("strip {} failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let data = read(&out_file)?;
    let _ = std::fs::remove_file(&out_file);
    Ok(data)
}

/// The files `ldd` resolves for a dynamically linked binary (the loader
/// included), at the paths the binary will look for them; none for a static one.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().context("run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // ldd exits non-zero for a static binary ("not a dynamic executable").
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            Some("not") | Some("not found") => bail!("ldd {}: {line}", binary.display()),
            _ => {}
        }
        if line.contains("not found") {
            bail!("ldd {}: {}", binary.display(), line.trim());
        }
    }
    Ok(libs)
}

/// gzip, which every Debian system has (the kernel also reads zstd, but the
/// zstd tool is not always installed).
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new("gzip")
        .args(["-6", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run gzip")?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let data = data.to_vec();
    // Feed from a thread so a full stdout pipe cannot deadlock us.
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().context("wait for gzip")?;
    feeder.join().map_err(|_| anyhow::anyhow!("gzip feeder panicked"))?.context("write to gzip")?;
    if !out.status.success() {
        bail!("gzip failed ({})", out.status);
    }
    Ok(out.stdout)
}

/// busybox's udhcpc calls this with the lease in its environment.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# Applies a DHCP lease from busybox udhcpc: address, prefix length, default route.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "$router" ]; then
            ip route replace default via "${router%% *}" dev "$interface"
        fi
        ;;
esac
exit 0
"#;

/// `/init`. Every line it prints starts with `kiln-vm:` so the test can
/// follow the boot on the serial console. It never exits (the kernel would
/// panic): it ends by powering off, or by rebooting through the agent.
fn init_script(role: Role) -> String {
    let (what, agent) = match role {
        Role::Imaging => ("imaging environment (network boot)", "/bin/kiln agent --reboot"),
        Role::Booted => ("deployed image (booted from disk)", "/bin/kiln agent --mode booted --target /dev/vda"),
    };
    format!(
        r#"#!/bin/sh
# /init of kiln's VM test environments (written by `cargo xtask vm build`).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() {{ echo "kiln-vm: $*"; }}
halt_here() {{
    say "$1; powering off"
    sync
    poweroff -f
    while true; do sleep 60; done
}}
say "{what} started, kernel $(uname -r)"
while read -r module; do
    insmod "$module" || say "insmod $module failed"
done < /{OWN_DIR}/modules.order
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
[ -e /sys/class/net/eth0 ] || halt_here "no network interface eth0"
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /{OWN_DIR}/udhcpc.script -n -q -t 30 -T 1 >/dev/null 2>&1 || halt_here "no DHCP lease on eth0"
say "network up: $(ip -4 -o addr show dev eth0 | awk '{{print $4}}') mac $(cat /sys/class/net/eth0/address)"
for word in $(cat /proc/cmdline); do
    case "$word" in
        kiln.key=*) say "cmdline kiln.key=(not shown)" ;;
        kiln.*) say "cmdline $word" ;;
    esac
done
grep -q 'kiln.controller=' /proc/cmdline || halt_here "no kiln.controller= on the kernel command line"
export KILN_LOG=info
say "running: {agent}"
{agent}
rc=$?
say "kiln agent exited $rc"
halt_here "done"
"#
    )
}
