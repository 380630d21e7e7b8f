//! The IPMI fallback of `Bmc`: power and boot device through `ipmitool -I lanplus`.
//!
//! For BMCs whose Redfish is missing or broken. Only what IPMI does well is
//! offered; the rest answers "not supported over IPMI". The password goes to
//! ipmitool through the `IPMI_PASSWORD` environment variable (`-E`), never on
//! its command line, where any user on the host could read it in `ps`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::target::{BmcTarget, IpmiAddress};
use super::{Bmc, BmcError, BootTarget, FirmwareItem, Identity, PowerAction, PowerState, Secret};

/// A BMC reached with ipmitool over IPMI 2.0 (lanplus). Its `Debug` form shows the password
/// redacted (`Secret`).
#[derive(Debug)]
pub struct IpmiBmc {
    label: String,
    address: IpmiAddress,
    user: String,
    password: Secret,
    program: PathBuf,
    timeout: Duration,
}

impl IpmiBmc {
    /// `None` when the target has no IPMI address.
    pub fn from_target(target: &BmcTarget) -> Option<Self> {
        let address = target.ipmi.clone()?;
        Some(IpmiBmc::new(target.node.as_deref(), address, target.username.clone(), target.password.clone()))
    }

    /// A client for the BMC at `address`, named after `node` in messages. For a node with no
    /// Redfish BMC, where there is no `BmcTarget` to start from.
    pub fn new(node: Option<&str>, address: IpmiAddress, user: String, password: Secret) -> Self {
        let label = match node {
            Some(node) => format!("ipmi {address} ({node})"),
            None => format!("ipmi {address}"),
        };
        IpmiBmc { label, address, user, password, program: PathBuf::from("ipmitool"), timeout: Duration::from_secs(30) }
    }

    /// Use another ipmitool binary (tests, or a site's own build).
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Limit for one ipmitool run; it is killed after that.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The arguments before the command: cipher suite 3 (AES-CBC-128 with
    /// HMAC-SHA1), which every IPMI 2.0 BMC offers; ipmitool's own default
    /// makes some BMCs (and ipmi_sim) stall 10 s per call.
    fn base_args(&self) -> Vec<String> {
        [
            "-I",
            "lanplus",
            "-C",
            "3",
            "-N",
            "3",
            "-R",
            "2",
            "-H",
            &self.address.host,
            "-p",
            &self.address.port.to_string(),
            "-U",
            &self.user,
            "-E",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Run `ipmitool <base> <command>` and return its standard output.
    fn run(&self, command: &[&str]) -> Result<String, BmcError> {
        let shown = command.join(" ");
        let mut child = Command::new(&self.program)
            .args(self.base_args())
            .args(command)
            .env("IPMI_PASSWORD", self.password.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BmcError::IpmiSpawn { bmc: self.label.clone(), source })?;
        // Read both pipes on threads so a chatty ipmitool cannot block on a full pipe.
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let out_reader = thread::spawn(move || read_all(stdout.as_mut()));
        let err_reader = thread::spawn(move || read_all(stderr.as_mut()));
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => {
                    // Kill only our own child; ignore the error if it exited meanwhile.
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(source) => return Err(BmcError::IpmiSpawn { bmc: self.label.clone(), source }),
            }
        };
        let out = out_reader.join().unwrap_or_default();
        let err = err_reader.join().unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(out),
            Some(s) => Err(BmcError::IpmiFailed {
                bmc: self.label.clone(),
                command: shown,
                status: s.to_string(),
                stderr: first_lines(&err),
            }),
            None => Err(BmcError::IpmiFailed {
                bmc: self.label.clone(),
                command: shown,
                status: format!("killed after {}s", self.timeout.as_secs()),
                stderr: first_lines(&err),
            }),
        }
    }

    fn unsupported(&self, operation: &'static str) -> BmcError {
        BmcError::NotSupported { bmc: self.label.clone(), operation, why: "over IPMI (use the Redfish BMC)".into() }
    }

    fn output_error(&self, command: &str, output: &str) -> BmcError {
        BmcError::IpmiOutput { bmc: self.label.clone(), command: command.into(), output: first_lines(output) }
    }
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The first three lines, trimmed: enough for a message, never a wall of text.
fn first_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect();
    if lines.is_empty() {
        "(no output)".to_string()
    } else {
        lines.join(" / ")
    }
}

/// `Chassis Power is on` / `Chassis Power is off`.
pub fn parse_power_status(output: &str) -> Option<PowerState> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Chassis Power is ")?;
        match rest.trim() {
            "on" => Some(PowerState::On),
            "off" => Some(PowerState::Off),
            other => Some(PowerState::Other(other.to_string())),
        }
    })
}

/// ipmitool's `chassis power` subcommand for an action, and the word its
/// `Chassis Power Control: <word>` answer carries.
pub fn power_command(action: PowerAction) -> Option<(&'static str, &'static str)> {
    match action {
        PowerAction::On => Some(("on", "Up/On")),
        PowerAction::Off => Some(("soft", "Soft")),
        PowerAction::ForceOff => Some(("off", "Down/Off")),
        PowerAction::Reset => Some(("reset", "Reset")),
        PowerAction::GracefulRestart => None,
    }
}

/// True when the output confirms `Chassis Power Control: <expected>`.
pub fn confirms_power_control(output: &str, expected: &str) -> bool {
    output.lines().any(|l| l.trim().strip_prefix("Chassis Power Control:").map(str::trim) == Some(expected))
}

/// ipmitool's boot device name for a target.
pub fn bootdev_name(target: BootTarget) -> &'static str {
    match target {
        BootTarget::Pxe => "pxe",
        BootTarget::Cd => "cdrom",
        BootTarget::Hdd => "disk",
    }
}

/// True when the output confirms `Set Boot Device to <dev>`.
pub fn confirms_bootdev(output: &str, dev: &str) -> bool {
    output.lines().any(|l| l.trim() == format!("Set Boot Device to {dev}"))
}

impl Bmc for IpmiBmc {
    fn label(&self) -> &str {
        &self.label
    }

    fn power_state(&self) -> Result<PowerState, BmcError> {
        let out = self.run(&["chassis", "power", "status"])?;
        parse_power_status(&out).ok_or_else(|| self.output_error("chassis power status", &out))
    }

    fn power(&self, action: PowerAction) -> Result<(), BmcError> {
        let (sub, expect) = power_command(action).ok_or_else(|| self.unsupported("graceful restart"))?;
        let out = self.run(&["chassis", "power", sub])?;
        if !confirms_power_control(&out, expect) {
            return Err(self.output_error(&format!("chassis power {sub}"), &out));
        }
        tracing::info!(bmc = %self.label, action = action.as_str(), "power action accepted over IPMI");
        Ok(())
    }

    fn set_boot_once(&self, target: BootTarget) -> Result<(), BmcError> {
        let dev = bootdev_name(target);
        // Without options=persistent the IPMI boot flags are valid for the next boot only.
        let out = self.run(&["chassis", "bootdev", dev, "options=efiboot"])?;
        if !confirms_bootdev(&out, dev) {
            return Err(self.output_error(&format!("chassis bootdev {dev}"), &out));
        }
        tracing::info!(bmc = %self.label, target = dev, "boot device set for the next boot over IPMI");
        Ok(())
    }

    fn has_virtual_media(&self) -> bool {
        false
    }

    fn insert_media(&self, _url: &str) -> Result<(), BmcError> {
        Err(self.unsupported("virtual media"))
    }

    fn eject_media(&self) -> Result<(), BmcError> {
        Err(self.unsupported("virtual media"))
    }

    fn firmware_inventory(&self) -> Result<Vec<FirmwareItem>, BmcError> {
        Err(self.unsupported("firmware inventory"))
    }

    fn identity(&self) -> Result<Identity, BmcError> {
        Err(self.unsupported("identity"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Outputs as ipmitool 1.8.19 prints them.
    #[test]
    fn power_status_lines() {
        assert_eq!(parse_power_status("Chassis Power is on\n"), Some(PowerState::On));
        assert_eq!(parse_power_status("Chassis Power is off\n"), Some(PowerState::Off));
        assert_eq!(parse_power_status("Error: Unable to establish IPMI v2 / RMCP+ session\n"), None);
    }

    #[test]
    fn power_control_confirmation() {
        assert!(confirms_power_control("Chassis Power Control: Up/On\n", "Up/On"));
        assert!(confirms_power_control("Chassis Power Control: Down/Off\n", "Down/Off"));
        assert!(!confirms_power_control("Chassis Power Control: Down/Off\n", "Up/On"));
        assert!(power_command(PowerAction::GracefulRestart).is_none());
    }

    #[test]
    fn bootdev_confirmation() {
        assert!(confirms_bootdev("Set Boot Device to pxe\n", "pxe"));
        assert!(!confirms_bootdev("Set Boot Device to disk\n", "pxe"));
        assert_eq!(bootdev_name(BootTarget::Cd), "cdrom");
    }

    #[test]
    fn password_is_not_in_the_arguments() {
        let target = BmcTarget {
            node: Some("n1".into()),
            url: "https://127.0.0.1".into(),
            system_path: None,
            username: "admin".into(),
            password: Secret::new("pw-never-in-argv"),
            tls: crate::bmc::TlsPolicy::Insecure,
            ipmi: Some(IpmiAddress { host: "127.0.0.1".into(), port: 9623 }),
        };
        let bmc = IpmiBmc::from_target(&target).expect("has ipmi");
        let args = bmc.base_args().join(" ");
        assert!(!args.contains("pw-never-in-argv"));
        assert!(args.contains("-E") && args.contains("-C 3") && args.contains("-p 9623"), "{args}");
    }

    #[test]
    fn missing_ipmitool_is_a_clear_error() {
        let target = BmcTarget {
            node: None,
            url: "https://127.0.0.1".into(),
            system_path: None,
            username: "admin".into(),
            password: Secret::new("x"),
            tls: crate::bmc::TlsPolicy::Insecure,
            ipmi: Some(IpmiAddress { host: "127.0.0.1".into(), port: 623 }),
        };
        let bmc = IpmiBmc::from_target(&target).expect("has ipmi").with_program("/nonexistent/ipmitool");
        let err = bmc.power_state().expect_err("no such program");
        assert!(err.to_string().contains("cannot run ipmitool"), "{err}");
    }
}
