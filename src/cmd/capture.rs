//! `kiln capture DIR`: write everything inspect reads into DIR, for replay with `--root DIR`.

use crate::cli::CaptureArgs;
use crate::exit;
use crate::hw;
use crate::hw::capture::{capture, CaptureError};

pub fn run(args: &CaptureArgs) -> anyhow::Result<i32> {
    let (tree, gpus) = match hw::open(args.source.root.as_deref()) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
            return Ok(exit::BAD_INPUT);
        }
    };
    match capture(tree.as_ref(), gpus.as_ref(), &args.dir) {
        Ok(summary) => {
            println!(
                "captured {} into {}: {} files, {} symlinks, {} directories, {} unreadable, {} problems",
                summary.node.hostname,
                args.dir.display(),
                summary.files,
                summary.symlinks,
                summary.directories,
                summary.unreadable,
                summary.node.problems.len()
            );
            Ok(exit::OK)
        }
        Err(e @ CaptureError::NotEmpty { .. }) => {
            eprintln!("kiln: error: {e}");
            Ok(exit::USAGE)
        }
        Err(e) => Err(anyhow::Error::from(e).context("capture failed")),
    }
}
