//! `kiln agent`: settings from flags, else the kernel command line; run imaging or booted mode;
//! print the outcome and exit with its code.

use std::io::Write;

use serde_json::json;

use crate::cli::AgentArgs;
use crate::deploy::auth::{AgentAuth, NodeKey};
use crate::deploy::cmdline::{parse_cmdline, CmdlineSettings};
use crate::deploy::protocol::AgentMode;
use crate::deploy::{run_booted, run_imaging, AgentDone, AgentError, AgentOptions, WriterLost};
use crate::error::chain;
use crate::exit;
use crate::image::progress::for_stderr;

/// How long the image transfer may go without a byte when neither `--stall-timeout` nor
/// `kiln.stall_timeout=` says.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub fn run(args: &AgentArgs) -> anyhow::Result<i32> {
    // A missing /proc/cmdline (a container, a test) just means no settings from it.
    let from_kernel = std::fs::read_to_string(&args.cmdline).map(|t| parse_cmdline(&t)).unwrap_or_default();
    let opts = match options(args, &from_kernel) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("kiln: error: {msg}");
            return Ok(exit::USAGE);
        }
    };
    let result = match opts.mode {
        AgentMode::Imaging => run_imaging(&opts, for_stderr(args.json)),
        AgentMode::Booted => run_booted(&opts),
    };
    let code = match &result {
        Ok(_) => exit::OK,
        Err(e) => exit_code(e),
    };
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
            eprintln!("kiln: error: {}", chain(e));
            if args.json {
                writeln!(out, "{}", json!({"outcome": "failed", "error": chain(e), "exit_code": code}))?;
            }
        }
    }
    Ok(code)
}

fn exit_code(e: &AgentError) -> i32 {
    match e {
        AgentError::WriteFailed { source, .. } if source.is::<WriterLost>() => exit::INTERNAL,
        AgentError::WriteFailed { .. } if e.is_bad_image() => exit::BAD_INPUT,
        AgentError::WriteFailed { .. } | AgentError::ReadTarget { .. } => exit::TARGET_FAILED,
        AgentError::Refused { status: 403 | 404, .. } => exit::BAD_INPUT,
        AgentError::NoKey(_) => exit::USAGE,
        AgentError::NotConfirmed(_) | AgentError::ToldToStay => exit::CHECK_FAILED,
        AgentError::ImageJson { .. } => exit::BAD_INPUT,
        AgentError::Reboot(_) => exit::INTERNAL,
        AgentError::Unreachable { .. }
        | AgentError::Stalled { .. }
        | AgentError::Refused { .. }
        | AgentError::BadReply { .. }
        | AgentError::NotGenuine { .. }
        | AgentError::StillWaiting { .. } => exit::PEER,
    }
}

fn options(args: &AgentArgs, k: &CmdlineSettings) -> Result<AgentOptions, String> {
    let controller = args
        .controller
        .clone()
        .or_else(|| k.controller.clone())
        .ok_or("no controller: give --controller URL or kiln.controller= on the kernel command line")?;
    if !controller.starts_with("http://") && !controller.starts_with("https://") {
        return Err(format!("controller {:?} is not an http:// or https:// URL", crate::redact::userinfo(&controller)));
    }
    if crate::redact::has_userinfo(&controller) {
        return Err(format!(
            "controller {}: the controller takes no user or password",
            crate::redact::userinfo(&controller)
        ));
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
    let node = args.node.clone().or_else(|| k.node.clone());
    // The node's proof for this deployment comes from its boot path only (never a flag, which
    // any local user could read in the process list).
    let auth = match (&k.node, &k.deploy, &k.key) {
        (Some(kn), Some(deploy), Some(key)) => {
            if node.as_deref().is_some_and(|n| n != kn) {
                return Err(format!(
                    "--node {} disagrees with kiln.node={kn} on the kernel command line",
                    node.unwrap_or_default()
                ));
            }
            let key =
                NodeKey::from_hex(&key.0).ok_or("kiln.key= on the kernel command line: expected 64 hex digits")?;
            Some(AgentAuth { node: kn.clone(), deploy: deploy.clone(), key })
        }
        (_, None, None) => None,
        _ => return Err("the kernel command line needs all of kiln.node=, kiln.deploy= and kiln.key=, or none".into()),
    };
    let tree = crate::hw::root::FsTree::live();
    Ok(AgentOptions {
        controller,
        node,
        auth,
        disks: crate::hw::block::disk_paths(&tree),
        target: args.target.clone().or_else(|| k.target.clone().map(Into::into)),
        mode,
        reboot: args.reboot,
        wait_for: args.wait_for,
        stall_timeout,
        image_json: args.image_json.clone(),
        macs: crate::hw::net::ethernet_macs(&tree),
    })
}
