//! Network boot configuration: the iPXE script kiln serves, and the dnsmasq
//! configuration (DHCP and TFTP) that sends machines to it.
//!
//! The chain: a machine's firmware PXE-boots, dnsmasq answers DHCP and hands
//! out an iPXE binary over TFTP (per firmware architecture); iPXE asks DHCP
//! again, is recognised by option 175, and is given the script's HTTP URL;
//! the script fetches kernel and initrd from kiln's HTTP server and boots
//! them with the recipe's kernel command line.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// What the iPXE script boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// Base URL of kiln's HTTP server, `http://10.0.0.1:8080`.
    pub server: String,
    /// Kernel and initrd paths under the server.
    pub kernel: String,
    pub initrd: String,
    /// The kernel command line (a recipe's `kernel_cmdline` plus extras).
    pub cmdline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PxeError {
    #[error("server URL {0:?} must start with http:// (iPXE builds often lack TLS)")]
    ServerUrl(String),
    #[error("{what} {value:?} contains characters iPXE would misread (spaces, quotes, newlines)")]
    Unsafe { what: &'static str, value: String },
    #[error("DHCP range {start}..{end} is empty or reversed")]
    Range { start: Ipv4Addr, end: Ipv4Addr },
    #[error("host {0:?}: expected MAC,IP,NAME (aa:bb:cc:dd:ee:ff,10.0.0.11,node01)")]
    Host(String),
    #[error("interface name {0:?} is not a network interface name")]
    Interface(String),
}

fn plain(what: &'static str, v: &str) -> Result<(), PxeError> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'`$\\".contains(c)) {
        return Err(PxeError::Unsafe { what, value: v.to_string() });
    }
    Ok(())
}

/// The iPXE script. It retries DHCP, and on any failure prints why and
/// drops to a shell after a pause instead of silently booting from disk.
pub fn ipxe_script(e: &BootEntry) -> Result<String, PxeError> {
    if !e.server.starts_with("http://") {
        return Err(PxeError::ServerUrl(e.server.clone()));
    }
    plain("server URL", &e.server)?;
    plain("kernel path", &e.kernel)?;
    plain("initrd path", &e.initrd)?;
    if e.cmdline.chars().any(|c| c.is_control()) {
        return Err(PxeError::Unsafe { what: "kernel command line", value: e.cmdline.clone() });
    }
    let base = e.server.trim_end_matches('/');
    let initrd_name = e.initrd.rsplit('/').next().unwrap_or(&e.initrd);
    let mut s = String::new();
    let _ = writeln!(s, "#!ipxe");
    let _ = writeln!(s, "# written by kiln: network boot into the imaging environment");
    // Chained from a boot ROM that already holds a lease, a second DHCP
    // round only costs time; a script run by hand still gets one.
    let _ = writeln!(s, "isset ${{ip}} || goto retry_dhcp");
    let _ = writeln!(s, "goto have_ip");
    let _ = writeln!(s, ":retry_dhcp");
    let _ = writeln!(s, "dhcp || goto retry_dhcp");
    let _ = writeln!(s, ":have_ip");
    let _ = writeln!(
        s,
        "kernel {base}/{} initrd={initrd_name} {} || goto failed",
        e.kernel.trim_start_matches('/'),
        e.cmdline.trim()
    );
    let _ = writeln!(s, "initrd {base}/{} || goto failed", e.initrd.trim_start_matches('/'));
    let _ = writeln!(s, "boot || goto failed");
    let _ = writeln!(s, ":failed");
    let _ = writeln!(s, "echo kiln: network boot failed; shell in 10 seconds");
    let _ = writeln!(s, "sleep 10");
    let _ = writeln!(s, "shell");
    Ok(s)
}

/// One machine with a fixed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub name: String,
}

impl DhcpHost {
    /// Parse `MAC,IP,NAME`.
    pub fn parse(text: &str) -> Result<Self, PxeError> {
        let bad = || PxeError::Host(text.to_string());
        let mut parts = text.split(',').map(str::trim);
        let (Some(mac), Some(ip), Some(name), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let mac_ok = mac.split(':').count() == 6
            && mac.split(':').all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        if !mac_ok || !name_ok {
            return Err(bad());
        }
        Ok(DhcpHost { mac: mac.to_ascii_lowercase(), ip, name: name.to_string() })
    }
}

/// What dnsmasq serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqConfig {
    pub interface: String,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub tftp_root: String,
    /// The iPXE script's URL, handed to iPXE clients.
    pub script_url: String,
    pub hosts: Vec<DhcpHost>,
}

/// The dnsmasq configuration: DHCP and TFTP only (DNS off), iPXE binaries
/// by firmware architecture (option 93: 0 BIOS, 7 and 9 x86-64 UEFI, 11
/// arm64 UEFI), the script for clients that already run iPXE (option 175).
pub fn dnsmasq_conf(c: &DnsmasqConfig) -> Result<String, PxeError> {
    if c.interface.is_empty()
        || c.interface.len() > 15
        || !c.interface.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.@".contains(ch))
    {
        return Err(PxeError::Interface(c.interface.clone()));
    }
    if u32::from(c.range_start) > u32::from(c.range_end) {
        return Err(PxeError::Range { start: c.range_start, end: c.range_end });
    }
    plain("TFTP root", &c.tftp_root)?;
    plain("script URL", &c.script_url)?;
    if !c.script_url.starts_with("http://") {
        return Err(PxeError::ServerUrl(c.script_url.clone()));
    }
    let mut s = String::new();
    let _ = writeln!(s, "# written by kiln: DHCP and TFTP for network boot; DNS is off");
    let _ = writeln!(s, "port=0");
    let _ = writeln!(s, "interface={}", c.interface);
    let _ = writeln!(s, "bind-interfaces");
    let _ = writeln!(s, "dhcp-range={},{},{},1h", c.range_start, c.range_end, c.netmask);
    let _ = writeln!(s, "dhcp-authoritative");
    let _ = writeln!(s, "enable-tftp");
    let _ = writeln!(s, "tftp-root={}", c.tftp_root);
    let _ = writeln!(s, "dhcp-match=set:ipxe,175");
    let _ = writeln!(s, "dhcp-match=set:efi-x86_64,option:client-arch,7");
    let _ = writeln!(s, "dhcp-match=set:efi-x86_64,option:client-arch,9");
    let _ = writeln!(s, "dhcp-match=set:efi-arm64,option:client-arch,11");
    let _ = writeln!(s, "dhcp-boot=tag:!ipxe,tag:efi-x86_64,ipxe.efi");
    let _ = writeln!(s, "dhcp-boot=tag:!ipxe,tag:efi-arm64,ipxe-arm64.efi");
    let _ = writeln!(s, "dhcp-boot=tag:!ipxe,tag:!efi-x86_64,tag:!efi-arm64,undionly.kpxe");
    let _ = writeln!(s, "dhcp-boot=tag:ipxe,{}", c.script_url);
    for h in &c.hosts {
        let _ = writeln!(s, "dhcp-host={},{},{}", h.mac, h.ip, h.name);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> BootEntry {
        BootEntry {
            server: "http://10.0.0.1:8080/".into(),
            kernel: "boot/vmlinuz".into(),
            initrd: "/boot/initrd.img".into(),
            cmdline: "console=ttyS0 kiln.image=http://10.0.0.1:8080/x.raw".into(),
        }
    }

    #[test]
    fn script_boots_kernel_and_initrd_with_the_cmdline() {
        let s = ipxe_script(&entry()).expect("script");
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains(
            "kernel http://10.0.0.1:8080/boot/vmlinuz initrd=initrd.img console=ttyS0 kiln.image=http://10.0.0.1:8080/x.raw || goto failed"
        ), "{s}");
        assert!(s.contains("initrd http://10.0.0.1:8080/boot/initrd.img || goto failed"));
        // DHCP only when the boot ROM left no address, retried until it works.
        assert!(
            s.contains(
                "isset ${ip} || goto retry_dhcp\ngoto have_ip\n:retry_dhcp\ndhcp || goto retry_dhcp\n:have_ip\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn unsafe_values_are_refused() {
        let e = BootEntry { kernel: "a b".into(), ..entry() };
        assert!(matches!(ipxe_script(&e), Err(PxeError::Unsafe { .. })));
        let e = BootEntry { server: "https://x".into(), ..entry() };
        assert!(matches!(ipxe_script(&e), Err(PxeError::ServerUrl(_))));
        let e = BootEntry { cmdline: "a\nshell".into(), ..entry() };
        assert!(ipxe_script(&e).is_err());
    }

    #[test]
    fn hosts_parse_strictly() {
        let h = DhcpHost::parse("AA:bb:cc:dd:ee:01,10.0.0.11,node01").expect("host");
        assert_eq!(h.mac, "aa:bb:cc:dd:ee:01");
        assert!(DhcpHost::parse("aa:bb:cc:dd:ee,10.0.0.11,n").is_err());
        assert!(DhcpHost::parse("aa:bb:cc:dd:ee:01,10.0.0.256,n").is_err());
        assert!(DhcpHost::parse("aa:bb:cc:dd:ee:01,10.0.0.1,n;x").is_err());
    }

    #[test]
    fn a_reversed_range_is_refused() {
        let c = DnsmasqConfig {
            interface: "eth1".into(),
            range_start: "10.0.0.200".parse().expect("ip"),
            range_end: "10.0.0.100".parse().expect("ip"),
            netmask: "255.255.255.0".parse().expect("ip"),
            tftp_root: "/srv/tftp".into(),
            script_url: "http://10.0.0.1:8080/boot.ipxe".into(),
            hosts: vec![],
        };
        assert!(matches!(dnsmasq_conf(&c), Err(PxeError::Range { .. })));
    }
}
