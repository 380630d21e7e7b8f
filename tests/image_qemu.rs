//! Imaging end to end in a virtual machine: qemu (software emulation, no KVM) PXE-boots through
//! iPXE from kiln's dnsmasq configuration and iPXE script into the imaging environment (Debian's
//! cloud kernel, a busybox initramfs running `kiln agent`), which writes the artifact served by
//! `kiln rack image` onto its virtual disk and reboots; the VM boots from that disk (syslinux) and
//! its `kiln agent --mode booted` reports the image's sha256 back. The parts are built by
//! `xtask::vm` (see docs/imaging.md, "The VM test").
//!
//! Everything runs in the network namespace `kq-net` (bridge `kqbr0`, 10.77.9.1/24, tap `kqtap0`),
//! apart from the lab's `kt-*`/10.77.1.x. Needs root, qemu, dnsmasq and the tools `xtask::vm::tools`
//! lists; otherwise SKIPPED (a failure under KILN_REQUIRE_PEERS=1). Every wait has a deadline and
//! fails with the tail of the serial console.

mod image_support;

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image_support::{kiln, s, skip, stderr};
use kiln::inventory::{Inventory, StepOutcome};
use xtask::vm::{self, VmBuild};

const NETNS: &str = "kq-net";
const BRIDGE: &str = "kqbr0";
const TAP: &str = "kqtap0";
const HOST_IP: &str = "10.77.9.1";
const PORT: u16 = 8089;
const NODE: &str = "vm1";
const NODE_IP: &str = "10.77.9.11";
const NODE_MAC: &str = "52:54:00:77:09:11";
/// The VM's disk: larger than the 64 MiB image, as a real disk would be.
const DISK_MIB: u64 = 128;
/// From qemu's start to the booted report and power-off. Measured here: about 40 s alone, about
/// 60 s beside the rest of the suite on 2 cores.
const VM_DEADLINE: Duration = Duration::from_secs(240);

fn controller_url() -> String {
    format!("http://{HOST_IP}:{PORT}")
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    if !xtask::lab::is_root() {
        return Some("not root: the VM test needs a network namespace and a tap device".into());
    }
    let missing = vm::tools::missing();
    if !missing.is_empty() {
        return Some(format!("missing for the VM test: {}", missing.join(", ")));
    }
    None
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn ip(args: &[&str]) {
    run(Command::new(vm::tools::program("ip")).args(args));
}

fn in_ns(args: &[&str]) {
    let mut all = vec!["netns", "exec", NETNS];
    all.extend_from_slice(args);
    ip(&all);
}

/// The namespace with its bridge and tap; deleting the namespace on drop removes both.
struct Net;

impl Net {
    fn up() -> Net {
        Net::remove_leftover();
        ip(&["netns", "add", NETNS]);
        let net = Net;
        in_ns(&["ip", "link", "set", "lo", "up"]);
        in_ns(&["ip", "link", "add", BRIDGE, "type", "bridge"]);
        in_ns(&["ip", "addr", "add", &format!("{HOST_IP}/24"), "dev", BRIDGE]);
        in_ns(&["ip", "link", "set", BRIDGE, "up"]);
        in_ns(&["ip", "tuntap", "add", TAP, "mode", "tap"]);
        in_ns(&["ip", "link", "set", TAP, "master", BRIDGE, "up"]);
        // An IPv6 prefix for the router advertisements (see `ra_conf`).
        in_ns(&["ip", "-6", "addr", "add", "fd00:77:9::1/64", "dev", BRIDGE, "nodad"]);
        net
    }

    /// A namespace left by a run of this test that was killed: its processes (qemu, dnsmasq, the
    /// controller of that run) are stopped by pid, then it is deleted.
    fn remove_leftover() {
        if !Path::new("/run/netns").join(NETNS).exists() {
            return;
        }
        let out = Command::new(vm::tools::program("ip")).args(["netns", "pids", NETNS]).output();
        for pid in out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().lines() {
            if let Ok(pid) = pid.trim().parse::<u32>() {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new(vm::tools::program("ip")).args(["netns", "del", NETNS]).status();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(vm::tools::program("ip")).args(["netns", "del", NETNS]).status();
    }
}

/// Runs `f` on a thread that has entered the namespace (a network namespace is per thread), to
/// reach the controller at 10.77.9.1 as the VM does.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = File::open(Path::new("/run/netns").join(NETNS)).expect("open the namespace");
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the namespace");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// A process in the namespace, its output in files; killed if still running when dropped.
struct Proc {
    what: &'static str,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    fn start(what: &'static str, dir: &Path, program: &Path, args: &[&str]) -> Proc {
        let (stdout, stderr) = (dir.join(format!("{what}.out")), dir.join(format!("{what}.err")));
        let child = Command::new(vm::tools::program("ip"))
            .args(["netns", "exec", NETNS])
            .arg(program)
            .args(args)
            .env_remove("KILN_DB")
            .env_remove("KILN_RACK")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Proc { what, child, stdout, stderr }
    }

    /// `Some(exit code)` once it has ended (-1 for a signal).
    fn exited(&mut self) -> Option<i32> {
        self.child.try_wait().expect("try_wait").map(|s| s.code().unwrap_or(-1))
    }

    fn output(&self) -> String {
        format!(
            "--- {} stdout\n{}\n--- {} stderr\n{}",
            self.what,
            tail(&std::fs::read_to_string(&self.stdout).unwrap_or_default(), 30),
            self.what,
            tail(&std::fs::read_to_string(&self.stderr).unwrap_or_default(), 30)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by its handle (`ip netns exec` execs the program, so this is it).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The serial console so far, with the firmware's screen control characters dropped.
fn console(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n").replace('\r', "\n");
    let text: String = text.chars().filter(|c| *c == '\n' || !c.is_control()).collect();
    text.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

/// The exit code of a `kiln agent` in the VM that failed, as its `/init` reports it.
fn agent_failure(console: &str) -> Option<&str> {
    console
        .lines()
        .filter_map(|l| l.split("kiln-vm: kiln agent exited ").nth(1))
        .map(str::trim)
        .find(|code| *code != "0")
}

/// The boot's milestones as the serial console shows them, in order.
const MILESTONES: &[(&str, &str)] = &[
    ("iPXE initialising devices", "qemu's iPXE option ROM runs"),
    ("kiln.ipxe... ok", "iPXE fetched kiln's chain script (DHCP from kiln's dnsmasq configuration)"),
    ("52-54-00-77-09-11.ipxe... ok", "iPXE fetched the node's own script (its MAC and address checked)"),
    ("kiln-vm: imaging environment (network boot) started", "the imaging environment's /init runs"),
    ("kiln-vm: network up", "the imaging environment has its DHCP lease"),
    ("kiln-vm: running: /bin/kiln agent --reboot", "the imaging agent starts"),
    ("kiln-vm: deployed image (booted from disk) started", "the VM booted the written disk"),
    ("kiln-vm: kiln agent exited 0", "the booted agent's report was confirmed"),
    ("reboot: Power down", "the VM powers off"),
];

/// Failing with what the VM, the controller and dnsmasq said.
fn fail(why: &str, serial: &Path, procs: &[&Proc], dnsmasq_log: &Path) -> ! {
    let mut report = format!("{why}\n--- serial console (last 60 lines)\n{}\n", tail(&console(serial), 60));
    for p in procs {
        report.push_str(&p.output());
        report.push('\n');
    }
    report
        .push_str(&format!("--- dnsmasq log\n{}", tail(&std::fs::read_to_string(dnsmasq_log).unwrap_or_default(), 15)));
    panic!("{report}");
}

/// The router advertisement of the boot network, a second dnsmasq configuration file beside the
/// one kiln writes. iPXE's automatic configuration waits for an IPv6 router as well as for DHCP,
/// about 15 s per attempt on a network without one (twice per boot here: the ROM, then the
/// script's `dhcp`); a real boot network with an IPv6 router answers at once, and so does this one.
fn ra_conf() -> String {
    format!("# the boot network's IPv6 router (see tests/image_qemu.rs)\nenable-ra\ndhcp-range=::,constructor:{BRIDGE},ra-stateless\n")
}

fn rack_manifest(path: &Path) {
    let text = format!(
        "# the VM test's rack: one node, the VM, identified by its MAC\n[rack]\nid = \"kiln-vm-test\"\n\n\
         [[nodes]]\nname = \"{NODE}\"\naddress = \"{NODE_IP}\"\nmacs = [\"{NODE_MAC}\"]\n"
    );
    std::fs::write(path, text).expect("write the rack manifest");
}

/// True when the first `len` bytes of both files are equal.
fn equal_prefix(a: &Path, b: &Path, len: u64) -> bool {
    let (mut fa, mut fb) = (File::open(a).expect("open"), File::open(b).expect("open"));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut left = len;
    while left > 0 {
        let n = left.min(ba.len() as u64) as usize;
        if fa.read_exact(&mut ba[..n]).is_err() || fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
        left -= n as u64;
    }
    true
}

#[test]
fn a_vm_pxe_boots_is_imaged_by_kiln_and_reports_the_booted_image() {
    if let Some(why) = skip_reason() {
        return skip(&why);
    }
    let started = Instant::now();
    let base = repo().join("target/vm-test");
    let run_dir = base.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).expect("run dir");

    // The parts: kernel, imaging initrd, and the deployable disk as a kiln artifact.
    let parts = vm::build(&VmBuild {
        kiln: PathBuf::from(env!("CARGO_BIN_EXE_kiln")),
        cache: repo().join("target/vm/cache"),
        out: base.join("build"),
        controller: controller_url(),
    })
    .unwrap_or_else(|e| panic!("build the VM's parts: {e:#}"));

    // kiln's dnsmasq configuration: the VM's fixed address, undionly.kpxe over TFTP for a plain
    // PXE ROM (qemu's ROM is iPXE already and is sent the script's URL, option 175).
    let tftp = run_dir.join("tftp");
    std::fs::create_dir_all(&tftp).expect("tftp dir");
    std::fs::copy("/usr/lib/ipxe/undionly.kpxe", tftp.join("undionly.kpxe")).expect("copy undionly.kpxe");
    let dnsmasq_conf = run_dir.join("dnsmasq.conf");
    let out = kiln(&[
        "image",
        "dnsmasq",
        "--interface",
        BRIDGE,
        "--range",
        "10.77.9.100,10.77.9.150",
        "--tftp-root",
        s(&tftp),
        "--script-url",
        &format!("{}/boot/kiln.ipxe", controller_url()),
        "--host",
        &format!("{NODE_MAC},{NODE_IP},{NODE}"),
        "--out",
        s(&dnsmasq_conf),
    ]);
    assert_eq!(out.status.code(), Some(0), "dnsmasq config: {}", stderr(&out));
    let ra = run_dir.join("router-advertisement.conf");
    std::fs::write(&ra, ra_conf()).expect("write ra conf");
    let rack = run_dir.join("rack.toml");
    rack_manifest(&rack);
    let (db, disk, serial) = (run_dir.join("kiln.db"), run_dir.join("disk.raw"), run_dir.join("serial.log"));
    File::create(&disk).and_then(|f| f.set_len(DISK_MIB << 20)).expect("create the VM's disk");
    // SeaBIOS copies the option ROM's screen (iPXE's messages) to this I/O port, COM1. It reads
    // exactly `etc/sercon-port`, so qemu's warning that the name lacks `opt/` is expected.
    let sercon = run_dir.join("sercon-port");
    std::fs::write(&sercon, 0x3f8u16.to_le_bytes()).expect("sercon");

    let _net = Net::up();
    let dnsmasq_log = run_dir.join("dnsmasq.log");
    let mut dnsmasq = Proc::start(
        "dnsmasq",
        &run_dir,
        &vm::tools::program("dnsmasq"),
        &[
            "--keep-in-foreground",
            &format!("--conf-file={}", s(&dnsmasq_conf)),
            &format!("--conf-file={}", s(&ra)),
            &format!("--dhcp-leasefile={}", s(&run_dir.join("leases"))),
            &format!("--pid-file={}", s(&run_dir.join("dnsmasq.pid"))),
            &format!("--log-facility={}", s(&dnsmasq_log)),
            "--log-dhcp",
            // Stay root: dnsmasq-base alone creates no user to drop to.
            "--user=root",
        ],
    );
    let mut controller = Proc::start(
        "controller",
        &run_dir,
        Path::new(env!("CARGO_BIN_EXE_kiln")),
        &[
            "rack",
            "image",
            "--rack",
            s(&rack),
            "--artifact",
            s(&parts.manifest),
            "--boot",
            "none",
            "--listen",
            &format!("{HOST_IP}:{PORT}"),
            "--advertise",
            &controller_url(),
            "--boot-dir",
            s(&parts.boot_dir),
            "--pxe-kernel",
            "vmlinuz",
            "--pxe-initrd",
            "initrd.img",
            "--dhcp-leases",
            s(&run_dir.join("leases")),
            "--target",
            "/dev/vda",
            "--node-timeout",
            "220s",
            "--db",
            s(&db),
            "--json",
        ],
    );

    // The controller must be listening before the VM's firmware asks for the script.
    let listen: SocketAddr = format!("{HOST_IP}:{PORT}").parse().expect("address");
    let wait_start = Instant::now();
    while !in_netns(move || TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok()) {
        if let Some(code) = controller.exited() {
            fail(&format!("the controller exited ({code}) before listening"), &serial, &[&controller], &dnsmasq_log);
        }
        if dnsmasq.exited().is_some() {
            fail("dnsmasq exited at start", &serial, &[&dnsmasq], &dnsmasq_log);
        }
        if wait_start.elapsed() > Duration::from_secs(30) {
            fail("the controller did not listen within 30 s", &serial, &[&controller], &dnsmasq_log);
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let qemu_started = Instant::now();
    let mut qemu = Proc::start(
        "qemu",
        &run_dir,
        &vm::tools::program("qemu-system-x86_64"),
        &[
            "-machine",
            "pc,accel=tcg",
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            &format!("file:{}", s(&serial)),
            "-fw_cfg",
            &format!("name=etc/sercon-port,file={}", s(&sercon)),
            "-netdev",
            &format!("tap,id=net0,ifname={TAP},script=no,downscript=no"),
            "-device",
            &format!("virtio-net-pci,netdev=net0,mac={NODE_MAC}"),
            "-drive",
            &format!("file={},format=raw,if=virtio", s(&disk)),
            // The network once (as a BMC's boot-once would), then the disk.
            "-boot",
            "once=n,order=c",
        ],
    );

    // Follow the console until the VM has powered off and the controller has finished.
    let mut seen: Vec<(usize, f64)> = Vec::new();
    let mut controller_code = None;
    let mut qemu_code = None;
    let mut qemu_ended_at = None;
    loop {
        let text = console(&serial);
        for (i, (marker, _)) in MILESTONES.iter().enumerate() {
            if !seen.iter().any(|(j, _)| *j == i) && text.contains(marker) {
                seen.push((i, qemu_started.elapsed().as_secs_f64()));
            }
        }
        if controller_code.is_none() {
            controller_code = controller.exited();
        }
        if qemu_code.is_none() {
            qemu_code = qemu.exited();
            if qemu_code.is_some() {
                qemu_ended_at = Some(Instant::now());
            }
        }
        if controller_code.is_some() && qemu_code.is_some() {
            break;
        }
        if let Some(code) = agent_failure(&text) {
            fail(&format!("kiln agent in the VM exited {code}"), &serial, &[&controller, &qemu], &dnsmasq_log);
        }
        if qemu_ended_at.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) {
            fail(
                "the VM powered off but the controller did not finish within 30 s",
                &serial,
                &[&controller, &qemu],
                &dnsmasq_log,
            );
        }
        if qemu_started.elapsed() > VM_DEADLINE {
            let next = MILESTONES.iter().enumerate().find(|(i, _)| !seen.iter().any(|(j, _)| j == i));
            let waiting = next.map(|(_, (m, what))| format!("{what} ({m:?})")).unwrap_or_default();
            fail(
                &format!("not done within {VM_DEADLINE:?}; still waiting for: {waiting}"),
                &serial,
                &[&controller, &qemu],
                &dnsmasq_log,
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let vm_seconds = qemu_started.elapsed().as_secs_f64();
    // The timeline, printed and kept beside the console log (docs/imaging.md quotes it).
    let mut timeline = format!("parts built in {:.1} s\n", parts.seconds);
    for (i, at) in &seen {
        timeline.push_str(&format!("{at:6.1} s  {}\n", MILESTONES[*i].1));
    }
    timeline.push_str(&format!("VM {vm_seconds:.1} s, whole test {:.1} s\n", started.elapsed().as_secs_f64()));
    eprint!("{timeline}");
    let _ = std::fs::write(run_dir.join("timeline.txt"), &timeline);

    // The VM went through every milestone, in order.
    let order: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
    if order != (0..MILESTONES.len()).collect::<Vec<_>>() {
        let missing: Vec<&str> =
            MILESTONES.iter().enumerate().filter(|(i, _)| !order.contains(i)).map(|(_, (_, what))| *what).collect();
        fail(
            &format!("milestones seen out of order or missing: {missing:?}"),
            &serial,
            &[&controller, &qemu],
            &dnsmasq_log,
        );
    }
    let text = console(&serial);
    // The imaging kernel ran with the command line from kiln's script, the deployed one with its own.
    assert!(
        text.contains("Command line: initrd=initrd.img console=ttyS0,115200n8 kiln.controller="),
        "no PXE command line"
    );
    assert!(text.contains("kiln.mode=booted"), "the deployed image's kernel command line is missing");
    // The node's key for this deployment came on that command line (the kernel prints it on the
    // node's own console), and went nowhere the controller writes.
    let key = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kiln.key="))
        .filter(|k| k.len() == 64)
        .unwrap_or_else(|| panic!("no kiln.key= on the imaging kernel's command line"))
        .to_string();
    assert!(text.contains(&format!("kiln.node={NODE} kiln.deploy=")), "no kiln.node= and kiln.deploy=");
    let written = [&controller.stdout, &controller.stderr, &db]
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .any(|bytes| bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    assert!(!written, "the node's key is in the controller's output or the inventory");
    let log = std::fs::read_to_string(&dnsmasq_log).unwrap_or_default();
    assert!(log.contains(&format!("DHCPACK({BRIDGE}) {NODE_IP} {NODE_MAC}")), "dnsmasq gave the VM no lease:\n{log}");
    assert!(log.contains("user class: iPXE"), "no DHCP request from iPXE:\n{log}");

    // The controller confirmed the boot.
    if controller_code != Some(0) {
        fail(&format!("kiln rack image exited {controller_code:?}"), &serial, &[&controller], &dnsmasq_log);
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&controller.stdout).unwrap_or_default()).expect("--json output");
    assert_eq!(report["nodes"][0]["node"], NODE, "{report:#}");
    assert_eq!(report["nodes"][0]["status"], "booted", "{report:#}");
    assert_eq!(report["image_sha256"], parts.image_sha256.as_str(), "{report:#}");

    // The disk holds the image over the image's length (the rest of the disk is not the image's).
    assert!(equal_prefix(&disk, &parts.image, parts.image_size), "the VM's disk differs from the image");

    // The inventory: every step of the node, the BMC's two skipped (--boot none), ending in the
    // confirmed boot on the image's sha256.
    let inv = Inventory::open(&db).expect("open the inventory");
    let steps = inv.deploy_steps(NODE).expect("deploy steps");
    let names: Vec<(&str, StepOutcome)> = steps.iter().map(|s| (s.step.as_str(), s.outcome)).collect();
    assert_eq!(
        names,
        [
            ("boot-set", StepOutcome::Skipped),
            ("reset", StepOutcome::Skipped),
            ("agent", StepOutcome::Ok),
            ("written", StepOutcome::Ok),
            ("reboot", StepOutcome::Ok),
            ("booted", StepOutcome::Ok),
        ],
        "{steps:#?}"
    );
    let last = steps.last().expect("a step");
    assert_eq!(last.image_sha256, parts.image_sha256);
    assert!(last.detail.contains(&parts.image_sha256) && last.detail.contains("disk"), "{}", last.detail);
}
