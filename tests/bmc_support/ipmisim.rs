//! Starts a private `ipmi_sim` (Debian package openipmi) for one test, with a chassis-control
//! script that plays the host: it keeps power and boot device in files the test can read.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "kiln-ipmi-pw";

pub struct IpmiSim {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

const CHASSIS_SCRIPT: &str = r#"#!/bin/sh
# Called by ipmi_sim as: <script> <mc> get <parm>... | <script> <mc> set <parm> <value>...
dir="$(dirname "$0")/host"
echo "$*" >> "$dir/calls"
shift
op=$1; shift
case $op in
get) for p in "$@"; do
       case $p in
       power) echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)";;
       boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)";;
       esac
     done;;
set) while [ $# -ge 2 ]; do
       case $1 in
       power) echo "$2" > "$dir/power";;
       boot) echo "$2" > "$dir/boot";;
       esac
       shift 2
     done;;
esac
"#;

impl IpmiSim {
    /// Start a simulator, or say why it cannot run here.
    /// A running simulator, or `None` after a SKIPPED line (a failure under
    /// `KILN_REQUIRE_PEERS=1`).
    pub fn start_or_skip() -> Option<IpmiSim> {
        IpmiSim::start().map_err(|why| super::skip(&format!("ipmi_sim unavailable: {why}"))).ok()
    }

    pub fn start() -> Result<IpmiSim, String> {
        for program in ["ipmi_sim", "ipmitool"] {
            if !on_path(program) {
                return Err(format!("{program} not installed (Debian: apt-get install openipmi ipmitool)"));
            }
        }
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = {
            let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("no free UDP port: {e}"))?;
            s.local_addr().map_err(|e| format!("no free UDP port: {e}"))?.port()
        };
        let d = dir.path();
        std::fs::create_dir(d.join("host")).map_err(|e| e.to_string())?;
        std::fs::create_dir(d.join("state")).map_err(|e| e.to_string())?;
        let script = d.join("chassis.sh");
        std::fs::write(&script, CHASSIS_SCRIPT).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        let lan = format!(
            "name \"kiln\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    priv_limit admin\n\
             \x20   allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n\
             \x20   allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n\
             \x20   guid a123456789abcdefa123456789abcdef\n  endlan\n  chassis_control \"{} 0x20\"\n\
             \x20 user 2 true \"{USER}\" \"{PASSWORD}\" admin 10 none md2 md5 straight\n",
            script.display()
        );
        std::fs::write(d.join("lan.conf"), lan).map_err(|e| e.to_string())?;
        std::fs::write(
            d.join("cmds"),
            "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n",
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(d.join("lan.conf"))
            .arg("-f")
            .arg(d.join("cmds"))
            .arg("-s")
            .arg(d.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start ipmi_sim: {e}"))?;
        let mut sim = IpmiSim { child, port, dir };
        sim.wait_ready()?;
        Ok(sim)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("ipmi_sim exited ({status})"));
            }
            let ok = Command::new("ipmitool")
                .args([
                    "-I",
                    "lanplus",
                    "-C",
                    "3",
                    "-N",
                    "1",
                    "-R",
                    "1",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                ])
                .args(["-U", USER, "-E", "chassis", "power", "status"])
                .env("IPMI_PASSWORD", PASSWORD)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("ipmi_sim did not answer within 15 s".into())
    }

    fn host(&self) -> PathBuf {
        self.dir.path().join("host")
    }

    /// What the simulated host's power is ("1" on, "0" off), as the chassis script recorded it.
    pub fn host_power(&self) -> String {
        read_trim(&self.host().join("power"))
    }

    /// Set the simulated host's power as a person at the rack would ("1" on, "0" off): the
    /// chassis script answers the next `get power` from it.
    pub fn set_host_power(&self, value: &str) {
        std::fs::write(self.host().join("power"), format!("{value}\n")).expect("write the simulated host's power");
    }

    /// The boot device the simulated host was told to use next.
    pub fn host_boot(&self) -> String {
        read_trim(&self.host().join("boot"))
    }

    /// Every chassis-control call ipmi_sim made, one per line.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.host().join("calls")).unwrap_or_default()
    }
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}
