//! `kiln image pxe-config | dnsmasq | serve`: the network-boot pieces.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{DnsmasqArgs, PxeConfigArgs};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::image::pxe::{dnsmasq_conf, ipxe_script, BootEntry, DhcpHost, DnsmasqConfig};
use crate::image::serve::Server;
use crate::image::Manifest;

fn emit(text: &str, out: Option<&PathBuf>) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("write {}", p.display())),
        None => crate::terminal::stdout().write_all(text.as_bytes()).context("write to stdout"),
    }
}

pub fn pxe_config(args: &PxeConfigArgs) -> CmdResult {
    let base = match (&args.manifest, &args.cmdline) {
        (Some(m), _) => Manifest::load(m)?.kernel_cmdline,
        (None, Some(c)) => c.clone(),
        (None, None) => String::new(),
    };
    let cmdline = match &args.append {
        Some(extra) => format!("{base} {extra}").trim().to_string(),
        None => base,
    };
    let entry =
        BootEntry { server: args.server.clone(), kernel: args.kernel.clone(), initrd: args.initrd.clone(), cmdline };
    emit(&ipxe_script(&entry)?, args.out.as_ref())?;
    Ok(Outcome::ok())
}

pub fn dnsmasq(args: &DnsmasqArgs) -> CmdResult {
    let bad = |msg: String| Err(CmdError::BadInput(msg).into());
    let Some((a, b)) = args.range.split_once(',') else {
        return bad(format!("--range {:?}: expected FIRST,LAST", args.range));
    };
    let (Ok(start), Ok(end)) = (a.trim().parse(), b.trim().parse()) else {
        return bad(format!("--range {:?}: expected two IPv4 addresses", args.range));
    };
    let hosts = args.host.iter().map(|h| DhcpHost::parse(h)).collect::<Result<Vec<_>, _>>()?;
    let config = DnsmasqConfig {
        interface: args.interface.clone(),
        range_start: start,
        range_end: end,
        netmask: args.netmask,
        tftp_root: args.tftp_root.clone(),
        script_url: args.script_url.clone(),
        hosts,
    };
    emit(&dnsmasq_conf(&config)?, args.out.as_ref())?;
    Ok(Outcome::ok())
}

pub fn serve(dir: &Path, listen: SocketAddr) -> CmdResult {
    let server = Server::start(dir, listen)?;
    // The first line says where, for scripts that asked for port 0.
    crate::terminal::println(format_args!("serving {} on http://{}", dir.display(), server.addr()));
    let _ = std::io::stdout().flush();
    server.wait();
    Ok(Outcome::ok())
}
