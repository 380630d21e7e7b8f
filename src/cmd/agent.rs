//! `kiln agent`: settings from flags, else the kernel command line; run imaging or booted mode;
//! print the outcome and exit with its code.

use std::io::Write;

use serde_json::json;

use crate::cli::AgentArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::deploy::cmdline::{parse_cmdline, CmdlineSettings};
use crate::deploy::protocol::AgentMode;
use crate::deploy::{run_booted, run_imaging, AgentDone, AgentOptions};
use crate::error::chain;
use crate::image::progress::for_stderr;

/// How long the image transfer may go without a byte when neither `--stall-timeout` nor
/// `kiln.stall_timeout=` says.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub fn run(args: &AgentArgs) -> CmdResult {
    // A missing /proc/cmdline (a container, a test) just means no settings from it.
    let from_kernel = std::fs::read_to_string(&args.cmdline).map(|t| parse_cmdline(&t)).unwrap_or_default();
    let opts = options(args, &from_kernel).map_err(CmdError::Usage)?;
    let result = match opts.mode {
        AgentMode::Imaging => run_imaging(&opts, for_stderr(args.json)),
        AgentMode::Booted => run_booted(&opts),
    };
    let result = result.map_err(CmdError::Agent);
    let mut out = std::io::stdout().lock();
    match &result {
        Ok(AgentDone::Written { node, target, bytes, seconds, image_sha256, reboot }) => {
            if args.json {
                let v = json!({"outcome": "written", "node": node, "target": target, "bytes": bytes,
                               "seconds": seconds, "image_sha256": image_sha256, "rebooting": reboot});
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "{node}: wrote and verified {bytes} bytes on {} in {seconds:.1}s, sha256 {image_sha256}",
                    target.display()
                )?;
                if !reboot {
                    writeln!(out, "{node}: the controller says reboot; not rebooting without --reboot")?;
                }
            }
        }
        Ok(AgentDone::Confirmed { node, message }) => {
            if args.json {
                writeln!(out, "{}", json!({"outcome": "confirmed", "node": node, "message": message}))?;
            } else {
                writeln!(out, "{node}: {message}")?;
            }
        }
        Err(e) => {
            if args.json {
                writeln!(out, "{}", json!({"outcome": "failed", "error": chain(e), "exit_code": e.exit_code()}))?;
            }
        }
    }
    result?;
    Ok(Outcome::ok())
}

fn options(args: &AgentArgs, k: &CmdlineSettings) -> Result<AgentOptions, String> {
    let controller = args
        .controller
        .clone()
        .or_else(|| k.controller.clone())
        .ok_or("no controller: give --controller URL or kiln.controller= on the kernel command line")?;
    if !controller.starts_with("http://") && !controller.starts_with("https://") {
        return Err(format!("controller {controller:?} is not an http:// or https:// URL"));
    }
    let mode = match (args.mode, k.mode.as_deref()) {
        (Some(m), _) => m,
        (None, None | Some("imaging")) => AgentMode::Imaging,
        (None, Some("booted")) => AgentMode::Booted,
        (None, Some(other)) => {
            return Err(format!("kiln.mode={other} on the kernel command line: expected imaging or booted"))
        }
    };
    let stall_timeout = match (args.stall_timeout, k.stall_timeout.as_deref()) {
        (Some(d), _) => d,
        (None, None) => DEFAULT_STALL_TIMEOUT,
        (None, Some(text)) => crate::burnin::options::parse_duration(text)
            .map_err(|e| format!("kiln.stall_timeout={text} on the kernel command line: {e}"))?,
    };
    if stall_timeout.is_zero() {
        return Err("the stall timeout must be longer than 0s".into());
    }
    let tree = crate::hw::root::FsTree::live();
    Ok(AgentOptions {
        controller,
        node: args.node.clone().or_else(|| k.node.clone()),
        target: args.target.clone().or_else(|| k.target.clone().map(Into::into)),
        mode,
        reboot: args.reboot,
        wait_for: args.wait_for,
        stall_timeout,
        image_json: args.image_json.clone(),
        macs: crate::hw::net::ethernet_macs(&tree),
    })
}
