//! `kiln agent`: settings from flags, else the kernel command line; run imaging or booted mode;
//! print the outcome and exit with its code.

use std::io::Write;

use serde::Serialize;

use crate::cli::AgentArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::deploy::auth::{AgentAuth, NodeKey};
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
    let from_kernel = crate::input::read_to_string(&args.cmdline, crate::input::Input::KernelCmdline)
        .map(|t| parse_cmdline(&t))
        .unwrap_or_default();
    let opts = options(args, &from_kernel).map_err(CmdError::Usage)?;
    let result = match opts.mode {
        AgentMode::Imaging => run_imaging(&opts, for_stderr(args.json)),
        AgentMode::Booted => run_booted(&opts),
    };
    let result = result.map_err(CmdError::Agent);
    let mut out = crate::terminal::stdout();
    let print = |out: &mut dyn Write, answer: AgentAnswer<'_>| -> std::io::Result<()> {
        let doc = AgentDocument { schema_version: AGENT_SCHEMA_VERSION, kind: "kiln.agent", answer };
        writeln!(out, "{}", serde_json::to_string(&doc).map_err(std::io::Error::other)?)
    };
    match &result {
        Ok(AgentDone::Written { node, target, bytes, seconds, image_sha256, reboot }) => {
            if args.json {
                let answer = AgentAnswer::Written {
                    node,
                    target,
                    bytes: *bytes,
                    seconds: *seconds,
                    image_sha256,
                    rebooting: *reboot,
                };
                print(&mut out, answer)?;
            } else {
                writeln!(
                    crate::terminal::Text(&mut out),
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
                print(&mut out, AgentAnswer::Confirmed { node, message })?;
            } else {
                writeln!(crate::terminal::Text(&mut out), "{node}: {message}")?;
            }
        }
        Err(e) => {
            if args.json {
                print(&mut out, AgentAnswer::Failed { error: chain(e), exit_code: e.exit_code() })?;
            }
        }
    }
    result?;
    Ok(Outcome::ok())
}

/// `schema_version` of the `kiln.agent` document; bumped on any change a consumer could notice.
pub const AGENT_SCHEMA_VERSION: u32 = 1;

/// `kiln agent --json`: one line, how the agent's work ended.
#[derive(Debug, Serialize)]
pub struct AgentDocument<'a> {
    pub schema_version: u32,
    pub kind: &'static str,
    #[serde(flatten)]
    pub answer: AgentAnswer<'a>,
}

/// The agent's end, tagged by `outcome`.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AgentAnswer<'a> {
    /// Imaging mode: written and verified; `rebooting` says whether the agent reboots now.
    Written {
        node: &'a str,
        target: &'a std::path::Path,
        bytes: u64,
        seconds: f64,
        image_sha256: &'a str,
        rebooting: bool,
    },
    /// Booted mode: the controller confirmed the image.
    Confirmed { node: &'a str, message: &'a str },
    /// Failed: the error and the exit code kiln gives.
    Failed { error: String, exit_code: i32 },
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
