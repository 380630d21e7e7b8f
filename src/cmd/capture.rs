//! `kiln capture DIR`: write everything inspect reads into DIR, for replay with `--root DIR`.

use crate::cli::CaptureArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::hw;
use crate::hw::capture::{capture, CaptureError};

pub fn run(args: &CaptureArgs) -> CmdResult {
    let (tree, gpus) = hw::open(args.source.root.as_deref())?;
    let summary = capture(tree.as_ref(), gpus.as_ref(), &args.dir).map_err(|e| match e {
        CaptureError::NotEmpty { .. } => CmdError::CaptureInto(e),
        e => CmdError::Capture(e),
    })?;
    crate::terminal::println(format_args!(
        "captured {} into {}: {} files, {} symlinks, {} directories, {} unreadable, {} problems",
        summary.node.hostname,
        args.dir.display(),
        summary.files,
        summary.symlinks,
        summary.directories,
        summary.unreadable,
        summary.node.problems.len()
    ));
    Ok(Outcome::ok())
}
