//! `kiln image pxe-config | dnsmasq | serve`: the network-boot pieces.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{DnsmasqArgs, PxeConfigArgs};
use crate::exit;
use crate::image::pxe::{dnsmasq_conf, ipxe_script, BootEntry, DhcpHost, DnsmasqConfig};
use crate::image::serve::Server;
use crate::image::Manifest;

fn emit(text: &str, out: Option<&PathBuf>) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("write {}", p.display())),
        None => std::io::stdout().lock().write_all(text.as_bytes()).context("write to stdout"),
    }
}

pub fn pxe_config(args: &PxeConfigArgs) -> anyhow::Result<i32> {
    let base = match (&args.manifest, &args.cmdline) {
        (Some(m), _) => match Manifest::load(m) {
            Ok(m) => m.kernel_cmdline,
            Err(e) => {
                eprintln!("kiln: error: {e}");
                return Ok(exit::BAD_INPUT);
            }
        },
        (None, Some(c)) => c.clone(),
        (None, None) => String::new(),
    };
    let cmdline = match &args.append {
        Some(extra) => format!("{base} {extra}").trim().to_string(),
        None => base,
    };
    let entry =
        BootEntry { server: args.server.clone(), kernel: args.kernel.clone(), initrd: args.initrd.clone(), cmdline };
    match ipxe_script(&entry) {
        Ok(script) => {
            emit(&script, args.out.as_ref())?;
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("kiln: error: {e}");
            Ok(exit::BAD_INPUT)
        }
    }
}

pub fn dnsmasq(args: &DnsmasqArgs) -> anyhow::Result<i32> {
    let bad = |msg: String| {
        eprintln!("kiln: error: {msg}");
        Ok(exit::BAD_INPUT)
    };
    let Some((a, b)) = args.range.split_once(',') else {
        return bad(format!("--range {:?}: expected FIRST,LAST", args.range));
    };
    let (Ok(start), Ok(end)) = (a.trim().parse(), b.trim().parse()) else {
        return bad(format!("--range {:?}: expected two IPv4 addresses", args.range));
    };
    let mut hosts = Vec::new();
    for h in &args.host {
        match DhcpHost::parse(h) {
            Ok(h) => hosts.push(h),
            Err(e) => return bad(e.to_string()),
        }
    }
    let config = DnsmasqConfig {
        interface: args.interface.clone(),
        range_start: start,
        range_end: end,
        netmask: args.netmask,
        tftp_root: args.tftp_root.clone(),
        script_url: args.script_url.clone(),
        hosts,
    };
    match dnsmasq_conf(&config) {
        Ok(text) => {
            emit(&text, args.out.as_ref())?;
            Ok(exit::OK)
        }
        Err(e) => bad(e.to_string()),
    }
}

pub fn serve(dir: &Path, listen: SocketAddr) -> anyhow::Result<i32> {
    match Server::start(dir, listen) {
        Ok(server) => {
            // The first line says where, for scripts that asked for port 0.
            println!("serving {} on http://{}", dir.display(), server.addr());
            let _ = std::io::stdout().flush();
            server.wait();
            Ok(exit::OK)
        }
        Err(e) => {
            let mut msg = e.to_string();
            if let Some(src) = std::error::Error::source(&e) {
                msg.push_str(&format!(": {src}"));
            }
            eprintln!("kiln: error: {msg}");
            Ok(exit::BAD_INPUT)
        }
    }
}
